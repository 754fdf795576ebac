package sessioncap

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"
)

// Op names an Engine operation in Observations, spans and logs. Its values
// are snake_case, as metric label values usually are ("logout_others"),
// where a Reason, which users read, is hyphenated ("logout-others"); both
// sets of values are stable, since dashboards and clients match on them.
type Op string

// The operations an Observer hears about.
const (
	OpLogin        Op = "login"
	OpValidate     Op = "validate"
	OpSave         Op = "save"
	OpRotate       Op = "rotate"
	OpLogout       Op = "logout"
	OpLogoutOthers Op = "logout_others"
	OpLogoutAll    Op = "logout_all"
	OpRevoke       Op = "revoke"
	OpSessions     Op = "sessions"
	OpHistory      Op = "history"
)

// Outcome is how an operation ended, in a small fixed set suitable as a
// metric label.
type Outcome string

// The outcomes.
const (
	OutcomeOK          Outcome = "ok"
	OutcomeInvalid     Outcome = "invalid"      // bad token, user ID or input: no Redis call
	OutcomeExpired     Outcome = "expired"      // ErrExpired
	OutcomeEvicted     Outcome = "evicted"      // ErrEvicted
	OutcomeRevoked     Outcome = "revoked"      // ErrRevoked
	OutcomeRejected    Outcome = "rejected"     // ErrLimitReached
	OutcomeNotFound    Outcome = "not_found"    // ErrNotFound
	OutcomeConflict    Outcome = "conflict"     // ErrConflict
	OutcomeRedisError  Outcome = "redis_error"  // ErrUnavailable
	OutcomeError       Outcome = "error"        // anything else (a Limiter error, say)
	OutcomeScriptRetry Outcome = "script_retry" // EVALSHA missed the script cache and EVAL ran it
)

// Observation is one event reported to an Observer.
type Observation struct {
	Op       Op
	Outcome  Outcome
	Evicted  int           // sessions evicted by this login
	Duration time.Duration // wall time of the call, zero for script retries
}

// Observer receives one Observation per Engine call, plus one per script
// cache miss. It is called synchronously, so it must be fast and safe for
// concurrent use.
type Observer interface {
	Observe(Observation)
}

// Stats is a ready-made Observer that counts. Read it with Snapshot and
// export the numbers however the app likes (the demo app serves them to
// Prometheus). The zero value is ready to use.
type Stats struct {
	logins, evictions, rejections, scriptRetries, redisErrors atomic.Uint64
	validations                                               [outcomeCount]atomic.Uint64
}

var outcomes = [...]Outcome{OutcomeOK, OutcomeInvalid, OutcomeExpired, OutcomeEvicted, OutcomeRevoked,
	OutcomeRejected, OutcomeNotFound, OutcomeConflict, OutcomeRedisError, OutcomeError}

const outcomeCount = len(outcomes)

func outcomeIndex(o Outcome) int {
	for i, x := range outcomes {
		if x == o {
			return i
		}
	}
	return outcomeCount - 1
}

// Observe implements Observer.
func (s *Stats) Observe(o Observation) {
	if o.Outcome == OutcomeScriptRetry {
		s.scriptRetries.Add(1)
		return
	}
	if o.Outcome == OutcomeRedisError {
		s.redisErrors.Add(1)
	}
	switch o.Op {
	case OpLogin:
		switch o.Outcome {
		case OutcomeOK:
			s.logins.Add(1)
		case OutcomeRejected:
			s.rejections.Add(1)
		}
		s.evictions.Add(uint64(o.Evicted))
	case OpValidate:
		s.validations[outcomeIndex(o.Outcome)].Add(1)
	}
}

// StatsSnapshot is a point-in-time copy of Stats.
type StatsSnapshot struct {
	Logins        uint64             // successful logins
	Evictions     uint64             // sessions evicted by logins
	Rejections    uint64             // logins refused under RejectNew
	Validations   map[Outcome]uint64 // Validate calls by outcome
	ScriptRetries uint64             // script cache misses (EVALSHA then EVAL)
	RedisErrors   uint64             // calls that failed with ErrUnavailable
}

