package sessioncap

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap/internal/faultproxy"
)

// The revocation window of cached validation, and what flushes the cache
// when an invalidation cannot arrive. Figures in docs/caching.md come from
//
//	go test -run 'TestCachedValidateRevocationWindow|TestCacheFlushed|TestCacheLost' -v -count=1 .

// window is one phase's refusal delays.
type window struct {
	name  string
	delay []time.Duration // ending's return -> refusal, one per other engine per ending
	late  int             // acceptances after staleBound (must be 0)
}

func (w *window) String() string {
	d := slices.Clone(w.delay)
	slices.Sort(d)
	q := func(p float64) time.Duration { return d[min(int(p*float64(len(d))), len(d)-1)] }
	return fmt.Sprintf("%s: %d refusals: p50 %v, p99 %v, max %v; accepted after %v: %d",
		w.name, len(d), q(0.50).Round(time.Microsecond), q(0.99).Round(time.Microsecond),
		d[len(d)-1].Round(time.Microsecond), staleBound, w.late)
}

// TestCachedValidateRevocationWindow: four engines on four cached clients
// of one real redis-server. 1,000 sessions are each signed in, made warm on
// the three engines that will not end them, and ended (a third each by
// Logout, Revoke and eviction by a new sign-in) by the fourth, in turn; the
// other three then call Validate in a loop from the moment the ending
// returned until they refuse the token. Twice: with the engines otherwise
// idle, and while 6 goroutines keep validating 400 other sessions on the
// four engines and signing users in and out (paced by a 100 µs sleep per
// operation, about 10,000 operations per second on 2 cores). The test logs p50, p99 and max
// of the delays and fails on any acceptance later than staleBound
// (MaxStaleness 1 s + 2 s slack).
func TestCachedValidateRevocationWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 endings twice, about 20 s")
	}
	srv := cacheServer(t)
	ctx := context.Background()
	clk := newClock()
	cfg := Config{Now: clk.Now, MaxSessions: 1}
	es := make([]*Engine, 4)
	for i := range es {
		es[i], _ = cachedEngine(t, srv.Addr(), cfg, nil)
	}
	const endings = 1000
	run := func(name string, load bool) *window {
		w := &window{name: name}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var loadOps atomic.Int64
		if load {
			var tokens []string
			for i := range 400 {
				tokens = append(tokens, mustLogin(t, es[i%4], "load-"+strconv.Itoa(i), Meta{}).Token)
			}
			for g := range 6 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(g), 1))
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						e := es[(g+i)%4]
						if g == 0 && i%20 == 0 { // writes too: sign-ins and logouts of other users
							r, err := e.Login(ctx, "churn-"+strconv.Itoa(i%50), Meta{})
							if err == nil {
								_ = e.Logout(ctx, r.Token)
							}
						} else {
							_, _ = e.Validate(ctx, tokens[rng.IntN(len(tokens))])
						}
						loadOps.Add(1)
						// Paced, as a serving app is, not a saturation run
						// that starves the pollers of the 2 cores.
						time.Sleep(100 * time.Microsecond)
					}
				}()
			}
		}
		start := time.Now()
		for i := range endings {
			user := fmt.Sprintf("%s-%d", name, i)
			ender := es[i%4]
			var others []*Engine
			for j, e := range es {
				if j != i%4 {
					others = append(others, e)
				}
			}
			r := mustLogin(t, ender, user, Meta{})
			warm(t, r.Token, others...)
			var err error
			switch i % 3 {
			case 0:
				err = ender.Logout(ctx, r.Token)
			case 1:
				err = ender.Revoke(ctx, user, r.SessionID)
			case 2:
				_, err = ender.Login(ctx, user, Meta{}) // evicts r
			}
			ended := time.Now()
			if err != nil {
				t.Fatalf("%s ending %d: %v", name, i, err)
			}
			var mu sync.Mutex
			var pollers sync.WaitGroup
			for _, e := range others {
				pollers.Add(1)
				go func() {
					defer pollers.Done()
					late := 0
					for {
						_, err := e.Validate(ctx, r.Token)
						el := time.Since(ended)
						if err != nil {
							mu.Lock()
							w.delay = append(w.delay, el)
							w.late += late
							mu.Unlock()
							if !errors.Is(err, ErrRevoked) && !errors.Is(err, ErrEvicted) {
								t.Errorf("refused with %v, want the ending's error", err)
							}
							return
						}
						if el > staleBound {
							late++
							if el > 2*staleBound {
								mu.Lock()
								w.delay = append(w.delay, el)
								w.late += late
								mu.Unlock()
								return
							}
						}
						runtime.Gosched()
					}
				}()
			}
			pollers.Wait()
		}
		close(stop)
		wg.Wait()
		t.Logf("%s (%v for %d endings, %d load operations)", w, time.Since(start).Round(time.Millisecond), endings, loadOps.Load())
		return w
	}
	for _, w := range []*window{run("idle", false), run("loaded", true)} {
		if w.late != 0 {
			t.Errorf("%s: %d Validates accepted an ended token later than %v", w.name, w.late, staleBound)
		}
		if len(w.delay) != 3*endings {
			t.Errorf("%s: %d refusals, want %d", w.name, len(w.delay), 3*endings)
		}
	}
}

