package sessioncap

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Engine stores and caps sessions in Redis. It is safe for concurrent use.
type Engine struct {
	rdb redis.UniversalClient
	cfg Config

	// touched lets Validate skip the script when no touch is due.
	touched *touchCache

	// cached: Config.CachedValidate, on a client New checked (cache.go);
	// fence then remembers the users this engine just wrote (nil: off).
	cached bool
	fence  *writeFence

	// clock anchors time on Redis; nil when Config.Now was given.
	clock *redisClock

	// userKey keys the user digest (Config.UserKey); nil: unkeyed.
	userKey *userKeyer

	// evalOnly: scripts run by EVALSHA, not as the function library
	// (library.go): Config.EvalOnly, or the server has no functions.
	evalOnly atomic.Bool
	// libLoad is the library load in flight, if any (loadLibrary).
	// libGen counts the loads that succeeded.
	libMu   sync.Mutex
	libLoad *libraryLoad
	libGen  atomic.Uint64

	// subs shares Pub/Sub connections among Subscriptions (hub.go).
	subs hubRef

	// Arguments 2..7 of every script, formatted once.
	idleArg, histLimitArg, histTTLArg, pubArg, tombTTLArg, maxTombsArg, touchArg, ceilingArg string
}

// New returns an Engine that uses client, which may be a *redis.Client, a
// Sentinel-backed failover client, a *redis.ClusterClient, or go-redis's
// *redis.AutoPipeliner of any of them (which batches concurrent callers'
// commands; see docs/caching.md). It validates cfg and fills its defaults;
// it does no I/O.
func New(client redis.UniversalClient, cfg Config) (*Engine, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil redis client", ErrInvalidConfig)
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if c.WaitReplicas > 0 && !canWait(client) {
		// Refused here, not at the first ending: a config that cannot work
		// should fail at start-up, not at a user's logout.
		return nil, fmt.Errorf("%w: WaitReplicas needs a *redis.Client, failover client or *redis.ClusterClient, not %T",
			ErrInvalidConfig, client)
	}
	e := &Engine{rdb: client, cfg: c, touched: newTouchCache(c.TouchCacheSize), cached: c.CachedValidate}
	e.evalOnly.Store(c.EvalOnly)
	switch {
	case c.CachedValidate && c.TouchCacheSize == NoTouchCache:
		return nil, fmt.Errorf("%w: CachedValidate needs the touch cache (TouchCacheSize), which decides when Validate may read instead of running its script", ErrInvalidConfig)
	case c.CachedValidate:
		if err := checkCachedClient(client); err != nil {
			return nil, err
		}
		e.fence = newWriteFence(c.TouchCacheSize)
	case cachesReads(client):
		// go-redis would answer the HGET from its cache, which a strict
		// engine must not accept; the script is never cached.
		e.touched = nil
	}
	if c.Now == nil {
		e.clock = newRedisClock(client, c.ClockSync)
	}
	if c.UserKey != nil {
		e.userKey = newUserKeyer(c.UserKey)
	}
	if readsFromReplicas(client) {
		// HGET is a read-only command, which such a client may send to a
		// replica, and a replica can lag a logout or an eviction. Scripts
		// always run on the master, so Validate keeps to the script.
		e.touched = nil
	}
	idle := int64(0)
	if c.IdleTimeout > 0 {
		idle = c.IdleTimeout.Milliseconds()
	}
	e.idleArg = strconv.FormatInt(idle, 10)
	e.histLimitArg = strconv.Itoa(c.HistoryLimit)
	e.histTTLArg = strconv.FormatInt(c.HistoryTTL.Milliseconds(), 10)
	switch c.Events {
	case EventsPubSub:
		e.pubArg = "PUBLISH"
	case EventsSharded:
		e.pubArg = "SPUBLISH"
	}
	e.tombTTLArg = strconv.FormatInt(c.TombstoneTTL.Milliseconds(), 10)
	e.maxTombsArg = strconv.Itoa(c.MaxTombstones)
	e.ceilingArg = strconv.Itoa(c.SessionCeiling)
	e.touchArg = strconv.FormatInt(c.TouchInterval.Milliseconds(), 10)
	return e, nil
}

// readsFromReplicas reports whether client may route read-only commands to
// replicas (a Cluster client, or a Sentinel one made by
// NewFailoverClusterClient, with ReadOnly, RouteByLatency or RouteRandomly;
// ReplicaOnly becomes ReadOnly). A *redis.Ring never reads a replica. See
// docs/instances.md, "Replica reads", and replica_test.go.
func readsFromReplicas(client redis.UniversalClient) bool {
	cc, ok := client.(*redis.ClusterClient)
	if !ok {
		return false
	}
	o := cc.Options()
	return o.ReadOnly || o.RouteByLatency || o.RouteRandomly
}

// Config returns the engine's configuration with defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

// idleMS is Config.IdleTimeout in ms, 0 when off: what new and refreshed
// records are written under.
func (e *Engine) idleMS() int64 { return max(0, e.cfg.IdleTimeout.Milliseconds()) }

// nowMS is the time every decision uses, in ms: Redis's clock (see
// clock.go), or Config.Now when the caller set one.
func (e *Engine) nowMS(ctx context.Context) int64 {
	if e.clock != nil {
		return e.clock.nowMS(ctx)
	}
	return e.cfg.Now().UnixMilli()
}

func checkUserID(userID string) error {
	if userID == "" || len(userID) > maxUserIDLen {
		return ErrInvalidUserID
	}
	return nil
}
