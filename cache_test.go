package sessioncap

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap/internal/redistest"
)

// Cached validation (cache.go) on go-redis's client-side cache. Every test
// here that touches a server starts a redis-server of its own: they flush
// it, kill its clients, change its tracking table or kill it outright.

// cacheServer starts a private redis-server for one test.
func cacheServer(t testing.TB, extra ...string) *redistest.Server {
	t.Helper()
	if realRedis == "" {
		report.Missing(t, redistest.BackendRedis, "no real redis-server: redis-server is not on PATH")
	}
	report.Use(t, redistest.BackendRedis)
	srv, err := redistest.Start(t.TempDir(), extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// cachedClient is a RESP3 client with go-redis's cache as CacheConfig
// returns it, after mod (if any) changed it.
func cachedClient(t testing.TB, addr string, mod func(*redis.ClientSideCacheConfig)) *redis.Client {
	t.Helper()
	cc := CacheConfig()
	if mod != nil {
		mod(cc)
	}
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 3, ClientSideCacheConfig: cc})
	t.Cleanup(func() { c.Close() })
	return c
}

// cachedEngine is an engine with CachedValidate on its own cached client.
func cachedEngine(t testing.TB, addr string, cfg Config, mod func(*redis.ClientSideCacheConfig)) (*Engine, *redis.Client) {
	t.Helper()
	c := cachedClient(t, addr, mod)
	cfg.CachedValidate = true
	e, err := New(c, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e, c
}

// serverCommands is the server's count of commands it ran
// (total_commands_processed), the INFO that asks included.
func serverCommands(t testing.TB, ctl *redis.Client) int64 {
	t.Helper()
	s, err := ctl.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "total_commands_processed:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no total_commands_processed in INFO stats")
	return 0
}

// hgetCalls is INFO commandstats' call count of HGET.
func hgetCalls(t testing.TB, ctl *redis.Client) int64 {
	t.Helper()
	s, err := ctl.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "cmdstat_hget:calls="); ok {
			n, err := strconv.ParseInt(v[:strings.IndexByte(v, ',')], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	return 0
}

// TestCachedValidateWarmSendsNoCommands: once an engine with CachedValidate
// has read a record, Validate answers from go-redis's cache and the server
// runs nothing (counted by the server itself, INFO stats and commandstats,
// since a go-redis hook sees cache hits too). The control, a strict engine
// on a plain client, sends one HGET per Validate through the same counters.
func TestCachedValidateWarmSendsNoCommands(t *testing.T) {
	srv := cacheServer(t)
	ctx := context.Background()
	ctl := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer ctl.Close()
	clk := newClock()
	const n = 1000

	e, c := cachedEngine(t, srv.Addr(), Config{Now: clk.Now}, nil)
	res := mustLogin(t, e, "alice", Meta{})
	for range 2 { // the script (touch cache), then the HGET that fills the cache
		if _, err := e.Validate(ctx, res.Token); err != nil {
			t.Fatal(err)
		}
	}
	hits0 := c.CSCStats().Hits
	before, hget0 := serverCommands(t, ctl), hgetCalls(t, ctl)
	for range n {
		s, err := e.Validate(ctx, res.Token)
		if err != nil || s.UserID != "alice" {
			t.Fatalf("cached Validate: %v %v", s, err)
		}
	}
	// Two INFO calls ran since the first snapshot (commandstats, stats).
	sent := serverCommands(t, ctl) - before - 2
	hgets := hgetCalls(t, ctl) - hget0
	hits := c.CSCStats().Hits - hits0
	t.Logf("cached: %d Validates, %d commands run by the server (%d HGET), %d cache hits", n, sent, hgets, hits)
	if sent != 0 || hgets != 0 || hits != n {
		t.Fatalf("warm cached Validate: server ran %d commands (%d HGET), cache hits %d; want 0, 0, %d", sent, hgets, hits, n)
	}

	// Control: the same counters see a strict engine's HGETs.
	plain := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer plain.Close()
	strict, err := New(plain, Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := strict.Validate(ctx, res.Token); err != nil { // the script
		t.Fatal(err)
	}
	before, hget0 = serverCommands(t, ctl), hgetCalls(t, ctl)
	for range n {
		if _, err := strict.Validate(ctx, res.Token); err != nil {
			t.Fatal(err)
		}
	}
	sent, hgets = serverCommands(t, ctl)-before-2, hgetCalls(t, ctl)-hget0
	t.Logf("strict: %d Validates, %d commands run (%d HGET)", n, sent, hgets)
	if sent != n || hgets != n {
		t.Fatalf("strict Validate: server ran %d commands (%d HGET), want %d each", sent, hgets, n)
	}
}
