package sessioncap

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Records are compact byte strings with a fixed header, so the Lua scripts
// only ever slice at constant offsets and compare: no JSON, no parsing of
// variable fields in Lua, where string handling is what costs time.
//
// Live session (kind 'L'):
//
//	[0]       'L'
//	[1:17]    SHA-256(secret)[:16]   (the secret itself is never stored)
//	[17:30]   created, ms since epoch, 13 decimal digits
//	[30:43]   last seen, ms, 13 digits
//	[43:56]   absolute expiry, ms, 13 digits
//	[56:60]   meta length m, 4 decimal digits
//	[60:60+m] meta: uvarint-prefixed IP, user agent, user ID
//	[60+m:]   values: uvarint count, then uvarint-prefixed key and value pairs
//
// Ended session (tombstone; kind is the event code of the ending):
//
//	[0]       code ('L' is never a tombstone code)
//	[1:17]    the ended session's secret digest, so only its holder reads it
//	[17:30]   when it ended, ms
//	[30:46]   the public ID of the session that caused it, or 16 zero bytes
//	[46:]     meta of the causing session (or of nobody, with the user ID)
//
// History entry and published event:
//
//	[0]       code
//	[1:14]    when, ms
//	[14:30]   session ID
//	[30:46]   causing session ID, or zeros
//	[46:]     meta of the session the entry is about
const (
	kindLive     = 'L'
	offDigest    = 1
	offCreated   = 17
	offLast      = 30
	offAbs       = 43
	offMetaLen   = 56
	offMeta      = 60
	tsLen        = 13
	headerLen    = offMeta
	tombAt       = 17
	tombBy       = 30
	tombMeta     = 46
	histAt       = 1
	histSID      = 14
	histBy       = 30
	histMeta     = 46
	sidLen       = 16
	secretLen    = 32
	tokenVersion = 1
	tokenRawLen  = 1 + digestLen + sidLen + secretLen
	maxUserIDLen = 4096
	maxIPLen     = 64
	maxUALen     = 512
	maxValuesLen = 64 << 10
	maxMetaLen   = 9999
	maxTimestamp = 9999999999999 // 13 digits: the year 2286
	// maxTombstones is how many tombstones one user keeps at most
	// (maxTombs in lua/lib.lua, which must agree).
	maxTombstones = 16
	codeLogin     = 'I'
	codeEvicted   = 'E'
	codeLogout    = 'O'
	codeOthers    = 'Y'
	codeEverywher = 'W'
	codeAdmin     = 'A'
	codeRevoked   = 'V'
	codeRotated   = 'T'
	codeExpired   = 'X'
)

// tokenLen is the length of every token string: 87 characters.
var tokenLen = base64.RawURLEncoding.EncodedLen(tokenRawLen)

var zeroSID [sidLen]byte

var codeReasons = map[byte]Reason{
	codeLogin:     ReasonLogin,
	codeEvicted:   ReasonLimit,
	codeLogout:    ReasonLogout,
	codeOthers:    ReasonLogoutOthers,
	codeEverywher: ReasonLogoutEverywhere,
	codeAdmin:     ReasonAdmin,
	codeRevoked:   ReasonRevoked,
	codeRotated:   ReasonRotated,
	codeExpired:   ReasonExpired,
}

// errBadRecord is the cause wrapped in ErrUnavailable when Redis hands back
// bytes that are not a record sessioncap wrote.
var errBadRecord = errors.New("malformed record in redis")

// token is a parsed bearer token.
type token struct {
	user   [digestLen]byte
	sid    [sidLen]byte
	secret [secretLen]byte
}

// newToken draws a session ID and a secret from crypto/rand.
func newToken(user [digestLen]byte) (token, error) {
	t := token{user: user}
	id, err := uuid.NewRandom() // version 4, from crypto/rand
	if err != nil {
		return t, fmt.Errorf("sessioncap: random source: %w", err)
	}
	t.sid = id
	if _, err := rand.Read(t.secret[:]); err != nil {
		return t, fmt.Errorf("sessioncap: random source: %w", err)
	}
	return t, nil
}