// lostSession signs a user in on the ender, warms the session on the
// watcher and returns the token.
func lostSession(t *testing.T, ender, watcher *Engine, user string) string {
	t.Helper()
	r := mustLogin(t, ender, user, Meta{})
	warm(t, r.Token, watcher)
	return r.Token
}

// clientIDs lists the IDs of the server's connections named name.
func clientIDs(t *testing.T, ctl *redis.Client, name string) []string {
	t.Helper()
	list, err := ctl.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, l := range strings.Split(list, "\n") {
		var id, n string
		for _, f := range strings.Fields(l) {
			if v, ok := strings.CutPrefix(f, "id="); ok {
				id = v
			}
			if v, ok := strings.CutPrefix(f, "name="); ok {
				n = v
			}
		}
		if n == name {
			ids = append(ids, id)
		}
	}
	return ids
}

// TestCacheFlushedOnConnectionLoss: the watcher's connections are killed
// by the server (CLIENT KILL ID), so Redis forgets what they track; the
// session is then ended on another engine, whose invalidation has nowhere
// to go. The watcher must still refuse the token within the bound: go-redis
// evicts what a lost connection fetched.
func TestCacheFlushedOnConnectionLoss(t *testing.T) {
	srv := cacheServer(t)
	ctx := context.Background()
	ctl := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer ctl.Close()
	clk := newClock()
	ender, err := New(ctl, Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	watcherClient := redis.NewClient(&redis.Options{Addr: srv.Addr(), Protocol: 3, ClientName: "watcher", ClientSideCacheConfig: CacheConfig()})
	defer watcherClient.Close()
	watcher, err := New(watcherClient, Config{Now: clk.Now, CachedValidate: true})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 20 {
		token := lostSession(t, ender, watcher, "u"+strconv.Itoa(round))
		ids := clientIDs(t, ctl, "watcher")
		if len(ids) == 0 {
			t.Fatal("the watcher has no connection")
		}
		for _, id := range ids {
			if err := ctl.Do(ctx, "client", "kill", "id", id).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if err := ender.Logout(ctx, token); err != nil {
			t.Fatal(err)
		}
		el, err := waitRefused(t, watcher, token, staleBound)
		if round < 3 || round == 19 {
			t.Logf("round %d: %d connections killed; refused after %v with %v", round, len(ids), el.Round(time.Microsecond), err)
		}
	}
}

// TestCacheLostInvalidationBoundedByMaxStaleness: the watcher reaches Redis
// through a proxy that swallows everything for 300 ms (the connection stays
// open, as behind a stalled middlebox), in which the session is ended: the
// invalidation is lost for good. MaxStaleness is what ends the cached copy;
// the test checks the token is refused within the bound after the ending,
// and logs how long the stale copy lived.
func TestCacheLostInvalidationBoundedByMaxStaleness(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out MaxStaleness twice, 2 s")
	}
	srv := cacheServer(t)
	ctx := context.Background()
	p, err := faultproxy.New(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctl := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer ctl.Close()
	clk := newClock()
	ender, err := New(ctl, Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	watcher, _ := cachedEngine(t, p.Addr(), Config{Now: clk.Now}, nil)
	for round := range 2 {
		token := lostSession(t, ender, watcher, "u"+strconv.Itoa(round))
		p.SetBlackhole(true)
		if err := ender.Logout(ctx, token); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		accepted := 0
		for time.Since(start) < 300*time.Millisecond {
			if _, err := watcher.Validate(ctx, token); err == nil {
				accepted++
			}
			time.Sleep(time.Millisecond)
		}
		p.SetBlackhole(false)
		el, err := waitRefused(t, watcher, token, staleBound)
		t.Logf("round %d: during the cut the stale copy was accepted %d times; refused %v after the ending with %v",
			round, accepted, el+300*time.Millisecond, err)
	}
}

// TestCacheFlushedOnFlushAll: FLUSHALL makes Redis tell every tracking
// connection to drop everything; the watcher then reads the empty server.
func TestCacheFlushedOnFlushAll(t *testing.T) {
	srv := cacheServer(t)
	ctl := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer ctl.Close()
	clk := newClock()
	ender, err := New(ctl, Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	watcher, _ := cachedEngine(t, srv.Addr(), Config{Now: clk.Now}, nil)
	var tokens []string
	for i := range 20 {
		tokens = append(tokens, lostSession(t, ender, watcher, "u"+strconv.Itoa(i)))
	}
	if err := ctl.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	worst := worstRefusal(t, watcher, tokens, "after FLUSHALL", func(err error) bool { return errors.Is(err, ErrExpired) })
	t.Logf("after FLUSHALL, 20 cached sessions refused within %v", worst.Round(time.Microsecond))
}

// TestCacheFlushedOnFailover: the watcher's server dies (SIGKILL) and its
// replica is promoted; the watcher's dialer now reaches the new primary,
// where the session is ended. The watcher must refuse the token within the
// bound: its cached copies were fetched on connections to the dead server.
func TestCacheFlushedOnFailover(t *testing.T) {
	// No 5 s wait for more replicas before a diskless full sync.
	primary := cacheServer(t, "--repl-diskless-sync-delay", "0")
	replica := cacheServer(t, "--replicaof", "127.0.0.1", strconv.Itoa(primary.Port))
	ctx := context.Background()
	var target atomic.Pointer[string]
	addr := primary.Addr()
	target.Store(&addr)
	o := &redis.Options{Addr: "failover", Protocol: 3, ClientSideCacheConfig: CacheConfig(), MaxRetries: -1,
		Dialer: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, *target.Load())
		}}
	wc := redis.NewClient(o)
	defer wc.Close()
	clk := newClock()
	watcher, err := New(wc, Config{Now: clk.Now, CachedValidate: true})
	if err != nil {
		t.Fatal(err)
	}
	pc := redis.NewClient(&redis.Options{Addr: primary.Addr()})
	defer pc.Close()
	oldPrimary, err := New(pc, Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	var tokens []string
	for i := range 20 {
		tokens = append(tokens, lostSession(t, oldPrimary, watcher, "u"+strconv.Itoa(i)))
	}
	// The replica must hold every session before its primary dies.
	if n, err := pc.Do(ctx, "wait", 1, 10000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT 1: %d %v", n, err)
	}
	primary.Kill()
	rc := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	defer rc.Close()
	if err := rc.Do(ctx, "replicaof", "no", "one").Err(); err != nil {
		t.Fatal(err)
	}
	next := replica.Addr()
	target.Store(&next)
	newPrimary, err := New(rc, Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := newPrimary.LogoutAll(ctx, "u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9"); err != nil {
		t.Fatal(err)
	}
	worst := worstRefusal(t, watcher, tokens[:10], "after the failover", func(err error) bool { return !errors.Is(err, ErrUnavailable) })
	// The other ten were not ended: they must still be valid on the new primary.
	for _, token := range tokens[10:] {
		if _, err := watcher.Validate(ctx, token); err != nil {
			t.Fatalf("a session the failover kept: %v", err)
		}
	}
	t.Logf("after the failover, 10 ended sessions refused within %v of the ending (%v after the promotion)",
		worst.Round(time.Microsecond), time.Since(start).Round(time.Millisecond))
}

// TestCacheFlushedOnTrackingTableOverflow: with tracking-table-max-keys at
// 10, Redis evicts tracked keys as the watcher reads 50 users, sending an
// invalidation for each key it stops tracking, so no cached copy outlives
// Redis's knowledge of it. Every session, ended elsewhere, is refused
// within the bound.
func TestCacheFlushedOnTrackingTableOverflow(t *testing.T) {
	srv := cacheServer(t)
	ctx := context.Background()
	ctl := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer ctl.Close()
	if err := ctl.ConfigSet(ctx, "tracking-table-max-keys", "10").Err(); err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	ender, err := New(ctl, Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	watcher, wc := cachedEngine(t, srv.Addr(), Config{Now: clk.Now}, nil)
	var tokens []string
	users := make([]string, 50)
	for i := range users {
		users[i] = "u" + strconv.Itoa(i)
		tokens = append(tokens, lostSession(t, ender, watcher, users[i]))
	}
	time.Sleep(50 * time.Millisecond) // let the drainer apply the overflow's invalidations
	st := wc.CSCStats()
	t.Logf("after warming 50 users with tracking-table-max-keys 10: %d entries cached", st.Entries)
	if st.Entries > 20 {
		t.Fatalf("%d entries cached though Redis tracks at most 10 keys", st.Entries)
	}
	if _, err := ender.LogoutAll(ctx, users...); err != nil {
		t.Fatal(err)
	}
	worst := worstRefusal(t, watcher, tokens, "ended elsewhere", func(err error) bool { return errors.Is(err, ErrRevoked) })
	t.Logf("50 sessions ended elsewhere, all refused within %v", worst.Round(time.Microsecond))
}

// worstRefusal waits, within staleBound, until e refuses each token, fails
// the test if a refusal's error is not what ok accepts, and returns the
// longest wait.
func worstRefusal(t testing.TB, e *Engine, tokens []string, what string, ok func(error) bool) time.Duration {
	t.Helper()
	var worst time.Duration
	for i, token := range tokens {
		el, err := waitRefused(t, e, token, staleBound)
		if !ok(err) {
			t.Fatalf("%s: session %d refused with %v", what, i, err)
		}
		worst = max(worst, el)
	}
	return worst
}
