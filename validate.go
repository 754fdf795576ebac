package sessioncap

import (
	"context"
	"crypto/sha256"
	"errors"
	"strconv"
	"unsafe"

	"github.com/redis/go-redis/v9"
)

// validateCall is everything one Validate sends, in two allocations: one
// string holding every key name and per-call value (and the session's
// public ID, for the result), and the command's argument list, whose
// entries share the string headers stored here (see boxed). This is what
// keeps Validate's allocations close to a plain GET's.
type validateCall struct {
	argv  [3 + 1 + 5]any
	keys  userKeys
	now13 string
	sid   string
	dig   string
	id    string // public session ID
}

// validated is a Validate's Session and its call in one allocation; the
// call's few hundred bytes live as long as the Session does.
type validated struct {
	Session
	call validateCall
}

// fill builds the call's strings into c.
func (c *validateCall) fill(e *Engine, t token, now int64) {
	var b [keysBufLen + tsLen + sidLen + digestLen + 36]byte
	buf := appendKeys(b[:0], e.cfg.KeyPrefix, t.user)
	buf = appendMS13(buf, min(max(now, 0), maxTimestamp))
	buf = append(buf, t.sid[:]...)
	dig := sha256.Sum256(t.secret[:])
	buf = append(buf, dig[:digestLen]...)
	if t.sid != zeroSID {
		buf = appendPublicID(buf, t.sid)
	}
	var rest string
	c.keys, rest = keysIn(string(buf), e.cfg.KeyPrefix)
	c.now13, rest = rest[:tsLen], rest[tsLen:]
	c.sid, rest = rest[:sidLen], rest[sidLen:]
	c.dig, c.id = rest[:digestLen], rest[digestLen:]
}

// script is the call of validate.lua (evalArgv sets the command and the
// script's name), which takes one key and five arguments, not the common
// two and seven.
func (c *validateCall) script(e *Engine) []any {
	c.argv = [...]any{"evalsha", scriptValidate.shaA, "1",
		boxed(&c.keys.data),
		boxed(&c.now13), boxed(&e.idleArg), boxed(&e.touchArg), boxed(&c.sid), boxed(&c.dig)}
	return c.argv[:]
}

// read is the plain HGET of the record, for when no touch is due.
func (c *validateCall) read() []any {
	c.argv[0], c.argv[1], c.argv[2] = "hget", boxed(&c.keys.data), boxed(&c.sid)
	return c.argv[:3]
}

// boxed returns *p as an interface value that shares p's string header,
// where any(*p) would copy the header into an allocation of its own: six
// allocations per scripted Validate, two per cached one (TestValidateAllocs
// pins the counts, so a Go release that breaks the layout assumption
// fails it). The result is an ordinary string in an
// interface (hooks and go-redis see a string); *p must never change
// afterwards, which holds for the call's fields and the Engine's
// formatted constants.
func boxed(p *string) any {
	a := any("")
	(*[2]unsafe.Pointer)(unsafe.Pointer(&a))[1] = unsafe.Pointer(p)
	return a
}

// evalArgv is runOn for a prebuilt script argument list (see
// validateCall): FCALL or EVALSHA, with the same fallbacks. It returns the
// raw reply.
func (e *Engine) evalArgv(ctx context.Context, op Op, s *luaScript, argv []any) (any, error) {
	if e.functions() {
		argv[0], argv[1] = "fcall", s.fnA
		v, err := e.callFunction(ctx, op, func() (any, error) { return e.process(ctx, argv) })
		if !e.afterFCall(ctx, err) {
			e.afterError(err)
			return v, err
		}
		argv[0], argv[1] = "evalsha", s.shaA
	}
	v, err := e.process(ctx, argv)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		e.observe(Observation{Op: op, Outcome: OutcomeScriptRetry})
		numKeys, _ := strconv.Atoi(argv[2].(string))
		keys := make([]string, numKeys)
		for i := range keys {
			keys[i] = argv[3+i].(string)
		}
		v, err = s.eval.Eval(ctx, e.rdb, keys, argv[3+len(keys):]...).Result()
	}
	e.afterError(err)
	return v, err
}

// process sends one prebuilt script call.
func (e *Engine) process(ctx context.Context, argv []any) (any, error) {
	cmd := redis.NewCmd(ctx, argv...)
	cmd.SetFirstKeyPos(3)
	_ = e.rdb.Process(ctx, cmd)
	return cmd.Result()
}

