package sessioncap

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Overflow is what Login does when the user already holds their maximum
// number of live sessions.
type Overflow int

const (
	// EvictOldest signs out the oldest sessions to make room for the new
	// one. The evicted devices learn why on their next request.
	EvictOldest Overflow = iota
	// RejectNew refuses the new sign-in with a *LimitError that lists the
	// live sessions, so the user can pick one to sign out.
	RejectNew
)

// String returns "evict" or "reject".
func (o Overflow) String() string {
	switch o {
	case EvictOldest:
		return "evict"
	case RejectNew:
		return "reject"
	}
	return fmt.Sprintf("Overflow(%d)", int(o))
}

// EventMode selects how session endings are published for live subscribers.
type EventMode int

const (
	// EventsOff publishes nothing (the default): no Pub/Sub traffic.
	EventsOff EventMode = iota
	// EventsPubSub publishes with PUBLISH on a per-user channel. It works on
	// every Redis and on miniredis; on a Cluster, PUBLISH is broadcast to
	// every node, which costs more as the cluster grows.
	EventsPubSub
	// EventsSharded publishes with SPUBLISH (Redis 7.0+) on a per-user
	// channel that shares the user's hash slot, so on a Cluster only the
	// shard that owns the user carries the message.
	EventsSharded
)

// NoIdleTimeout, as Config.IdleTimeout, turns the idle timeout off: sessions
// then end only at their absolute timeout or when ended on purpose.
const NoIdleTimeout time.Duration = -1

// NoTouchCache, as Config.TouchCacheSize, turns the touch cache off.
const NoTouchCache = -1

// HistoryAll, as Config.HistoryLimit, keeps every history record (until
// HistoryTTL passes without a new record).
const HistoryAll = -1

// Defaults. The reasoning is in the Config field docs.
const (
	DefaultMaxSessions     = 1
	DefaultIdleTimeout     = 30 * time.Minute
	DefaultAbsoluteTimeout = 24 * time.Hour
	DefaultTombstoneTTL    = 24 * time.Hour
	DefaultHistoryTTL      = 90 * 24 * time.Hour
	DefaultKeyPrefix       = "sc"
	DefaultUpdateAttempts  = 8
	DefaultTouchCacheSize  = 1 << 16
	DefaultClockSync       = 10 * time.Second
	DefaultMaxTombstones   = 16
	DefaultSessionCeiling  = 1000
	MaxMaxTombstones       = 10000
)

