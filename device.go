package sessioncap

import (
	"strings"
	"unicode"

	"github.com/mileusna/useragent"
)

// DeviceName turns a User-Agent header into the name a person recognises on
// a "your devices" page or in "you were signed out by …": "Safari on
// iPhone", "Chrome on Windows", "Firefox on Linux". It uses
// github.com/mileusna/useragent, a maintained parser, rather than a table of
// our own. What it cannot place it still names as well as it can ("curl",
// "Chrome"), and an empty or unreadable header is "Unknown device". The
// result is at most 64 bytes of printable UTF-8, whatever the header held,
// so it is safe to put in a page or a log line.
func DeviceName(userAgent string) string {
	if userAgent == "" {
		return unknownDevice
	}
	ua := useragent.Parse(userAgent)
	browser := printable(ua.Name)
	place := printable(ua.OS)
	switch ua.Device {
	case "iPhone", "iPad", "iPod":
		place = ua.Device
	}
	switch {
	case browser != "" && place != "":
		return clip(browser+" on "+place, maxDeviceNameLen)
	case browser != "":
		return clip(browser, maxDeviceNameLen)
	case place != "":
		return clip("Browser on "+place, maxDeviceNameLen)
	}
	return unknownDevice
}

const (
	unknownDevice    = "Unknown device"
	maxDeviceNameLen = 64
)

// printable keeps letters, digits, spaces and punctuation: a parser may echo
// parts of the header, which can hold any bytes.
func printable(s string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, s)
	return strings.TrimSpace(s)
}

// Name is the device's name for people, from its user agent (DeviceName).
func (d Device) Name() string { return DeviceName(d.UserAgent) }

// DeviceName is the session's device for people, from its user agent
// (DeviceName); UserAgent keeps the raw header.
func (s *Session) DeviceName() string { return DeviceName(s.UserAgent) }

// DeviceName is the device of the session the event is about, for people
// (DeviceName); UserAgent keeps the raw header.
func (ev Event) DeviceName() string { return DeviceName(ev.UserAgent) }
