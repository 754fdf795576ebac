package sessioncap

import (
	"strings"
	"testing"
)

func TestUserAgentPacking(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ua      string
		maxPack int // packed length at most
	}{
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", 12},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15", 14},
		{"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", 17},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", 30},
		{"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36", 22},
		{"curl/8.5.0", 10},
		{"", 0},
		{"Chrome on Linux", 15},
		{"tab\there", 10},                           // a control byte: stored as is
		{"\x01\x02 looks packed", 18},               // must not decode as phrases
		{"\x00leading zero", 15},                    // nor as the raw marker
		{strings.Repeat("Chrome/", 70), 70},         // 490 bytes, one byte per phrase
		{"Mozilla/5.0 (\xff\xfe invalid UTF-8", 22}, // bytes above 0x7f pass through
	} {
		p := packUA(tc.ua)
		if got := unpackUA(p); got != tc.ua {
			t.Errorf("%q: unpacked %q", tc.ua, got)
		}
		if len(p) > tc.maxPack {
			t.Errorf("%q: packed to %d bytes, want at most %d", tc.ua, len(p), tc.maxPack)
		}
	}
	// The table is part of the record format: codes 1..31, no control byte
	// inside a phrase (or packing would not be reversible), no duplicates.
	seen := map[string]bool{}
	for code, p := range uaPhrases {
		if code == 0 {
			if p != "" {
				t.Fatal("code 0 is the raw marker, not a phrase")
			}
			continue
		}
		if p == "" || seen[p] || strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 }) {
			t.Fatalf("phrase %d %q is empty, repeated or holds a control byte", code, p)
		}
		seen[p] = true
	}
}

// FuzzUserAgentPacking: packing is reversible for every string, and never
// longer than the input plus the one-byte raw marker.
func FuzzUserAgentPacking(f *testing.F) {
	for _, s := range []string{"", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", "\x00", "\x1f", "Gecko/20100101 Firefox/1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ua string) {
		p := packUA(ua)
		if got := unpackUA(p); got != ua {
			t.Fatalf("%q packed to %q unpacks to %q", ua, p, got)
		}
		if len(p) > len(ua)+1 {
			t.Fatalf("%q packed to %d bytes", ua, len(p))
		}
	})
}
