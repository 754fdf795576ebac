package sessioncap

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"unicode/utf8"
)

// Meta describes a new session. IP and UserAgent are stored for the devices
// list and eviction messages; longer values are cut to 64 and 512 bytes.
// Values are the session's initial app data (64 KiB at most, encoded).
type Meta struct {
	IP        string
	UserAgent string
	Values    map[string]string
	// Token, when set, is the new session's token, made beforehand by
	// Engine.NewToken for this user. A Login that failed with
	// ErrUnavailable may have run anyway (the reply was lost, or the
	// deadline passed after the script ran); calling Login again with the
	// same Token then finds the session the first call created instead of
	// creating, and evicting for, another. The retried call reports no
	// evictions: they were made, once, by the first. Empty: Login draws a
	// fresh token.
	Token string
	// Replace is the public ID of one of the user's live sessions that
	// this sign-in ends in the same atomic step, before the cap is counted:
	// the session the user chose to sign out at a full cap under RejectNew
	// (a *LimitError lists them), or this device's previous session. The
	// ended device hears ReasonReplaced, by this sign-in. A session that is
	// no longer live is ignored.
	Replace string
	// SignOutOthers, when set, makes this sign-in end every other session
	// of the user in the same atomic step, recording this reason:
	// ReasonSecurity for "this wasn't me: sign out everywhere",
	// ReasonPasswordChange after a password reset, or ReasonLogoutOthers.
	// The ended devices hear it by this sign-in.
	SignOutOthers Reason
}

// NewToken draws a token for a session of userID that does not exist yet,
// to pass as Meta.Token so that Login can be retried safely. It does no
// I/O; the token becomes valid only when a Login with it succeeds.
func (e *Engine) NewToken(userID string) (string, error) {
	if err := checkUserID(userID); err != nil {
		return "", err
	}
	t, err := newToken(e.digest(userID))
	if err != nil {
		return "", err
	}
	return t.String(), nil
}

// LoginResult is what Login returns.
type LoginResult struct {
	// Token is the secret bearer token, for a cookie or an Authorization
	// header. It is 87 URL-safe characters and is never stored in Redis.
	Token string
	// SessionID is the session's public ID (a UUID), safe to show and log.
	SessionID string
	// Evicted lists the public IDs of the sessions this login signed out:
	// evicted for the cap, replaced (Meta.Replace) or signed out
	// (Meta.SignOutOthers).
	Evicted []string
	// EvictedDevices describes the same sessions, in the same order, so the
	// new device can say which devices it signed out.
	EvictedDevices []Device
	// Session is the new session, as Validate would return it.
	Session *Session
}

// clip shortens s to at most n bytes without splitting a UTF-8 sequence.
// Bytes that are not UTF-8 are kept as they are (a User-Agent header may
// hold anything) and may be cut anywhere; clip never indexes before the
// start of s, whatever the bytes.
func clip(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	// s[n] is the first byte dropped. If it continues a sequence that
	// starts at most UTFMax-1 bytes earlier, cut before that start.
	cut := n
	for i := 1; i < utf8.UTFMax && cut > 0 && !utf8.RuneStart(s[cut]); i++ {
		cut--
	}
	if !utf8.RuneStart(s[cut]) {
		cut = n // not part of a sequence: invalid bytes, cut at n
	}
	return s[:cut]
}

// limitFor asks the Limiter, if any, for the user's cap.
func (e *Engine) limitFor(ctx context.Context, userID string) (int, error) {
	if e.cfg.Limiter == nil {
		return e.cfg.MaxSessions, nil
	}
	n, err := e.cfg.Limiter.Limit(ctx, userID)
	if err != nil {
		return 0, &limiterError{cause: err}
	}
	switch {
	case n == 0:
		return e.cfg.MaxSessions, nil
	case n < 0 && n != Unlimited:
		return 0, fmt.Errorf("%w: limiter returned %d for a user", ErrInvalidConfig, n)
	}
	return n, nil
}

// The overflow policy as login.lua reads it (REJECT there).
const (
	evictAtCap  = "0"
	rejectAtCap = "1"
)