// Config configures an Engine. The zero value is usable: New fills every
// zero field with the default documented on it.
type Config struct {
	// MaxSessions is the number of live sessions one user may hold when
	// Limiter does not decide otherwise. Default 1 (one device at a time);
	// Unlimited lifts the cap. Other values below 1 are rejected.
	MaxSessions int

	// SessionCeiling is the most live sessions any one user may hold,
	// whatever MaxSessions or the Limiter say, Unlimited included: a
	// sign-in that would pass it is refused with ErrSessionCeiling, so one
	// account (a leaked password, a script signing in in a loop) cannot
	// grow without bound and slow Redis for everyone. Default 1,000; a cap
	// above it is ErrInvalidConfig (MaxSessions) or the ceiling (Limiter).
	SessionCeiling int

	// Limiter, if set, decides the cap per user at each Login (admins
	// unlimited, plans with 1 / 2 / 4 screens). Returning 0 falls back to
	// MaxSessions. Default nil.
	Limiter Limiter

	// Overflow is what Login does at the cap. Default EvictOldest.
	Overflow Overflow

	// IdleTimeout ends a session after this long without a Validate.
	// Default 30 minutes: the upper end of OWASP's advice for low-risk
	// applications (15 to 30 minutes), so a shared or stolen device does not
	// stay signed in for long, while a user reading a page does not get
	// signed out. NoIdleTimeout turns it off; streaming clients that
	// heartbeat every few minutes can keep the default.
	IdleTimeout time.Duration

	// AbsoluteTimeout ends a session this long after sign-in, however active.
	// Default 24 hours: a stolen token stops working within a day, and users
	// sign in about once a day, which is what per-seat products expect.
	// It must be at least IdleTimeout.
	AbsoluteTimeout time.Duration

	// TouchInterval is how stale a session's last-seen time may get before
	// Validate writes it back. Validate is read-only for calls closer together
	// than this, which keeps the hot path cheap; the idle timeout is then
	// measured from a last-seen time at most TouchInterval old. Default
	// IdleTimeout/30 (one minute for the default), and 1 minute when the idle
	// timeout is off. Must be below IdleTimeout.
	TouchInterval time.Duration

	// TouchCacheSize is how many sessions' last-seen times this Engine
	// remembers, so that Validate can tell, without a script, that a
	// session's last-seen time is fresh, and read it with a plain HGET (see
	// touchCache in touch.go). Each entry costs about 53 bytes of heap.
	// Default DefaultTouchCacheSize (65,536 sessions, 3.3 MiB); NoTouchCache
	// turns it off, so every Validate runs the validate script.
	TouchCacheSize int

	// CachedValidate lets Validate answer from go-redis's client-side cache
	// when the session's record is cached and still valid by the engine's
	// checks (expiry, idle, absolute), and read Redis otherwise. Every
	// ending reaches every instance through Redis's invalidation messages
	// (RESP3 CLIENT TRACKING): usually within milliseconds, never later
	// than the cache's MaxStaleness (docs/caching.md has the measured
	// window). It needs a standalone *redis.Client with Protocol 3 and
	// Options.ClientSideCacheConfig set with a MaxStaleness between 1 ns
	// and MaxCacheMaxStaleness (CacheConfig returns the measured defaults),
	// and the touch cache; New refuses anything else with
	// ErrCacheUnsupported. Default false (strict): every Validate reads
	// Redis, and on a client with a cache the engine keeps Validate on its
	// script, which go-redis never caches.
	CachedValidate bool

	// TombstoneTTL is how long an ended session stays readable as the reason
	// it ended (EvictedError, RevokedError) before Validate reports
	// ErrExpired instead. Default 24 hours, so a device that comes back the
	// next day still learns why it was signed out. A user keeps the
	// MaxTombstones newest at most.
	TombstoneTTL time.Duration

	// MaxTombstones is how many ended sessions per user stay readable as
	// the reason they ended, at most: the oldest go first (a device coming
	// back after that hears ErrExpired), so a user signing in thousands of
	// times a day cannot grow one key without bound. A single LogoutAll or
	// LogoutOthers keeps all of its own until the next call trims them.
	// Default 16, which explains every device a household or a small team
	// shares; at most MaxMaxTombstones. Each costs about 110 bytes plus the
	// acting device's IP and user agent.
	MaxTombstones int

	// LogoutEverywhere makes Logout on one device end all of that user's
	// sessions, like django-single-session's LOGOUT_ALL_SESSIONS. Default
	// false.
	LogoutEverywhere bool

	// KeyPrefix starts every Redis key and channel name. Default "sc". It
	// must not contain '{' or '}', which would break the cluster hash tag.
	KeyPrefix string

	// UserKey, if set, keys the user digest that names a user's Redis keys
	// and starts every token: D = HMAC-SHA256(UserKey, user ID)[:16] instead
	// of SHA-256(user ID)[:16]. Without it, D is the same in every
	// deployment, so anyone holding a token and a list of candidate user IDs
	// (emails) can tell whose token it is; with it, only someone who has
	// the key can. At least MinUserKeyLen (16) bytes, from a CSPRNG; New
	// copies it. Default nil (unkeyed), which keeps the keys of existing
	// deployments: setting, changing or removing it moves every user's keys,
	// which signs everyone out and leaves the old keys to expire by their
	// TTL (see docs/instances.md, "Unlinkable tokens").
	UserKey []byte

	// HistoryLimit is how many history records (logins, logouts, evictions,
	// revocations, rotations, expiries) to keep per user: 0 keeps none (the
	// default: no history writes at all), N keeps the newest N, HistoryAll
	// keeps every one.
	HistoryLimit int

	// HistoryTTL removes a user's history this long after its newest record.
	// Default 90 days.
	HistoryTTL time.Duration

	// Events selects live publication of session endings. Default EventsOff.
	Events EventMode

	// UpdateAttempts bounds the optimistic retries of Update. Default 8.
	UpdateAttempts int

	// EvalOnly runs the scripts by EVALSHA (and EVAL), never as the engine's
	// Redis function library. Default false: the engine loads its library
	// (FUNCTION LOAD, once per server; Redis 7.0 or later) and calls it by
	// FCALL, which spares every script call the building of the shared
	// prelude, about a quarter of a sign-in's time in Redis; it falls back
	// to EVALSHA by itself where the server has no functions or refuses
	// them to this user. Set it where functions are not wanted at all.
	EvalOnly bool

	// Logger receives structured logs (never a token or a secret; session
	// IDs only in public form). Default: a logger that discards everything.
	Logger *slog.Logger

	// Observer, if set, is told about every operation's outcome, so the app
	// can export metrics without sessioncap depending on a metrics library.
	// Default nil. See Stats for a ready-made counting Observer.
	Observer Observer

	// Tracer, if set, wraps every operation in a span. Default nil.
	Tracer Tracer

	// WaitReplicas, if above 0, makes Logout, LogoutOthers, LogoutAll and
	// Revoke wait (Redis WAIT, on the connection that made the write) until
	// this many replicas acknowledged the ending, so a failover right after
	// cannot bring the session back. Default 0 (do not wait). A single Redis
	// with no replicas must keep 0.
	WaitReplicas int

	// WaitTimeout bounds that wait. Default 1 second when WaitReplicas > 0.
	WaitTimeout time.Duration

	// Now is the clock, for tests that drive time exactly: when set, the
	// engine uses it as it is. Default nil: the engine anchors its time on
	// Redis's clock (TIME), so app instances whose wall clocks disagree,
	// or get stepped, still agree on every timeout, to within one second
	// (see clock.go and docs/instances.md).
	Now func() time.Time

	// ClockSync is how often an engine without Now renews its anchor on
	// Redis's clock: one TIME call, in the background, at most once per
	// ClockSync while the engine is in use. Default 10 seconds, in which a
	// local oscillator drifts well under a millisecond.
	ClockSync time.Duration
}

