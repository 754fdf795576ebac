package sessioncap

import (
	"strings"
)

// User agents are a third of a session record (a desktop Chrome one is 111
// bytes) and are made of the same few phrases everywhere, so records store
// them with each common phrase replaced by one control byte, the way HPACK's
// static table abbreviates common headers. A user agent that already
// contains a control byte, which no real browser sends, is stored as is
// behind a zero byte. The scripts never look inside: they copy the metadata
// as one opaque slice.
//
// The table is part of the record format: entries may be appended (up to
// 31) but never changed or reordered, or stored records would decode wrong.
var uaPhrases = [...]string{
	1:  "Mozilla/5.0 (",
	2:  ") AppleWebKit/537.36 (KHTML, like Gecko) ",
	3:  "Windows NT 10.0; Win64; x64",
	4:  "Macintosh; Intel Mac OS X 10_15_7",
	5:  "X11; Linux x86_64",
	6:  "Chrome/",
	7:  " Safari/537.36",
	8:  " Safari/605.1.15",
	9:  "Firefox/",
	10: "Gecko/20100101 ",
	11: "; rv:",
	12: ") AppleWebKit/605.1.15 (KHTML, like Gecko) ",
	13: "Version/",
	14: " Mobile/15E148",
	15: "iPhone; CPU iPhone OS ",
	16: " like Mac OS X",
	17: "Linux; Android ",
	18: " Mobile Safari/537.36",
	19: " Edg/",
	20: " OPR/",
	21: ".0.0.0",
	22: "; K)",
	23: "iPad; CPU OS ",
	24: "CriOS/",
	25: "Mobile",
	26: "Windows NT 10.0",
	27: "Macintosh; Intel Mac OS X ",
	28: " (KHTML, like Gecko)",
	29: "AppleWebKit/",
	30: "Safari/",
	31: "Gecko",
}

// uaByFirst lists, for each first byte, the codes of the phrases that start
// with it, longest first, so packing tries few candidates per position.
var uaByFirst = func() (t [256][]byte) {
	for code := len(uaPhrases) - 1; code >= 1; code-- {
		p := uaPhrases[code]
		t[p[0]] = append(t[p[0]], byte(code))
	}
	for i := range t {
		l := t[i]
		for a := 1; a < len(l); a++ { // insertion sort, longest phrase first
			for b := a; b > 0 && len(uaPhrases[l[b]]) > len(uaPhrases[l[b-1]]); b-- {
				l[b], l[b-1] = l[b-1], l[b]
			}
		}
	}
	return t
}()

// packUA abbreviates ua for storage; unpackUA(packUA(ua)) == ua for every
// string.
func packUA(ua string) string {
	for i := 0; i < len(ua); i++ {
		if ua[i] < 0x20 {
			return "\x00" + ua
		}
	}
	b := make([]byte, 0, len(ua))
outer:
	for i := 0; i < len(ua); {
		for _, code := range uaByFirst[ua[i]] {
			if p := uaPhrases[code]; strings.HasPrefix(ua[i:], p) {
				b = append(b, code)
				i += len(p)
				continue outer
			}
		}
		b = append(b, ua[i])
		i++
	}
	return string(b)
}

// unpackUA reverses packUA.
func unpackUA(s string) string {
	if s == "" {
		return ""
	}
	if s[0] == 0 {
		return s[1:]
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 {
			n += len(uaPhrases[c])
		} else {
			n++
		}
	}
	if n == len(s) {
		return s // nothing abbreviated: no copy
	}
	var b strings.Builder
	b.Grow(n)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 {
			b.WriteString(uaPhrases[c])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
