package sessioncap

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cached validation: Validate answered from go-redis's client-side cache
// (RESP3 CLIENT TRACKING), with every ending reaching every instance through
// Redis's own invalidation messages. sessioncap adds no cache and no tracking
// protocol of its own; it only makes its read one that go-redis caches and
// checks that the client's cache has a staleness bound. See docs/caching.md.

// ErrCacheUnsupported is returned by New when Config.CachedValidate is set
// but the client cannot serve it: go-redis caches on a standalone
// *redis.Client only (not on a Cluster, Sentinel, Ring or replica-reading
// client, nor on a wrapper the engine cannot look into), and only with a
// RESP3 client whose cache has a MaxStaleness bound. The error also matches
// ErrInvalidConfig.
var ErrCacheUnsupported = errors.New("sessioncap: cached validation not supported by this client")

// Defaults of CacheConfig. The reasoning is on CacheConfig.
const (
	// DefaultCacheMaxStaleness is the hard bound on how long a cached
	// record may be served after it was read, whatever happens to the
	// invalidation that should have removed it.
	DefaultCacheMaxStaleness = time.Second
	// MaxCacheMaxStaleness is the largest MaxStaleness New accepts with
	// CachedValidate: a revoked token may keep working for that long on an
	// instance that lost its invalidation, so longer is refused.
	MaxCacheMaxStaleness = 10 * time.Second
	// DefaultCacheEntries is how many records the cache holds at most.
	DefaultCacheEntries = 1 << 16
	// DefaultCacheBytes bounds the cache's estimated memory, in bytes.
	DefaultCacheBytes = 64 << 20
)

// CacheConfig returns the go-redis client-side cache configuration that
// cached validation is measured with, for Options.ClientSideCacheConfig of
// a *redis.Client with Protocol 3 (see Config.CachedValidate):
//
//   - MaxStaleness DefaultCacheMaxStaleness (1 s). It is the hard bound on
//     the revocation window: an instance that lost an invalidation (a cut
//     connection, a bug) stops accepting an ended token after it. Normally
//     the invalidation arrives within milliseconds (docs/caching.md has the
//     measured window), so the bound only costs one re-read per cached
//     session per second: at 20 Validates per second of one session, 5% of
//     Validates. The same 1 s is what app instances' clocks agree within.
//   - MaxEntries DefaultCacheEntries (65,536 records) and MaxMemoryBytes
//     DefaultCacheBytes (64 MiB, by go-redis's estimate): with the bench's
//     metadata go-redis estimates 557 bytes per cached session and the
//     heap grows by about 1,150 (docs/caching.md), so the entry cap binds
//     first, at about 36 MB estimated, 75 MB of heap. Records several
//     times larger (big Values) reach the byte cap first.
//   - DrainInterval left at go-redis's 5 ms: how often idle connections are
//     checked for invalidations, so the usual window is a few ms.
//
// Change the fields of the returned value to size the cache; New refuses a
// MaxStaleness of 0 (no bound) or above MaxCacheMaxStaleness.
func CacheConfig() *redis.ClientSideCacheConfig {
	return &redis.ClientSideCacheConfig{
		MaxEntries:     DefaultCacheEntries,
		MaxMemoryBytes: DefaultCacheBytes,
		MaxStaleness:   DefaultCacheMaxStaleness,
	}
}