// Validate returns the live session a token belongs to, in one round trip
// and one command: a plain HGET of the record while the engine's touch cache
// proves that no idle refresh is due, otherwise one script call that also
// slides the idle timeout (at most once per TouchInterval). Both read the
// master, never a replica. With Config.CachedValidate the HGET may be
// answered by go-redis's client-side cache (cache.go); a refusal never is.
// Errors: ErrInvalidToken (no Redis call made), ErrExpired,
// ErrEvicted (*EvictedError), ErrRevoked (*RevokedError), ErrUnavailable.
func (e *Engine) Validate(ctx context.Context, tokenStr string) (s *Session, err error) {
	ctx, call := e.begin(ctx, OpValidate)
	defer func() { call.end(err, 0) }()
	t, err := parseToken(tokenStr)
	if err != nil {
		return nil, err
	}
	v := new(validated)
	c := &v.call
	now := e.nowMS(ctx)
	c.fill(e, t, now)
	if seen, ok := e.touched.get(&t.sid); ok && now-seen < e.cfg.TouchInterval.Milliseconds() {
		if !e.cached {
			return e.validateRead(ctx, v, t, now)
		}
		if !e.fence.recent(c.keys.data) {
			s, err := e.validateRead(ctx, v, t, now)
			if err == nil || errors.Is(err, ErrUnavailable) {
				return s, err
			}
		}
		// A cached copy may be older than a rotation, a save or a touch
		// (made here or elsewhere), so the cache may only say yes: a
		// refusal, and any read right after this engine changed the
		// user's sessions, comes from Redis, by the script, which go-redis
		// never caches.
	}
	raw, err := e.evalArgv(ctx, OpValidate, scriptValidate, c.script(e))
	// A live session comes back as its bare record (see validate.lua), one
	// string where an array would cost the reader two more allocations.
	r, live := raw.(string)
	if err != nil || !live {
		reply, err := scriptReply(OpValidate, raw, err)
		if err != nil {
			return nil, err
		}
		return nil, e.ended(ctx, OpValidate, reply, t.sid)
	}
	if err := e.fillSession(&v.Session, r, t.sid, c.id, c.keys); err != nil {
		return nil, unavailable(string(OpValidate), err)
	}
	if !e.ownDigest(t.user, v.Session.UserID) {
		return nil, ErrExpired
	}
	e.touched.put(&t.sid, v.Session.LastSeenAt.UnixMilli())
	return &v.Session, nil
}

// validateRead is Validate when the touch cache vouches that no touch is
// due: one HGET, and in Go the checks validate.lua makes in Lua. A touch
// can only be due later than the cache says (see touchCache), so this path
// never has to write.
func (e *Engine) validateRead(ctx context.Context, v *validated, t token, now int64) (*Session, error) {
	c := &v.call
	// A *StringCmd reads the bulk reply as a string directly, and is what
	// go-redis's cache decodes without a reader (applyCachedFast); with
	// CachedValidate the HGET is cached under its exact arguments and
	// dropped when the user's hash changes (see cache.go).
	cmd := redis.NewStringCmd(ctx, c.read()...)
	cmd.SetFirstKeyPos(1)
	_ = e.rdb.Process(ctx, cmd)
	r, err := cmd.Result()
	e.afterError(err)
	if errors.Is(err, redis.Nil) {
		return nil, ErrExpired
	}
	if err != nil {
		return nil, unavailable(string(OpValidate), err)
	}
	if len(r) < tombMeta {
		return nil, unavailable(string(OpValidate), errBadRecord)
	}
	if r[1:1+digestLen] != c.dig {
		return nil, ErrExpired // another token's session, or none
	}
	if r[0] != kindLive {
		return nil, e.ended(ctx, OpValidate, []any{int64(statusEnded), r}, t.sid)
	}
	if err := e.fillSession(&v.Session, r, t.sid, c.id, c.keys); err != nil {
		return nil, unavailable(string(OpValidate), err)
	}
	if !e.ownDigest(t.user, v.Session.UserID) {
		return nil, ErrExpired
	}
	if v.Session.ExpiresAt.UnixMilli() <= now {
		return nil, ErrExpired
	}
	return &v.Session, nil
}
