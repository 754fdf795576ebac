package sessioncap

import (
	"context"
	_ "embed"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed lua/protocol.lua
	luaProtocol string
	//go:embed lua/index.lua
	luaIndex string
	//go:embed lua/lib.lua
	luaLib string
	//go:embed lua/login.lua
	luaLogin string
	//go:embed lua/validate.lua
	luaValidate string
	//go:embed lua/save.lua
	luaSave string
	//go:embed lua/rotate.lua
	luaRotate string
	//go:embed lua/end.lua
	luaEnd string
	//go:embed lua/sessions.lua
	luaSessions string
)

// luaIndexModule is index.lua wrapped in a function, for validate.lua:
// only its refresh path uses the index, and a script pays for every
// function it defines on every call.
var luaIndexModule = "local function indexModule()\n" + luaIndex +
	"\nindexBegin()\nreturn {load = indexLoad, move = indexMove, save = indexSave, writes = writes, dead = dead}\nend\n"

// The scripts, compiled once. Each EVAL form is the live index (index.lua),
// the shared prelude (lib.lua), a call of its begin, and the script's own
// body, so helpers like pruning live in one place, with the protocol's
// values (protocol.lua) inlined (see luainline.go); validate, the hot
// path, takes the index only. The function library (library.go) holds the
// same bodies.
var (
	luaPrelude     = luaIndex + luaLib
	scriptLogin    = newLuaScript("login", script(luaPrelude, "begin()\n", luaLogin))
	scriptValidate = newLuaScript("validate", script(luaIndexModule, luaValidate))
	scriptSave     = newLuaScript("save", script(luaPrelude, "begin()\n", luaSave))
	scriptRotate   = newLuaScript("rotate", script(luaPrelude, "begin()\n", luaRotate))
	scriptEnd      = newLuaScript("end", script(luaPrelude, "begin()\n", luaEnd))
	scriptSessions = newLuaScript("sessions", script(luaPrelude, "begin()\n", luaSessions))
)

// The statuses that start a script's array reply (STATUS_* in
// lua/protocol.lua).
const (
	statusFull     = -1 // Login at the cap under RejectNew; the live sessions follow
	statusNone     = 0  // no such live session, or not this token's
	statusOK       = 1
	statusEnded    = 2 // the token's session ended; its tombstone follows
	statusExpired  = 3 // Validate: timed out
	statusConflict = 4 // Save: the values changed since they were read
	statusCeiling  = 5 // Login: the user holds Config.SessionCeiling sessions
)

// args builds the ARGV common to every script, followed by extra.
func (e *Engine) args(now int64, k userKeys, extra ...any) []any {
	a := make([]any, 0, 8+len(extra))
	a = append(a, ms13(now), e.idleArg, e.histLimitArg, e.histTTLArg, e.pubArg, k.channel, e.tombTTLArg, e.maxTombsArg)
	return append(a, extra...)
}

// run executes a script: its function by FCALL, loading the library when
// the server lacks it, or else by EVALSHA, falling back to EVAL when the
// server lost its script cache (restart, failover, SCRIPT FLUSH). Either
// miss is observed as a script retry.
func (e *Engine) run(ctx context.Context, op Op, s *luaScript, k userKeys, args []any) ([]any, error) {
	return e.runOn(ctx, e.rdb, op, s, k, args)
}

func (e *Engine) runOn(ctx context.Context, c scriptCaller, op Op, s *luaScript, k userKeys, args []any) ([]any, error) {
	keys := k.list()
	defer e.fence.mark(k.data)
	if e.functions() {
		v, err := e.callFunction(ctx, op, func() (any, error) { return c.FCall(ctx, s.fn, keys, args...).Result() })
		if !e.afterFCall(ctx, err) {
			e.afterError(err)
			return scriptReply(op, v, err)
		}
	}
	v, err := s.eval.EvalSha(ctx, c, keys, args...).Result()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		e.observe(Observation{Op: op, Outcome: OutcomeScriptRetry})
		v, err = s.eval.Eval(ctx, c, keys, args...).Result()
	}
	e.afterError(err)
	return scriptReply(op, v, err)
}

// afterError makes a cluster client re-read its slot map after a failure
// that was not a Redis reply: a refused or reset connection, a timeout.
// go-redis reloads it on MOVED and ASK, but a master killed outright never
// answers either, so without this the users of its slots would keep failing
// until the periodic reload, long after a replica took over. The reload is
// lazy and coalesced, so a burst of failures costs one CLUSTER SLOTS.
func (e *Engine) afterError(err error) {
	if err == nil {
		return
	}
	cc, ok := e.rdb.(*redis.ClusterClient)
	if !ok {
		return
	}
	var reply redis.Error
	if errors.As(err, &reply) && !redis.HasErrorPrefix(err, "CLUSTERDOWN") {
		return
	}
	cc.ReloadState(context.Background())
}

// scriptReply checks the shape every script reply shares: a non-empty
// array that starts with an integer status.
func scriptReply(op Op, v any, err error) ([]any, error) {
	if err != nil {
		return nil, unavailable(string(op), err)
	}
	reply, ok := v.([]any)
	if !ok || len(reply) == 0 {
		return nil, unavailable(string(op), fmt.Errorf("unexpected script reply %T", v))
	}
	if _, ok := reply[0].(int64); !ok {
		return nil, unavailable(string(op), fmt.Errorf("unexpected script status %T", reply[0]))
	}
	return reply, nil
}

func status(reply []any) int64 { return reply[0].(int64) }

func replyString(op string, reply []any, i int) (string, error) {
	if i >= len(reply) {
		return "", unavailable(op, fmt.Errorf("script reply too short: %d items", len(reply)))
	}
	s, ok := reply[i].(string)
	if !ok {
		return "", unavailable(op, fmt.Errorf("script reply item %d is %T, want string", i, reply[i]))
	}
	return s, nil
}

func replyInt(op string, reply []any, i int) (int64, error) {
	if i >= len(reply) {
		return 0, unavailable(op, fmt.Errorf("script reply too short: %d items", len(reply)))
	}
	n, ok := reply[i].(int64)
	if !ok {
		return 0, unavailable(op, fmt.Errorf("script reply item %d is %T, want integer", i, reply[i]))
	}
	return n, nil
}

// ended interprets the statuses the token-checked scripts share: none or
// expired, or a tombstone (evicted or revoked).
func (e *Engine) ended(ctx context.Context, op Op, reply []any, sid [sidLen]byte) error {
	switch status(reply) {
	case statusNone, statusExpired:
		return ErrExpired
	case statusEnded:
		r, err := replyString(string(op), reply, 1)
		if err != nil {
			return err
		}
		p, err := parseRecord(r)
		if errors.Is(err, errOldFormat) {
			return ErrExpired // a session of a format this version does not read
		}
		if err != nil || p.live {
			return unavailable(string(op), errBadRecord)
		}
		// A tombstone past its TTL that nobody pruned yet reads as expired.
		if e.nowMS(ctx) >= p.at+e.cfg.TombstoneTTL.Milliseconds() {
			return ErrExpired
		}
		return endingError(p, sid)
	}
	return unavailable(string(op), fmt.Errorf("unexpected status %d", status(reply)))
}
