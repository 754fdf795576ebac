package sessioncap

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestDeviceName(t *testing.T) {
	t.Parallel()
	for ua, want := range map[string]string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36":                         "Chrome on Windows",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1": "Safari on iPhone",
		"Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0":                                                                  "Firefox on Linux",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15":                   "Safari on macOS",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36":                   "Chrome on Android",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0":           "Edge on Windows",
		"curl/8.5.0": "curl",
		"":           "Unknown device",
	} {
		if got := DeviceName(ua); got != want {
			t.Errorf("DeviceName(%.40q…) = %q, want %q", ua, got, want)
		}
	}
	d := Device{UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"}
	if d.Name() != "Firefox on Linux" {
		t.Errorf("Device.Name() = %q", d.Name())
	}
}

// FuzzDeviceName: whatever the header, the name is short printable UTF-8.
func FuzzDeviceName(f *testing.F) {
	for _, s := range []string{"", "\xff\xfe", strings.Repeat("\xe2\x82", 300), "Mozilla/5.0 (\x00\x1b[31m) Evil/1.0", strings.Repeat("A", 5000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ua string) {
		name := DeviceName(ua)
		if name == "" || len(name) > maxDeviceNameLen || !utf8.ValidString(name) {
			t.Fatalf("DeviceName(%q) = %q", ua, name)
		}
		for _, r := range name {
			if !unicode.IsPrint(r) {
				t.Fatalf("DeviceName(%q) = %q holds %U", ua, name, r)
			}
		}
	})
}
