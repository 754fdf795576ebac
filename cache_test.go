package sessioncap

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

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
	pastFence(e)
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

// waitRefused polls e.Validate(token) until it fails, for at most bound,
// and returns how long that took and the error. A call that still accepts
// the token after bound fails the test.
func waitRefused(t testing.TB, e *Engine, token string, bound time.Duration) (time.Duration, error) {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	for {
		_, err := e.Validate(ctx, token)
		el := time.Since(start)
		if err != nil {
			return el, err
		}
		if el > bound {
			t.Fatalf("an ended token was still accepted %v after its ending (bound %v)", el, bound)
		}
	}
}

// pastFence makes each engine forget the users it just wrote, as if
// fenceWindow had passed, so a test can see its cache right after a write.
func pastFence(es ...*Engine) {
	for _, e := range es {
		for i := range e.fence.shards {
			s := &e.fence.shards[i]
			s.mu.Lock()
			clear(s.m)
			s.mu.Unlock()
		}
	}
}

// warm validates token on every engine until each serves it from its cache
// (the first call runs the script, the second fills the cache), after
// pastFence.
func warm(t testing.TB, token string, es ...*Engine) {
	t.Helper()
	pastFence(es...)
	for _, e := range es {
		for range 3 {
			if _, err := e.Validate(context.Background(), token); err != nil {
				t.Fatalf("warm Validate: %v", err)
			}
		}
	}
}

// staleBound is what the tests allow an ended token past its ending: the
// cache's MaxStaleness, plus slack for a shared, busy 2-core machine.
const staleBound = DefaultCacheMaxStaleness + 2*time.Second

// TestCachedValidateEveryEndingReachesEveryInstance: four engines on four
// cached clients of one server, each warm on the session; every way a
// session ends, made on one engine, is refused by all four within the
// bound, with the right error, by Redis's invalidation alone (the engines
// share nothing else). Each refusal time is logged.
func TestCachedValidateEveryEndingReachesEveryInstance(t *testing.T) {
	srv := cacheServer(t)
	ctx := context.Background()
	clk := newClock()
	cfg := Config{Now: clk.Now, MaxSessions: 2}
	es := make([]*Engine, 4)
	clients := make([]*redis.Client, 4)
	for i := range es {
		es[i], clients[i] = cachedEngine(t, srv.Addr(), cfg, nil)
	}
	type ending struct {
		name string
		// end returns the token that must now be refused, and the error.
		end func(user string) (string, error)
	}
	endings := []ending{
		{"logout", func(u string) (string, error) {
			r := mustLogin(t, es[0], u, Meta{})
			warm(t, r.Token, es...)
			return r.Token, es[0].Logout(ctx, r.Token)
		}},
		{"logout-others", func(u string) (string, error) {
			r1 := mustLogin(t, es[0], u, Meta{})
			r2 := mustLogin(t, es[1], u, Meta{})
			warm(t, r1.Token, es...)
			_, err := es[1].LogoutOthers(ctx, r2.Token)
			return r1.Token, err
		}},
		{"revoke", func(u string) (string, error) {
			r := mustLogin(t, es[0], u, Meta{})
			warm(t, r.Token, es...)
			return r.Token, es[2].Revoke(ctx, u, r.SessionID)
		}},
		{"admin logout", func(u string) (string, error) {
			r := mustLogin(t, es[0], u, Meta{})
			warm(t, r.Token, es...)
			_, err := es[3].LogoutAll(ctx, u)
			return r.Token, err
		}},
		{"eviction", func(u string) (string, error) {
			r1 := mustLogin(t, es[0], u, Meta{})
			mustLogin(t, es[0], u, Meta{})
			warm(t, r1.Token, es...)
			_, err := es[1].Login(ctx, u, Meta{})
			return r1.Token, err
		}},
		{"rotation", func(u string) (string, error) {
			r := mustLogin(t, es[0], u, Meta{})
			warm(t, r.Token, es...)
			fresh, err := es[2].Rotate(ctx, r.Token)
			if err == nil {
				warm(t, fresh, es[2]) // the new token works where it was made
			}
			return r.Token, err
		}},
	}
	want := map[string]error{"logout": ErrRevoked, "logout-others": ErrRevoked, "revoke": ErrRevoked,
		"admin logout": ErrRevoked, "eviction": ErrEvicted, "rotation": ErrExpired}
	for i, en := range endings {
		user := "user-" + strconv.Itoa(i)
		hits := make([]uint64, len(es))
		for j, c := range clients {
			hits[j] = c.CSCStats().Hits
		}
		token, err := en.end(user)
		if err != nil {
			t.Fatalf("%s: %v", en.name, err)
		}
		for j, c := range clients {
			if c.CSCStats().Hits <= hits[j] {
				t.Fatalf("%s: engine %d never served the session from its cache", en.name, j)
			}
		}
		var took []string
		for j, e := range es {
			el, err := waitRefused(t, e, token, staleBound)
			if !errors.Is(err, want[en.name]) {
				t.Errorf("%s: engine %d refused with %v, want %v", en.name, j, err, want[en.name])
			}
			took = append(took, el.Round(time.Microsecond).String())
		}
		t.Logf("%-13s refused on engines 0-3 after %s", en.name, strings.Join(took, ", "))
	}
}