// withDefaults returns c with every zero field filled in, or an error that
// wraps ErrInvalidConfig.
func (c Config) withDefaults() (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return c, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.MaxSessions == 0:
		c.MaxSessions = DefaultMaxSessions
	case c.MaxSessions < 0 && c.MaxSessions != Unlimited:
		return bad("MaxSessions %d: use 1 or more, or Unlimited", c.MaxSessions)
	}
	if c.SessionCeiling == 0 {
		c.SessionCeiling = DefaultSessionCeiling
	}
	if c.SessionCeiling < 1 || c.MaxSessions > c.SessionCeiling {
		return bad("SessionCeiling %d must be at least 1 and at least MaxSessions %d", c.SessionCeiling, c.MaxSessions)
	}
	if c.Overflow != EvictOldest && c.Overflow != RejectNew {
		return bad("unknown Overflow %d", int(c.Overflow))
	}
	if c.AbsoluteTimeout == 0 {
		c.AbsoluteTimeout = DefaultAbsoluteTimeout
	}
	if c.AbsoluteTimeout < time.Millisecond {
		return bad("AbsoluteTimeout %v: must be at least 1ms", c.AbsoluteTimeout)
	}
	switch {
	case c.IdleTimeout == 0:
		c.IdleTimeout = min(DefaultIdleTimeout, c.AbsoluteTimeout)
	case c.IdleTimeout == NoIdleTimeout:
	case c.IdleTimeout < time.Millisecond:
		return bad("IdleTimeout %v: must be at least 1ms, or NoIdleTimeout", c.IdleTimeout)
	case c.IdleTimeout > c.AbsoluteTimeout:
		return bad("IdleTimeout %v exceeds AbsoluteTimeout %v", c.IdleTimeout, c.AbsoluteTimeout)
	}
	switch {
	case c.TouchInterval == 0 && c.IdleTimeout == NoIdleTimeout:
		c.TouchInterval = time.Minute
	case c.TouchInterval == 0:
		c.TouchInterval = max(c.IdleTimeout/30, time.Millisecond)
	case c.TouchInterval < 0:
		return bad("TouchInterval %v is negative", c.TouchInterval)
	case c.IdleTimeout != NoIdleTimeout && c.TouchInterval >= c.IdleTimeout:
		return bad("TouchInterval %v must be below IdleTimeout %v", c.TouchInterval, c.IdleTimeout)
	}
	switch {
	case c.TouchCacheSize == 0:
		c.TouchCacheSize = DefaultTouchCacheSize
	case c.TouchCacheSize < 0 && c.TouchCacheSize != NoTouchCache:
		return bad("TouchCacheSize %d: use 1 or more, or NoTouchCache", c.TouchCacheSize)
	}
	if c.TombstoneTTL == 0 {
		c.TombstoneTTL = DefaultTombstoneTTL
	}
	if c.TombstoneTTL < time.Millisecond {
		return bad("TombstoneTTL %v: must be at least 1ms", c.TombstoneTTL)
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultKeyPrefix
	}
	if strings.ContainsAny(c.KeyPrefix, "{}") || len(c.KeyPrefix) > 64 {
		return bad("KeyPrefix %q: no braces, at most 64 bytes", c.KeyPrefix)
	}
	if c.UserKey != nil {
		if len(c.UserKey) < MinUserKeyLen {
			return bad("UserKey of %d bytes: use at least %d random bytes", len(c.UserKey), MinUserKeyLen)
		}
		c.UserKey = append([]byte(nil), c.UserKey...)
	}
	if c.HistoryLimit < 0 && c.HistoryLimit != HistoryAll {
		return bad("HistoryLimit %d: use 0, N or HistoryAll", c.HistoryLimit)
	}
	if c.HistoryTTL == 0 {
		c.HistoryTTL = DefaultHistoryTTL
	}
	if c.HistoryTTL < time.Millisecond {
		return bad("HistoryTTL %v: must be at least 1ms", c.HistoryTTL)
	}
	if c.Events < EventsOff || c.Events > EventsSharded {
		return bad("unknown Events mode %d", int(c.Events))
	}
	if c.UpdateAttempts == 0 {
		c.UpdateAttempts = DefaultUpdateAttempts
	}
	if c.UpdateAttempts < 1 {
		return bad("UpdateAttempts %d: must be 1 or more", c.UpdateAttempts)
	}
	if c.WaitReplicas < 0 {
		return bad("WaitReplicas %d is negative", c.WaitReplicas)
	}
	if c.WaitReplicas > 0 && c.WaitTimeout == 0 {
		c.WaitTimeout = time.Second
	}
	if c.WaitTimeout < 0 {
		return bad("WaitTimeout %v is negative", c.WaitTimeout)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxTombstones == 0 {
		c.MaxTombstones = DefaultMaxTombstones
	}
	if c.MaxTombstones < 0 || c.MaxTombstones > MaxMaxTombstones {
		return bad("MaxTombstones %d is not between 1 and %d", c.MaxTombstones, MaxMaxTombstones)
	}
	if c.ClockSync == 0 {
		c.ClockSync = DefaultClockSync
	}
	if c.ClockSync < 100*time.Millisecond {
		return bad("ClockSync %v is under 100ms", c.ClockSync)
	}
	return c, nil
}