// Snapshot copies the counters.
func (s *Stats) Snapshot() StatsSnapshot {
	out := StatsSnapshot{
		Logins:        s.logins.Load(),
		Evictions:     s.evictions.Load(),
		Rejections:    s.rejections.Load(),
		ScriptRetries: s.scriptRetries.Load(),
		RedisErrors:   s.redisErrors.Load(),
		Validations:   make(map[Outcome]uint64, outcomeCount),
	}
	for i, o := range outcomes {
		out.Validations[o] = s.validations[i].Load()
	}
	return out
}

// OutcomeOf classifies the error an Engine call returned, as the Engine
// reports it to the Observer: one classification for metrics, spans and
// HTTP responses alike, so they never disagree about what a failure was.
// Wrapped errors are classified by what they wrap.
func OutcomeOf(err error) Outcome {
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, ErrUnavailable):
		return OutcomeRedisError
	case errors.Is(err, ErrEvicted):
		return OutcomeEvicted
	case errors.Is(err, ErrRevoked):
		return OutcomeRevoked
	case errors.Is(err, ErrExpired):
		return OutcomeExpired
	case errors.Is(err, ErrLimitReached):
		return OutcomeRejected
	case errors.Is(err, ErrNotFound):
		return OutcomeNotFound
	case errors.Is(err, ErrConflict):
		return OutcomeConflict
	case errors.Is(err, ErrInvalidToken), errors.Is(err, ErrInvalidUserID),
		errors.Is(err, ErrInvalidSessionID), errors.Is(err, ErrInvalidInput):
		return OutcomeInvalid
	}
	return OutcomeError
}

func (e *Engine) observe(o Observation) {
	if e.cfg.Observer != nil {
		e.cfg.Observer.Observe(o)
	}
}

// Tracer starts a span for one Engine operation. It returns the context the
// operation runs in (so spans of an instrumented Redis client, such as
// redisotel's "evalsha", nest under it) and a function called once with the
// operation's error when it ends. Wire it to OpenTelemetry with a span named
// "sessioncap."+string(op); the demo app shows how.
type Tracer func(ctx context.Context, op Op) (context.Context, func(err error))

// opCall is one operation in flight, as begin started it. It is a value,
// not a closure, so starting and ending an operation allocates nothing: it
// runs on every Validate.
type opCall struct {
	e       *Engine
	ctx     context.Context
	op      Op
	start   time.Time
	endSpan func(error)
}

// begin starts an operation: a span if Config.Tracer is set, and a timer.
// The context it returns is the one to run the operation in, so an
// instrumented client's spans nest under the operation's.
func (e *Engine) begin(ctx context.Context, op Op) (context.Context, opCall) {
	c := opCall{e: e, op: op}
	if e.cfg.Observer != nil {
		// Only an Observer reads the duration: the clock read is spared
		// on every Validate of an engine without one.
		c.start = time.Now()
	}
	if e.cfg.Tracer != nil {
		ctx, c.endSpan = e.cfg.Tracer(ctx, op)
	}
	c.ctx = ctx
	return ctx, c
}

// end reports the outcome to the Observer, the span and, for Redis
// failures, the logger. It never logs tokens: only ops, outcomes and error
// text, which holds no token or secret.
func (c opCall) end(err error, evicted int) {
	if err == nil && c.e.cfg.Observer == nil && c.endSpan == nil {
		return
	}
	o := Observation{Op: c.op, Outcome: OutcomeOf(err), Evicted: evicted}
	if c.e.cfg.Observer != nil {
		o.Duration = time.Since(c.start)
	}
	c.e.observe(o)
	if o.Outcome == OutcomeRedisError {
		c.e.cfg.Logger.LogAttrs(c.ctx, slog.LevelError, "sessioncap call failed",
			slog.String("op", string(c.op)), slog.String("error", err.Error()))
	}
	if c.endSpan != nil {
		c.endSpan(err)
	}
}

func evictedCount(r *LoginResult) int {
	if r == nil {
		return 0
	}
	return len(r.Evicted)
}