// checkCachedClient returns nil when client caches what Validate reads with
// a staleness bound, or why not (wrapping ErrCacheUnsupported and
// ErrInvalidConfig).
func checkCachedClient(client redis.UniversalClient) error {
	no := func(format string, args ...any) error {
		return fmt.Errorf("%w: %w: "+format, append([]any{ErrInvalidConfig, ErrCacheUnsupported}, args...)...)
	}
	var o *redis.Options
	switch c := client.(type) {
	case *redis.ClusterClient:
		return no("go-redis has no client-side cache on a Cluster client; use CachedValidate false")
	case *redis.Ring:
		return no("go-redis has no client-side cache on a Ring")
	case *redis.Client:
		o = c.Options()
	default:
		return no("%T: only a *redis.Client can be checked for a bounded cache", client)
	}
	switch {
	case o.Addr == "FailoverClient":
		// NewFailoverClient builds a *redis.Client with this address, and
		// FailoverOptions has no cache settings: go-redis does not cache
		// behind Sentinel.
		return no("go-redis has no client-side cache on a Sentinel (failover) client")
	case o.Protocol == 2:
		return no("the client speaks RESP2; client-side caching needs Protocol 3")
	case o.DB != 0:
		return no("go-redis caches on DB 0 only, the client uses DB %d", o.DB)
	case o.CredentialsProvider != nil || o.CredentialsProviderContext != nil || o.StreamingCredentialsProvider != nil:
		return no("go-redis turns its cache off with a credentials provider")
	case o.ClientSideCache != nil:
		return no("a custom Options.ClientSideCache has no MaxStaleness the engine can check; use ClientSideCacheConfig (sessioncap.CacheConfig())")
	case o.ClientSideCacheConfig == nil:
		return no("the client has no client-side cache; set Options.ClientSideCacheConfig: sessioncap.CacheConfig()")
	case o.ClientSideCacheConfig.MaxStaleness <= 0:
		return no("ClientSideCacheConfig.MaxStaleness is 0 (no bound): an ended token could be served from the cache indefinitely after a lost invalidation")
	case o.ClientSideCacheConfig.MaxStaleness > MaxCacheMaxStaleness:
		return no("ClientSideCacheConfig.MaxStaleness %v is above %v", o.ClientSideCacheConfig.MaxStaleness, MaxCacheMaxStaleness)
	}
	return nil
}

// cachesReads reports whether go-redis may answer client's reads from a
// client-side cache, so that a strict engine must not send its HGET there.
func cachesReads(client redis.UniversalClient) bool {
	c, ok := client.(*redis.Client)
	if !ok {
		return false
	}
	o := c.Options()
	return o.Protocol != 2 && (o.ClientSideCacheConfig != nil || o.ClientSideCache != nil)
}

// fenceWindow is how long after this engine changed a user's sessions its
// cached Validate of that user reads Redis instead of the cache. Redis
// sends the invalidation before the write's reply, but on the connection
// that read the record, which go-redis drains every 5 ms when idle: without
// the fence, a Logout followed at once by a Validate on the same instance
// could be answered from the copy the Logout has not yet invalidated.
// Writes per user are rare (sign-ins, endings, saves), so the window costs
// a few script calls per write.
const fenceWindow = 100 * time.Millisecond

// writeFence remembers, per user hash, when this engine last ran a script
// that may have changed it (runOn: sign-in, endings, save, rotate,
// listing). It is local read-your-writes, not a message to other
// instances: they learn of the write from Redis's invalidation only.
type writeFence struct {
	shards   [touchShards]fenceShard
	perShard int
	now      func() time.Time // monotonic
}

type fenceShard struct {
	mu sync.Mutex
	m  map[string]time.Time
}

// newWriteFence holds about size users (at least one per shard); a full
// shard forgets its expired entries first, then an arbitrary one.
func newWriteFence(size int) *writeFence {
	f := &writeFence{perShard: max(size/touchShards, 1), now: time.Now}
	for i := range f.shards {
		f.shards[i].m = make(map[string]time.Time)
	}
	return f
}

func (f *writeFence) shard(key string) *fenceShard {
	// The user digest inside the key name is uniformly random; its last
	// byte before "}:d" spreads the shards.
	var b byte
	if n := len(key); n >= 4 {
		b = key[n-4]
	}
	return &f.shards[int(b)%touchShards]
}

// mark records that this engine just wrote key.
func (f *writeFence) mark(key string) {
	if f == nil {
		return
	}
	now := f.now()
	s := f.shard(key)
	s.mu.Lock()
	if _, ok := s.m[key]; !ok && len(s.m) >= f.perShard {
		for k, at := range s.m {
			if now.Sub(at) >= fenceWindow {
				delete(s.m, k)
			}
		}
		for k := range s.m {
			if len(s.m) < f.perShard {
				break
			}
			delete(s.m, k)
		}
	}
	s.m[key] = now
	s.mu.Unlock()
}

// recent reports whether this engine wrote key within fenceWindow.
func (f *writeFence) recent(key string) bool {
	if f == nil {
		return false
	}
	s := f.shard(key)
	s.mu.Lock()
	at, ok := s.m[key]
	s.mu.Unlock()
	return ok && f.now().Sub(at) < fenceWindow
}
