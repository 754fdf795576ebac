package sessioncap

import "sync"

// touchCache remembers, per session, a last-seen time that Redis is known
// to hold or to have passed. Redis only ever moves a record's last-seen time
// forward, so when now minus a remembered time is below TouchInterval, the
// record's own last-seen is fresh too and Validate needs no write: it reads
// the record with a plain HGET instead of running the script. That keeps the
// hot path at the price of a GET while every Validate stays one command,
// sliding refresh included (the script runs whenever the cache cannot vouch).
//
// The cache never decides validity: eviction, revocation and expiry are read
// from Redis on every call. A missing or stale entry only costs the script.
// Several app instances each keep their own cache, so a session may be
// touched once per TouchInterval per instance, never less often than needed.
type touchCache struct {
	shards   [touchShards]touchShard
	perShard int
}

const touchShards = 64

type touchShard struct {
	mu sync.Mutex
	m  map[[sidLen]byte]int64
	_  [64 - 16]byte // one 64-byte cache line per shard (mutex 8, map 8)
}

// newTouchCache returns a cache of about size entries, or nil (always miss)
// for size < 0.
func newTouchCache(size int) *touchCache {
	if size < 0 {
		return nil
	}
	c := &touchCache{perShard: max(size/touchShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[[sidLen]byte]int64)
	}
	return c
}

func (c *touchCache) shard(sid *[sidLen]byte) *touchShard {
	// Session IDs are random (UUIDv4), so any byte spreads them evenly.
	return &c.shards[int(sid[15])%touchShards]
}

// get returns the remembered last-seen time of sid, in ms.
func (c *touchCache) get(sid *[sidLen]byte) (int64, bool) {
	if c == nil {
		return 0, false
	}
	s := c.shard(sid)
	s.mu.Lock()
	ms, ok := s.m[*sid]
	s.mu.Unlock()
	return ms, ok
}

// put remembers that sid's record holds a last-seen time of at least ms.
// A full shard drops one arbitrary entry (map iteration order is random), so
// memory stays bounded and a dropped session merely runs the script once.
func (c *touchCache) put(sid *[sidLen]byte, ms int64) {
	if c == nil {
		return
	}
	s := c.shard(sid)
	s.mu.Lock()
	if old, ok := s.m[*sid]; !ok || ms > old {
		if !ok && len(s.m) >= c.perShard {
			for k := range s.m {
				delete(s.m, k)
				break
			}
		}
		s.m[*sid] = ms
	}
	s.mu.Unlock()
}