// Login creates a session for userID and enforces the user's cap in the same
// atomic step: one script call, one round trip. Under EvictOldest the oldest
// sessions above the cap are signed out and listed in the result; under
// RejectNew a full cap returns a *LimitError.
func (e *Engine) Login(ctx context.Context, userID string, meta Meta) (res *LoginResult, err error) {
	ctx, call := e.begin(ctx, OpLogin)
	defer func() { call.end(err, evictedCount(res)) }()
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	values, err := encodeValues(meta.Values)
	if err != nil {
		return nil, err
	}
	limit, err := e.limitFor(ctx, userID)
	if err != nil {
		return nil, err
	}
	digest := e.digest(userID)
	k := keysFor(e.cfg.KeyPrefix, digest)
	var tok token
	if meta.Token != "" {
		// A token from NewToken: a resend of this Login finds the session
		// its first attempt created (the script probes for the session ID)
		// instead of creating, and evicting for, another.
		if tok, err = parseToken(meta.Token); err != nil || tok.user != digest {
			return nil, ErrInvalidToken
		}
	} else if tok, err = newToken(digest); err != nil {
		return nil, err
	}
	now := e.nowMS(ctx)
	abs := now + e.cfg.AbsoluteTimeout.Milliseconds()
	ip, ua := clip(meta.IP, maxIPLen), clip(meta.UserAgent, maxUALen)
	m := encodeMeta(ip, ua, userID)
	if len(m) > maxMetaLen {
		return nil, fmt.Errorf("%w: metadata too large", ErrInvalidInput)
	}
	var replace, others string
	if meta.Replace != "" {
		r, err := parsePublicID(meta.Replace)
		if err != nil {
			return nil, err
		}
		replace = string(r[:])
	}
	if meta.SignOutOthers != "" {
		c, err := EndOptions{Reason: meta.SignOutOthers}.code("", othersReasons)
		if err != nil {
			return nil, err
		}
		others = string(rune(c))
	}
	rec := liveRecord(tok.secretDigest(), now, abs, e.idleMS(), m, values)
	sid := string(tok.sid[:])
	now13 := ms13(now)
	tail := now13 + sid + m
	// The history entry is built only where the script records it
	// (history or events on: lib.lua's recording).
	var entry string
	if e.cfg.HistoryLimit != 0 || e.pubArg != "" {
		entry = string(rune(codeLogin)) + now13 + sid + string(zeroSID[:]) + m
	}
	reject := evictAtCap
	if e.cfg.Overflow == RejectNew {
		reject = rejectAtCap
	}
	exp := expiry(now, abs, e.idleMS())
	reply, err := e.run(ctx, OpLogin, scriptLogin, k,
		e.args(now, k, sid, rec, strconv.Itoa(limit), reject, tail, entry, ms13(exp), replace, others, e.ceilingArg))
	if err != nil {
		return nil, err
	}
	if status(reply) == statusCeiling {
		return nil, ErrSessionCeiling
	}
	if status(reply) == statusFull {
		sessions, err := e.parseList(string(OpLogin), reply, k)
		if err != nil {
			return nil, err
		}
		return nil, &LimitError{UserID: userID, Limit: limit, Sessions: sessions}
	}
	if status(reply) != statusOK {
		return nil, unavailable(string(OpLogin), fmt.Errorf("unexpected login status %d", status(reply)))
	}
	res = &LoginResult{Token: tok.String(), SessionID: publicID(tok.sid)}
	// The ended sessions come as pairs: raw ID, meta.
	for i := 1; i < len(reply); i += 2 {
		s, err := replyString(string(OpLogin), reply, i)
		if err != nil || len(s) != sidLen {
			return nil, unavailable(string(OpLogin), fmt.Errorf("bad evicted session ID in reply"))
		}
		m, err := replyString(string(OpLogin), reply, i+1)
		if err != nil {
			return nil, err
		}
		// The sign-in happened: an ended record whose meta cannot be read
		// (written by something else) costs its device details, not the
		// caller's session.
		ip, ua, _, _ := decodeMeta(m)
		id := publicID([sidLen]byte([]byte(s)))
		res.Evicted = append(res.Evicted, id)
		res.EvictedDevices = append(res.EvictedDevices, Device{SessionID: id, IP: ip, UserAgent: ua})
	}
	sess, err := e.session(rec, tok.sid, k)
	if err != nil {
		return nil, unavailable(string(OpLogin), err)
	}
	res.Session = sess
	e.touched.put(&tok.sid, now)
	e.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "sessioncap login", slog.String("user", userID),
		slog.String("session", res.SessionID), slog.Any("evicted", res.Evicted), slog.Int("limit", limit))
	return res, nil
}
