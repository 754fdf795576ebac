package sessioncap

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strconv"
	"sync"
)

// The modes of lua/end.lua (MODE_* there): which sessions an ending ends,
// and whether a token proves the right to.
const (
	modeLogout       = "s" // Logout: the token's session, and under LogoutEverywhere every other
	modeLogoutOthers = "o" // LogoutOthers: every session but the token's
	modeRevoke       = "i" // Revoke: one session by public ID
	modeLogoutAll    = "a" // LogoutAll: every session of the user
)

// endReply collects the public IDs of the sessions an end script ended.
func endReply(op Op, reply []any) ([]string, error) {
	ids := make([]string, 0, len(reply)-1)
	for i := 1; i < len(reply); i++ {
		s, err := replyString(string(op), reply, i)
		if err != nil {
			return nil, err
		}
		if len(s) != sidLen {
			return nil, unavailable(string(op), errBadRecord)
		}
		ids = append(ids, publicID([sidLen]byte([]byte(s))))
	}
	return ids, nil
}

// endByToken runs the end script in a token-checked mode.
func (e *Engine) endByToken(ctx context.Context, op Op, token, mode, otherCode string) ([]string, error) {
	t, err := parseToken(token)
	if err != nil {
		return nil, err
	}
	k := keysFor(e.cfg.KeyPrefix, t.user)
	reply, err := e.write(ctx, op, scriptEnd, k,
		e.args(e.nowMS(ctx), k, mode, string(t.sid[:]), t.secretDigest(), otherCode, "", ""))
	if err != nil {
		return nil, err
	}
	if status(reply) != statusOK {
		return nil, e.ended(ctx, op, reply, t.sid)
	}
	ids, err := endReply(op, reply)
	if err == nil {
		e.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "sessioncap sessions ended", slog.String("op", string(op)),
			slog.String("by", publicID(t.sid)), slog.Any("sessions", ids))
	}
	return ids, err
}

// Logout ends the session behind token (and, with Config.LogoutEverywhere,
// every other session of the same user). A later Validate of the token
// returns a *RevokedError with ReasonLogout until the tombstone expires.
func (e *Engine) Logout(ctx context.Context, token string) (err error) {
	ctx, call := e.begin(ctx, OpLogout)
	defer func() { call.end(err, 0) }()
	others := ""
	if e.cfg.LogoutEverywhere {
		others = string(rune(codeLogoutEverywhere))
	}
	_, err = e.endByToken(ctx, OpLogout, token, modeLogout, others)
	return err
}

// LogoutOthers is "sign out all other devices": it ends every session of the
// token's user except the token's own, and returns their public IDs.
func (e *Engine) LogoutOthers(ctx context.Context, token string) (ended []string, err error) {
	ctx, call := e.begin(ctx, OpLogoutOthers)
	defer func() { call.end(err, 0) }()
	return e.endByToken(ctx, OpLogoutOthers, token, modeLogoutOthers, string(rune(codeLogoutOthers)))
}

// logoutAllChunk is the most sessions one LogoutAll script call ends: a
// user at the SessionCeiling is ended in a few calls of bounded length,
// never in one call long enough to stall Redis for everyone else.
const logoutAllChunk = 200

// endUser runs the end script for one user without a token, recording
// code as the reason and by as who acted, and returns the public IDs it
// ended and how many that is. In modeLogoutAll it runs once per chunk until
// the user has no live session left; the count is kept in Redis under one
// ID for the whole LogoutAll, so it is the true total even when go-redis
// resent a chunk whose reply was lost (whose IDs are then missing from the
// list, but not from the count).
func (e *Engine) endUser(ctx context.Context, op Op, userID, mode string, sid [sidLen]byte, code byte, by Actor) ([]string, int, error) {
	if err := checkUserID(userID); err != nil {
		return nil, 0, err
	}
	k := e.keysOf(userID)
	var callID string
	if mode == modeLogoutAll {
		callID = newCallID()
	}
	var all []string
	total := 0
	// A user has at most SessionCeiling live sessions, but sign-ins may
	// race the LogoutAll: it stops after twice the chunks the ceiling needs.
	for round := 0; round <= 2*e.cfg.SessionCeiling/logoutAllChunk+1; round++ {
		now := e.nowMS(ctx)
		tail := ms13(now) + by.tail(userID)
		reply, err := e.write(ctx, op, scriptEnd, k,
			e.args(now, k, mode, string(sid[:]), "", "", tail, string(rune(code)), strconv.Itoa(logoutAllChunk), callID))
		if err != nil {
			e.logEnded(ctx, op, userID, code, all)
			return all, total, err
		}
		more := false
		if mode == modeLogoutAll {
			n, err1 := replyInt(string(op), reply, 1)
			m, err2 := replyInt(string(op), reply, 2)
			if err := errors.Join(err1, err2); err != nil {
				e.logEnded(ctx, op, userID, code, all)
				return all, total, err
			}
			total, more = int(n), m == 1
			reply = append(reply[:1:1], reply[3:]...)
		}
		ids, err := endReply(op, reply)
		if err != nil {
			e.logEnded(ctx, op, userID, code, all)
			return all, total, err
		}
		all = append(all, ids...)
		if mode != modeLogoutAll {
			total = len(ids)
		}
		if !more {
			break
		}
	}
	e.logEnded(ctx, op, userID, code, all)
	return all, total, nil
}

