package sessioncap

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// entrySpy is a go-redis CacheSizer that keeps a copy of every entry the
// cache admits, so a test can look at what the cache holds.
type entrySpy struct {
	mu      sync.Mutex
	entries [][]byte
}

func (s *entrySpy) size(cacheKey string, redisKeys []string, value []byte) int64 {
	s.mu.Lock()
	s.entries = append(s.entries, append([]byte(cacheKey), value...))
	s.mu.Unlock()
	return int64(len(cacheKey) + len(value))
}

// TestCacheBytesPerSessionAndNoTokens: the cache of a cached engine holds
// what Redis holds and nothing more: no entry contains a token or its
// secret (records keep only a digest of it). It logs the memory per cached
// session, by go-redis's estimate and by the heap's growth (the figure in
// docs/caching.md), with the bench's session metadata.
func TestCacheBytesPerSessionAndNoTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 sessions, a memory figure: full tier")
	}
	srv := cacheServer(t)
	ctx := context.Background()
	plain := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer plain.Close()
	clk := newClock()
	signer, err := New(plain, Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = mustLogin(t, signer, fmt.Sprintf("user-%07d@example.com", i), benchMeta(i)).Token
	}
	validateAll := func(e *Engine) {
		for _, tok := range tokens {
			if _, err := e.Validate(ctx, tok); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The memory figure, with go-redis's own sizer. The first pass runs
	// the script (and fills the touch cache), the second fills the cache.
	e, c := cachedEngine(t, srv.Addr(), Config{Now: clk.Now}, nil)
	validateAll(e)
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	validateAll(e)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	st := c.CSCStats()
	if st.Entries != n {
		t.Fatalf("%d entries cached, want %d", st.Entries, n)
	}
	t.Logf("%d cached sessions: go-redis estimates %d bytes each; the heap grew by %d bytes per session",
		n, st.MemoryUsageBytes/int64(n), (int64(m1.HeapAlloc)-int64(m0.HeapAlloc))/n)

	// What the entries hold, seen by a sizer that keeps a copy of each.
	spy := &entrySpy{}
	e, _ = cachedEngine(t, srv.Addr(), Config{Now: clk.Now}, func(cc *redis.ClientSideCacheConfig) { cc.Sizer = spy.size })
	validateAll(e)
	validateAll(e)
	spy.mu.Lock()
	defer spy.mu.Unlock()
	for _, tok := range tokens {
		tk, err := parseToken(tok)
		if err != nil {
			t.Fatal(err)
		}
		for _, ent := range spy.entries {
			if bytes.Contains(ent, []byte(tok)) || bytes.Contains(ent, tk.secret[:]) || bytes.Contains(ent, []byte(tok[len(tok)-43:])) {
				t.Fatal("a cache entry holds a token or its secret")
			}
		}
	}
	if len(spy.entries) < n {
		t.Fatalf("the spy saw %d entries, want %d", len(spy.entries), n)
	}
}

// TestCacheBoundedInEntriesAndBytes: MaxEntries and MaxMemoryBytes cap the
// cache whatever the number of sessions validated; sessions beyond the cap
// still validate (from Redis).
func TestCacheBoundedInEntriesAndBytes(t *testing.T) {
	srv := cacheServer(t)
	ctx := context.Background()
	clk := newClock()
	for _, tc := range []struct {
		name string
		mod  func(*redis.ClientSideCacheConfig)
		ok   func(redis.CSCStats) bool
	}{
		{"MaxEntries 100", func(cc *redis.ClientSideCacheConfig) { cc.MaxEntries, cc.MaxMemoryBytes = 100, 0 },
			func(s redis.CSCStats) bool { return s.Entries <= 100 }},
		{"MaxMemoryBytes 256 KiB", func(cc *redis.ClientSideCacheConfig) { cc.MaxEntries, cc.MaxMemoryBytes = 0, 256<<10 },
			func(s redis.CSCStats) bool { return s.MemoryUsageBytes <= 256<<10 }},
	} {
		e, c := cachedEngine(t, srv.Addr(), Config{Now: clk.Now, KeyPrefix: newPrefix()}, tc.mod)
		var tokens []string
		for i := range 1000 {
			tokens = append(tokens, mustLogin(t, e, fmt.Sprintf("u%d", i), benchMeta(i)).Token)
		}
		pastFence(e)
		for range 2 {
			for _, tok := range tokens {
				if _, err := e.Validate(ctx, tok); err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
			}
		}
		st := c.CSCStats()
		t.Logf("%s: 1,000 sessions validated twice: %d entries, %d bytes cached", tc.name, st.Entries, st.MemoryUsageBytes)
		if !tc.ok(st) || st.Entries == 0 {
			t.Fatalf("%s: %+v", tc.name, st)
		}
	}
}