// TestCachedValidateChecksExpiryOnCachedRecords: a record served from the
// cache still goes through the engine's own checks: past its absolute
// timeout it is ErrExpired (which the script then confirms, as every
// refusal: the cache may only say yes).
func TestCachedValidateChecksExpiryOnCachedRecords(t *testing.T) {
	srv := cacheServer(t)
	ctx := context.Background()
	ctl := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer ctl.Close()
	clk := newClock()
	e, c := cachedEngine(t, srv.Addr(), Config{Now: clk.Now, AbsoluteTimeout: 10 * time.Minute,
		IdleTimeout: 10 * time.Minute, TouchInterval: 4 * time.Minute}, nil)
	r := mustLogin(t, e, "alice", Meta{})
	clk.Add(7 * time.Minute) // the script touches: last seen 7 min
	warm(t, r.Token, e)
	clk.Add(3*time.Minute + 30*time.Second) // 10.5 min: past the absolute timeout, no touch due
	hits := c.CSCStats().Hits
	_, err := e.Validate(ctx, r.Token)
	if !errors.Is(err, ErrExpired) {
		t.Fatalf("Validate past the absolute timeout: %v, want ErrExpired", err)
	}
	if c.CSCStats().Hits != hits+1 {
		t.Fatalf("the cached record was not read: hits %d -> %d", hits, c.CSCStats().Hits)
	}
}

// TestCachedValidateSlidingRefresh: the idle timeout keeps sliding with
// four cached engines: each touch (one script per TouchInterval, from
// whichever engine finds it due) rewrites the record, which invalidates the
// other engines' copies; they read it again once. The session outlives its
// idle timeout several times over, and the cost per refresh is logged.
func TestCachedValidateSlidingRefresh(t *testing.T) {
	srv := cacheServer(t)
	ctx := context.Background()
	ctl := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer ctl.Close()
	clk := newClock()
	cfg := Config{Now: clk.Now, IdleTimeout: 10 * time.Minute, TouchInterval: time.Minute}
	es := make([]*Engine, 4)
	for i := range es {
		es[i], _ = cachedEngine(t, srv.Addr(), cfg, nil)
	}
	r := mustLogin(t, es[0], "alice", Meta{})
	warm(t, r.Token, es...)
	const steps, perStep = 40, 50 // 40 × 50 s = 33 min, over three idle timeouts
	var cmds int64
	for range steps {
		clk.Add(50 * time.Second)
		before := serverCommands(t, ctl)
		var last *Session
		for _, e := range es {
			for range perStep {
				s, err := e.Validate(ctx, r.Token)
				if err != nil {
					t.Fatalf("Validate at +%v: %v", clk.Now().Sub(t0), err)
				}
				last = s
			}
		}
		cmds += serverCommands(t, ctl) - before - 1
		if clk.Now().Sub(last.LastSeenAt) > 2*time.Minute {
			t.Fatalf("last seen %v behind: the refresh did not reach this engine", clk.Now().Sub(last.LastSeenAt))
		}
	}
	n := int64(steps * perStep * len(es))
	t.Logf("%d Validates on 4 engines over %v (idle timeout %v): %d commands run by the server, %.4f per Validate, %.1f per touch interval",
		n, clk.Now().Sub(t0), cfg.IdleTimeout, cmds, float64(cmds)/float64(n), float64(cmds)/(float64(steps)*50/60))
	if cmds >= n/10 {
		t.Fatalf("%d commands for %d Validates: the cache served too little", cmds, n)
	}
}

