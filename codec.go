package sessioncap

import (
	"encoding/binary"
	"fmt"
	"sort"
	"time"
)

// ms13 formats a time as the 13-digit millisecond stamp the scripts use.
func ms13(ms int64) string {
	if ms < 0 {
		ms = 0
	}
	if ms > maxTimestamp {
		ms = maxTimestamp
	}
	var b [tsLen]byte
	return string(appendMS13(b[:0], ms))
}

// appendMS13 appends ms as 13 zero-padded digits; ms must be in range.
func appendMS13(b []byte, ms int64) []byte {
	for i := tsLen - 1; i >= 0; i-- {
		b = append(b, 0)
	}
	for i := len(b) - 1; i >= len(b)-tsLen; i-- {
		b[i] = byte('0' + ms%10)
		ms /= 10
	}
	return b
}

func parseMS(b string) (int64, error) {
	if len(b) != tsLen {
		return 0, errBadRecord
	}
	var n int64
	for i := 0; i < tsLen; i++ {
		c := b[i]
		if c < '0' || c > '9' {
			return 0, errBadRecord
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

func fromMS(ms int64) time.Time { return time.UnixMilli(ms) }

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// readString reads one uvarint-prefixed string from b.
func readString(b string) (s, rest string, err error) {
	n, k := binary.Uvarint([]byte(b[:min(len(b), binary.MaxVarintLen64)]))
	if k <= 0 || n > uint64(len(b)-k) {
		return "", "", errBadRecord
	}
	return b[k : k+int(n)], b[k+int(n):], nil
}

// encodeMeta packs IP, user agent and user ID.
func encodeMeta(ip, ua, userID string) string {
	b := make([]byte, 0, 3+len(ip)+len(ua)+len(userID))
	b = appendString(b, ip)
	b = appendString(b, packUA(ua))
	b = appendString(b, userID)
	return string(b)
}

func decodeMeta(m string) (ip, ua, userID string, err error) {
	var rest string
	if ip, ua, userID, rest, err = decodeMetaRest(m); err == nil && rest != "" {
		err = errBadRecord
	}
	return
}

// decodeMetaRest decodes a meta at the start of m and returns what follows.
func decodeMetaRest(m string) (ip, ua, userID, rest string, err error) {
	if ip, m, err = readString(m); err != nil {
		return
	}
	if ua, m, err = readString(m); err != nil {
		return
	}
	ua = unpackUA(ua)
	if userID, rest, err = readString(m); err != nil {
		return
	}
	return
}

// encodeValues packs app values in key order, so equal maps encode equally
// (Update compares encodings to detect concurrent changes).
func encodeValues(v map[string]string) (string, error) {
	keys := make([]string, 0, len(v))
	size := 1
	for k, val := range v {
		keys = append(keys, k)
		size += len(k) + len(val) + 4
	}
	if size > maxValuesLen {
		return "", fmt.Errorf("%w: session values exceed %d bytes", ErrInvalidInput, maxValuesLen)
	}
	sort.Strings(keys)
	b := make([]byte, 0, size)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendString(b, k)
		b = appendString(b, v[k])
	}
	return string(b), nil
}

func decodeValues(s string) (map[string]string, error) {
	n, k := binary.Uvarint([]byte(s[:min(len(s), binary.MaxVarintLen64)]))
	if k <= 0 || n > uint64(len(s)) {
		return nil, errBadRecord
	}
	s = s[k:]
	v := make(map[string]string, min(n, 64))
	for i := uint64(0); i < n; i++ {
		var key, val string
		var err error
		if key, s, err = readString(s); err != nil {
			return nil, err
		}
		if val, s, err = readString(s); err != nil {
			return nil, err
		}
		v[key] = val
	}
	if s != "" {
		return nil, errBadRecord
	}
	return v, nil
}