func (t token) String() string {
	var raw [tokenRawLen]byte
	raw[0] = tokenVersion
	copy(raw[1:], t.user[:])
	copy(raw[1+digestLen:], t.sid[:])
	copy(raw[1+digestLen+sidLen:], t.secret[:])
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

// secretDigest is what Redis stores in place of the secret.
func (t token) secretDigest() string {
	sum := sha256.Sum256(t.secret[:])
	return string(sum[:digestLen])
}

var strictB64 = base64.RawURLEncoding.Strict()

// parseToken rejects anything that is not exactly a token this package
// issued, before any Redis call.
func parseToken(s string) (token, error) {
	var t token
	if len(s) != tokenLen {
		return t, ErrInvalidToken
	}
	var raw [tokenRawLen]byte
	// Decode from a stack copy: []byte(s) would allocate on every Validate.
	var in [128]byte
	n, err := strictB64.Decode(raw[:], in[:copy(in[:], s)])
	if err != nil || n != tokenRawLen || raw[0] != tokenVersion {
		return t, ErrInvalidToken
	}
	copy(t.user[:], raw[1:])
	copy(t.sid[:], raw[1+digestLen:])
	copy(t.secret[:], raw[1+digestLen+sidLen:])
	return t, nil
}

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
	if ip, m, err = readString(m); err != nil {
		return
	}
	if ua, m, err = readString(m); err != nil {
		return
	}
	ua = unpackUA(ua)
	if userID, m, err = readString(m); err != nil {
		return
	}
	if m != "" {
		err = errBadRecord
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

// liveRecord builds a new session's record.
func liveRecord(digest string, created, abs int64, meta, values string) string {
	b := make([]byte, 0, headerLen+len(meta)+len(values))
	b = append(b, kindLive)
	b = append(b, digest...)
	c := ms13(created)
	b = append(b, c...)
	b = append(b, c...)
	b = append(b, ms13(abs)...)
	b = append(b, fmt.Sprintf("%04d", len(meta))...)
	b = append(b, meta...)
	b = append(b, values...)
	return string(b)
}

// parsed is a decoded record: a live session or a tombstone.
type parsed struct {
	live bool
	code byte
	// live
	created, last, abs int64
	ip, ua, userID     string
	values             map[string]string
	valuesRaw          string
	prefixLen          int // bytes before the values: Save keeps them
	// tombstone
	at    int64
	bySID [sidLen]byte
}

func parseRecord(r string) (parsed, error) {
	var p parsed
	if len(r) < 1 {
		return p, errBadRecord
	}
	p.code = r[0]
	if p.code == kindLive {
		if len(r) < headerLen {
			return p, errBadRecord
		}
		p.live = true
		var err error
		if p.created, err = parseMS(r[offCreated:offLast]); err != nil {
			return p, err
		}
		if p.last, err = parseMS(r[offLast:offAbs]); err != nil {
			return p, err
		}
		if p.abs, err = parseMS(r[offAbs:offMetaLen]); err != nil {
			return p, err
		}
		m, err := strconv.Atoi(r[offMetaLen:offMeta])
		if err != nil || m < 0 || headerLen+m > len(r) {
			return p, errBadRecord
		}
		if p.ip, p.ua, p.userID, err = decodeMeta(r[offMeta : offMeta+m]); err != nil {
			return p, err
		}
		p.prefixLen = offMeta + m
		p.valuesRaw = r[p.prefixLen:]
		if p.values, err = decodeValues(p.valuesRaw); err != nil {
			return p, err
		}
		return p, nil
	}
	if _, ok := codeReasons[p.code]; !ok || len(r) < tombMeta {
		return p, errBadRecord
	}
	var err error
	if p.at, err = parseMS(r[tombAt:tombBy]); err != nil {
		return p, err
	}
	copy(p.bySID[:], r[tombBy:tombMeta])
	if p.ip, p.ua, p.userID, err = decodeMeta(r[tombMeta:]); err != nil {
		return p, err
	}
	return p, nil
}

// publicID renders a raw session ID as its public UUID form.
func publicID(sid [sidLen]byte) string {
	if sid == zeroSID {
		return ""
	}
	return uuid.UUID(sid).String()
}

// appendPublicID appends publicID(sid) for a non-zero sid: the canonical
// lower-case UUID form, without the allocation of uuid.UUID.String.
func appendPublicID(b []byte, sid [sidLen]byte) []byte {
	const hexd = "0123456789abcdef"
	for i, c := range sid {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexd[c>>4], hexd[c&15])
	}
	return b
}

func parsePublicID(s string) ([sidLen]byte, error) {
	u, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return zeroSID, ErrInvalidSessionID
	}
	return u, nil
}

// endingError turns a tombstone into the error Validate returns.
func endingError(p parsed, sid [sidLen]byte) error {
	e := Ending{
		UserID:    p.userID,
		SessionID: publicID(sid),
		At:        fromMS(p.at),
		Reason:    codeReasons[p.code],
	}
	if p.bySID != zeroSID {
		e.By = Device{SessionID: publicID(p.bySID), IP: p.ip, UserAgent: p.ua}
	}
	if p.code == codeEvicted {
		return &EvictedError{e}
	}
	return &RevokedError{e}
}