// TestCachedValidateRefusedWhereUnsupported: go-redis caches on a
// standalone RESP3 client only; New refuses CachedValidate on every other
// client, and on a cache without a staleness bound, with an error that
// matches ErrCacheUnsupported and ErrInvalidConfig and says why.
func TestCachedValidateRefusedWhereUnsupported(t *testing.T) {
	dead := deadAddr(t)
	closeLater := func(c redis.UniversalClient) redis.UniversalClient {
		t.Cleanup(func() { c.Close() })
		return c
	}
	withCache := func(mod func(*redis.Options)) redis.UniversalClient {
		o := &redis.Options{Addr: dead, Protocol: 3, ClientSideCacheConfig: CacheConfig()}
		if mod != nil {
			mod(o)
		}
		return closeLater(redis.NewClient(o))
	}
	ok := withCache(nil)
	ap, err := ok.(*redis.Client).AutoPipeline()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		client redis.UniversalClient
	}{
		{"cluster", closeLater(redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{dead}}))},
		{"cluster reading replicas", closeLater(redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{dead}, ReadOnly: true}))},
		{"sentinel", closeLater(redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{dead}, Protocol: 3}))},
		{"sentinel reading replicas", closeLater(redis.NewFailoverClusterClient(&redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{dead}, RouteRandomly: true}))},
		{"ring", closeLater(redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": dead}}))},
		{"autopipeliner (a wrapper)", ap},
		{"no cache", closeLater(redis.NewClient(&redis.Options{Addr: dead, Protocol: 3}))},
		{"RESP2", withCache(func(o *redis.Options) { o.Protocol = 2 })},
		{"DB 1", withCache(func(o *redis.Options) { o.DB = 1 })},
		{"no MaxStaleness", withCache(func(o *redis.Options) { o.ClientSideCacheConfig.MaxStaleness = 0 })},
		{"MaxStaleness 11 s", withCache(func(o *redis.Options) { o.ClientSideCacheConfig.MaxStaleness = 11 * time.Second })},
		{"custom cache", withCache(func(o *redis.Options) {
			o.ClientSideCacheConfig = nil
			o.ClientSideCache = redis.NewLocalCache(redis.CacheConfig{MaxEntries: 10, MaxStaleness: time.Second})
		})},
	}
	for _, tc := range cases {
		_, err := New(tc.client, Config{CachedValidate: true})
		if !errors.Is(err, ErrCacheUnsupported) || !errors.Is(err, ErrInvalidConfig) || !strings.HasPrefix(err.Error(), "sessioncap: ") {
			t.Errorf("%s: New = %v, want ErrCacheUnsupported and ErrInvalidConfig", tc.name, err)
			continue
		}
		t.Logf("%s: %v", tc.name, err)
		// Without the option every one of them is a valid client.
		if _, err := New(tc.client, Config{}); err != nil {
			t.Errorf("%s without CachedValidate: %v", tc.name, err)
		}
	}
	if _, err := New(ok, Config{CachedValidate: true}); err != nil {
		t.Fatalf("a RESP3 client with CacheConfig(): %v", err)
	}
	_, err = New(ok, Config{CachedValidate: true, TouchCacheSize: NoTouchCache})
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("CachedValidate without the touch cache: %v, want ErrInvalidConfig", err)
	}
}

// TestStrictValidateOnACachingClientReadsRedis: a strict engine (no
// CachedValidate) on a client that caches keeps every Validate off the
// cache. go-redis caches a generic Do("hget", ...) like the typed HGet, so
// the engine's plain HGET would be cached; it runs the script instead, and
// the client's cache never serves it.
func TestStrictValidateOnACachingClientReadsRedis(t *testing.T) {
	srv := cacheServer(t)
	ctx := context.Background()
	c := cachedClient(t, srv.Addr(), nil)
	clk := newClock()
	strict, err := New(c, Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	other := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer other.Close()
	ender, err := New(other, Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	// What go-redis would do to the engine's read: cache it.
	for range 3 {
		c.Do(ctx, "hget", "probe", "f")
	}
	if c.CSCStats().Hits == 0 {
		t.Fatal("control: a generic HGET on this client was not cached")
	}
	for i := range 100 {
		hits := c.CSCStats().Hits
		r := mustLogin(t, ender, "u"+strconv.Itoa(i), Meta{})
		for range 3 {
			if _, err := strict.Validate(ctx, r.Token); err != nil {
				t.Fatal(err)
			}
		}
		if err := ender.Logout(ctx, r.Token); err != nil {
			t.Fatal(err)
		}
		if _, err := strict.Validate(ctx, r.Token); !errors.Is(err, ErrRevoked) {
			t.Fatalf("strict Validate right after a logout elsewhere: %v, want ErrRevoked", err)
		}
		if h := c.CSCStats().Hits; h != hits {
			t.Fatalf("the strict engine was served from the cache (%d hits)", h-hits)
		}
	}
}

// TestCachedValidateReadsItsOwnEndings: right after an engine ends a
// session (or rotates its token), a Validate on that same engine refuses
// the old token and accepts the new one, although the invalidation of its
// own cached copy may still sit unread on an idle connection: the engine
// reads Redis for a user it wrote within fenceWindow. Logout, Revoke,
// Rotate, 100 rounds each, each checked at once.
func TestCachedValidateReadsItsOwnEndings(t *testing.T) {
	srv := cacheServer(t)
	ctx := context.Background()
	clk := newClock()
	e, _ := cachedEngine(t, srv.Addr(), Config{Now: clk.Now}, nil)
	for i := range 100 {
		u := "u" + strconv.Itoa(i)
		r := mustLogin(t, e, u, Meta{})
		warm(t, r.Token, e)
		switch i % 3 {
		case 0:
			if err := e.Logout(ctx, r.Token); err != nil {
				t.Fatal(err)
			}
		case 1:
			if err := e.Revoke(ctx, u, r.SessionID); err != nil {
				t.Fatal(err)
			}
		case 2:
			fresh, err := e.Rotate(ctx, r.Token)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.Validate(ctx, fresh); err != nil {
				t.Fatalf("round %d: the rotated token right after Rotate: %v", i, err)
			}
		}
		if _, err := e.Validate(ctx, r.Token); err == nil {
			t.Fatalf("round %d: the engine that ended the session accepted it right after", i)
		}
	}
}
