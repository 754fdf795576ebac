package sessioncap

import (
	"errors"
	"fmt"
	"strconv"
)

// Records are compact byte strings with a fixed header, so the Lua scripts
// only ever slice at constant offsets and compare: no JSON, no parsing of
// variable fields in Lua, where string handling is what costs time.
//
// Live session, format 2 (its first byte is the format, a digit; a
// tombstone's is a letter):
//
//	[0]       '2'
//	[1:17]    SHA-256(secret)[:16]   (the secret itself is never stored)
//	[17:30]   created, ms since epoch, 13 decimal digits
//	[30:43]   last seen, ms, 13 digits
//	[43:56]   absolute expiry, ms, 13 digits
//	[56:69]   the idle timeout in force when the record was last written,
//	          ms, 13 digits (0: none): the session's idle deadline is
//	          decided when it is written, so a later change of
//	          Config.IdleTimeout cannot revive a session that had expired
//	[69:73]   meta length m, 4 decimal digits
//	[73:73+m] meta: uvarint-prefixed IP, user agent, user ID
//	[73+m:]   values: uvarint count, then uvarint-prefixed key and value pairs
//
// Format 1 ('L', before the idle timeout was stored, and before a user's
// index lived inside its hash) is not read: such a session reads as
// expired, and its holder signs in again. The next change of the live
// format takes the next digit and can read both.
//
// Ended session (tombstone; kind is the event code of the ending):
//
//	[0]       code (a letter)
//	[1:17]    the ended session's secret digest, so only its holder reads it
//	[17:30]   when it ended, ms
//	[30:46]   the public ID of the session that acted, or 16 zero bytes
//	[46:]     who acted: the acting session's meta (or empty IP and user
//	          agent with the user ID), then, when an administrator or the
//	          app acted, a uvarint-prefixed name for them (the "actor")
//
// History entry and published event:
//
//	[0]       code
//	[1:14]    when, ms
//	[14:30]   session ID
//	[30:46]   acting session ID, or zeros
//	[46:]     meta of the session the entry is about, then, for an ending,
//	          the actor as in a tombstone (entries written before the actor
//	          was recorded end with the meta)
const (
	kindLive     = '2'
	kindLiveV1   = 'L'
	offDigest    = 1
	offCreated   = 17
	offLast      = 30
	offAbs       = 43
	offIdle      = 56
	offMetaLen   = 69
	offMeta      = 73
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
	maxUserIDLen = 4096
	maxIPLen     = 64
	maxUALen     = 512
	maxValuesLen = 64 << 10
	maxMetaLen   = 9999
	maxTimestamp = 9999999999999 // 13 digits: the year 2286
	// maxTombstones is the default of Config.MaxTombstones, as the tests
	// use it.
	maxTombstones = DefaultMaxTombstones
	// indexEntryLen is the width of an entry of a user's tombstone index
	// (see keys.go), which only the scripts read: a session ID and its
	// expiry.
	indexEntryLen = sidLen + tsLen
	// The live index (lua/index.lua), which only the scripts write: entry
	// widths, block sizes, and the widths of the numbers in its header and
	// directories.
	seqLen               = 10
	lEntryLen            = seqLen + sidLen         // seq, ID: sign-in order
	xEntryLen            = tsLen + seqLen + sidLen // expiry, seq, ID: expiry order
	blockMax             = 64
	tailMax              = 16
	smallMax             = 32
	smallMin             = 16
	blockPrefix          = "b"
	idLen                = 8
	countLen             = 6
	dirCountLen          = 4
	indexHeaderLen       = idLen + countLen + dirCountLen
	codeLogin            = 'I'
	codeEvicted          = 'E'
	codeLogout           = 'O'
	codeLogoutOthers     = 'Y'
	codeLogoutEverywhere = 'W'
	codeAdmin            = 'A'
	codeRevoked          = 'V'
	codeRotated          = 'T'
	codeExpired          = 'X'
	codeReplaced         = 'R'
	codeSecurity         = 'S'
	codePasswordChange   = 'P'
)

var codeReasons = map[byte]EventType{
	codeLogin:            EventLogin,
	codeEvicted:          ReasonEvicted,
	codeLogout:           ReasonLogout,
	codeLogoutOthers:     ReasonLogoutOthers,
	codeLogoutEverywhere: ReasonLogoutEverywhere,
	codeAdmin:            ReasonAdmin,
	codeRevoked:          ReasonRevoked,
	codeRotated:          ReasonRotated,
	codeExpired:          ReasonExpired,
	codeReplaced:         ReasonReplaced,
	codeSecurity:         ReasonSecurity,
	codePasswordChange:   ReasonPasswordChange,
}

// reasonCodes is codeReasons the other way round.
var reasonCodes = func() map[Reason]byte {
	m := make(map[Reason]byte, len(codeReasons))
	for c, r := range codeReasons {
		m[r] = c
	}
	return m
}()

// actor is who ended a session, as a tombstone and a history entry store
// it after the fixed part.
type actor struct {
	ip, ua, userID string // the acting session's meta, or the ended user's ID
	admin          string // the name an administrator or the app gave
}

// encodeActor builds what follows the acting session's ID in a tombstone
// tail: its meta, then the admin name when there is one.
func encodeActor(ip, ua, userID, admin string) string {
	m := encodeMeta(ip, ua, userID)
	if admin == "" {
		return m
	}
	return string(appendString([]byte(m), admin))
}

// decodeActor reads encodeActor's output.
func decodeActor(s string) (a actor, err error) {
	if a.ip, a.ua, a.userID, s, err = decodeMetaRest(s); err != nil {
		return a, err
	}
	if s == "" {
		return a, nil
	}
	if a.admin, s, err = readString(s); err != nil {
		return a, err
	}
	if s != "" {
		return a, errBadRecord
	}
	return a, nil
}

// errBadRecord is the cause wrapped in ErrUnavailable when Redis hands back
// bytes that are not a record sessioncap wrote.
var errBadRecord = errors.New("malformed record in redis")

// errOldFormat is a record of a format this version no longer reads (see
// the layout above): the session reads as expired.
var errOldFormat = errors.New("record of an older format")

// liveRecord builds a new session's record.
func liveRecord(digest string, created, abs, idle int64, meta, values string) string {
	b := make([]byte, 0, headerLen+len(meta)+len(values))
	b = append(b, kindLive)
	b = append(b, digest...)
	c := ms13(created)
	b = append(b, c...)
	b = append(b, c...)
	b = append(b, ms13(abs)...)
	b = append(b, ms13(idle)...)
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
	idle               int64 // ms, the idle timeout the record was written under
	ip, ua, userID     string
	values             map[string]string
	valuesRaw          string
	prefixLen          int // bytes before the values: Save keeps them
	// tombstone
	at    int64
	bySID [sidLen]byte
	admin string
}

func parseRecord(r string) (parsed, error) {
	var p parsed
	if len(r) < 1 {
		return p, errBadRecord
	}
	p.code = r[0]
	if p.code == kindLiveV1 {
		return p, errOldFormat
	}
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
		if p.abs, err = parseMS(r[offAbs:offIdle]); err != nil {
			return p, err
		}
		if p.idle, err = parseMS(r[offIdle:offMetaLen]); err != nil {
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
	a, err := decodeActor(r[tombMeta:])
	if err != nil {
		return p, err
	}
	p.ip, p.ua, p.userID, p.admin = a.ip, a.ua, a.userID, a.admin
	return p, nil
}