// logEnded logs the sessions an admin-side ending ended.
func (e *Engine) logEnded(ctx context.Context, op Op, userID string, code byte, ids []string) {
	if len(ids) > 0 {
		e.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "sessioncap sessions ended", slog.String("op", string(op)),
			slog.String("user", userID), slog.Any("sessions", ids), slog.String("reason", string(codeReasons[code])))
	}
}

// newCallID names one LogoutAll across its chunks and their retries.
func newCallID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Revoke ends one session of userID by its public ID, as from a "your
// devices" page or an admin console. ErrNotFound if it is not live. The
// ended device hears ReasonRevoked and no actor; RevokeWith says who acted.
func (e *Engine) Revoke(ctx context.Context, userID, sessionID string) (err error) {
	return e.RevokeWith(ctx, userID, sessionID, EndOptions{})
}

// RevokeWith is Revoke that records why (opts.Reason, default
// ReasonRevoked) and who acted (opts.By): "revoked from Chrome on Linux",
// or "signed out by support". A retry after a lost reply succeeds again.
func (e *Engine) RevokeWith(ctx context.Context, userID, sessionID string, opts EndOptions) (err error) {
	ctx, call := e.begin(ctx, OpRevoke)
	defer func() { call.end(err, 0) }()
	sid, err := parsePublicID(sessionID)
	if err != nil {
		return err
	}
	code, err := opts.code(ReasonRevoked, revokeReasons)
	if err != nil {
		return err
	}
	if err := opts.By.check(userID); err != nil {
		return err
	}
	ended, _, err := e.endUser(ctx, OpRevoke, userID, modeRevoke, sid, code, opts.By)
	if err != nil {
		return err
	}
	if len(ended) == 0 {
		return ErrNotFound
	}
	return nil
}

// LogoutAll ends every session of each given user (admin bulk logout) and
// returns how many sessions it ended. Users are independent: each is one
// script call in that user's slot (a user with more than 200 sessions takes
// one call per 200), run concurrently; the first error is returned after
// all calls finish, with the count of what did succeed. The
// ended devices hear ReasonAdmin; LogoutAllWith says who acted and why.
func (e *Engine) LogoutAll(ctx context.Context, userIDs ...string) (ended int, err error) {
	return e.LogoutAllWith(ctx, EndOptions{}, userIDs...)
}

// LogoutAllWith is LogoutAll that records why (opts.Reason, default
// ReasonAdmin) and who acted: an administrator (opts.By.Admin), or, for
// one user, one of that user's sessions (opts.By.Session), as in "this
// wasn't me: sign out everywhere" (ReasonSecurity).
func (e *Engine) LogoutAllWith(ctx context.Context, opts EndOptions, userIDs ...string) (ended int, err error) {
	ctx, call := e.begin(ctx, OpLogoutAll)
	defer func() { call.end(err, 0) }()
	code, err := opts.code(ReasonAdmin, logoutAllReasons)
	if err != nil {
		return 0, err
	}
	for _, u := range userIDs {
		if err := checkUserID(u); err != nil {
			return 0, err
		}
		if err := opts.By.check(u); err != nil {
			return 0, err
		}
	}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		firstErr error
		sem      = make(chan struct{}, 8)
	)
	for _, u := range userIDs {
		wg.Add(1)
		sem <- struct{}{}
		go func(u string) {
			defer func() { <-sem; wg.Done() }()
			_, n, err := e.endUser(ctx, OpLogoutAll, u, modeLogoutAll, zeroSID, code, opts.By)
			mu.Lock()
			defer mu.Unlock()
			ended += n
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}(u)
	}
	wg.Wait()
	return ended, firstErr
}

// LogoutOthersWith is LogoutOthers that records why: ReasonLogoutOthers
// (the default), ReasonSecurity ("this wasn't me", from a device the user
// trusts) or ReasonPasswordChange (after the password was changed on this
// device). The token's session is the actor the ended devices are told of.
func (e *Engine) LogoutOthersWith(ctx context.Context, token string, reason Reason) (ended []string, err error) {
	ctx, call := e.begin(ctx, OpLogoutOthers)
	defer func() { call.end(err, 0) }()
	code, err := EndOptions{Reason: reason}.code(ReasonLogoutOthers, othersReasons)
	if err != nil {
		return nil, err
	}
	return e.endByToken(ctx, OpLogoutOthers, token, modeLogoutOthers, string(rune(code)))
}
