package sessioncap

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/sessioncap/sessioncap/internal/faultproxy"
	"github.com/sessioncap/sessioncap/internal/redistest"
)

// leakCheck makes t fail if goroutines started during t outlive it. It is
// registered first so that it runs after every other cleanup.
//
// goleak alone retries for under half a second, but a closed go-redis pool
// can still own a dial probe that sleeps a full second between attempts
// before it notices the close (pool.(*ConnPool).tryDial). That goroutine
// does end, so rather than ignore it we give every goroutine a few seconds
// to finish; one that never ends still fails the test.
func leakCheck(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for goleak.Find(ignore) != nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		goleak.VerifyNone(t, ignore)
	})
}

// call runs one Engine operation, turning a panic into an error so that a
// test can report it instead of dying.
func call(op func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("PANIC: %v", r)
		}
	}()
	return op()
}

// everyOp lists one call of each Engine method that talks to Redis, with a
// well-formed token and user.
func everyOp(e *Engine, token, user, sid string) map[string]func(ctx context.Context) error {
	return map[string]func(ctx context.Context) error{
		"Login":    func(ctx context.Context) error { _, err := e.Login(ctx, user, Meta{}); return err },
		"Validate": func(ctx context.Context) error { _, err := e.Validate(ctx, token); return err },
		"Update": func(ctx context.Context) error {
			_, err := e.Update(ctx, token, func(map[string]string) error { return nil })
			return err
		},
		"Rotate":       func(ctx context.Context) error { _, err := e.Rotate(ctx, token); return err },
		"Logout":       func(ctx context.Context) error { return e.Logout(ctx, token) },
		"LogoutOthers": func(ctx context.Context) error { _, err := e.LogoutOthers(ctx, token); return err },
		"Revoke":       func(ctx context.Context) error { return e.Revoke(ctx, user, sid) },
		"LogoutAll":    func(ctx context.Context) error { _, err := e.LogoutAll(ctx, user); return err },
		"Sessions":     func(ctx context.Context) error { _, err := e.Sessions(ctx, user); return err },
		"History":      func(ctx context.Context) error { _, err := e.History(ctx, user, 0, 10); return err },
	}
}

// TestRedisDownAndBack kills the server under an Engine: every call fails
// fast with a typed error that wraps the cause, within its deadline, and
// the same Engine works again once a server is back on the address.
func TestRedisDownAndBack(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a redis-server")
	}
	needRedisServer(t, "Redis down and back")
	leakCheck(t)
	srv, err := redistest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer client.Close()
	e, err := New(client, Config{MaxSessions: 3, HistoryLimit: 10})
	if err != nil {
		t.Fatal(err)
	}
	const user = "down-user"
	res := mustLogin(t, e, user, Meta{})
	srv.Kill()

	for name, op := range everyOp(e, res.Token, user, res.SessionID) {
		deadlines := []time.Duration{300 * time.Millisecond}
		if name == "Login" || name == "Validate" || name == "Logout" {
			// Without a deadline go-redis retries refused dials with backoff
			// (about a second per call): three methods show it is bounded.
			deadlines = append(deadlines, 0)
		}
		for _, deadline := range deadlines {
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			limit := 10 * time.Second // no deadline: go-redis's own dial and retry bounds
			if deadline > 0 {
				ctx, cancel = context.WithTimeout(ctx, deadline)
				limit = deadline + time.Second
			}
			start := time.Now()
			err := call(func() error { return op(ctx) })
			took := time.Since(start)
			cancel()
			if !typedUnavailable(err) {
				t.Errorf("%s with Redis down (deadline %v): %v, want ErrUnavailable wrapping the cause", name, deadline, err)
			}
			if took > limit {
				t.Errorf("%s with Redis down took %v (deadline %v)", name, took, deadline)
			}
		}
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	// The restarted server is empty (no persistence): the old token reads as
	// expired, and new sessions work through the same Engine.
	var lastErr error
	for i := 0; i < 100; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, lastErr = e.Login(ctx, user, Meta{})
		cancel()
		if lastErr == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if lastErr != nil {
		t.Fatalf("Login never worked again after the restart: %v", lastErr)
	}
	t.Logf("first Login after the restart succeeded after %v", time.Since(back).Round(time.Millisecond))
	for i := 0; i < 20; i++ {
		r := mustLogin(t, e, user, Meta{})
		if _, err := e.Validate(context.Background(), r.Token); err != nil {
			t.Fatalf("Validate %d after the restart: %v", i, err)
		}
	}
	if _, err := e.Validate(context.Background(), res.Token); !errors.Is(err, ErrExpired) {
		t.Fatalf("pre-restart token on an empty server: %v, want ErrExpired", err)
	}
}

// TestLatencyDeadlinesAndResets drives the Engine through a fault-injecting
// proxy: deadlines are honoured under latency, a black hole and a slow
// link; a reset of every connection costs only the calls in flight; and no
// goroutine outlives the client.
func TestLatencyDeadlinesAndResets(t *testing.T) {
	if testing.Short() {
		t.Skip("injects network faults")
	}
	if realRedis == "" {
		needRedisServer(t, "network faults")
		t.Skip("SKIPPED: no real redis-server")
	}
	leakCheck(t)
	p, err := faultproxy.New(realRedis)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// go-redis ignores context deadlines on reads and writes unless
	// ContextTimeoutEnabled is set: without it a call under latency runs
	// until ReadTimeout whatever its context says. docs/cluster.md says so.
	client := redis.NewClient(&redis.Options{Addr: p.Addr(), ContextTimeoutEnabled: true,
		ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond})
	defer client.Close()
	e, err := New(client, Config{MaxSessions: 3, KeyPrefix: newPrefix()})
	if err != nil {
		t.Fatal(err)
	}
	const user = "proxy-user"
	res := mustLogin(t, e, user, Meta{})
	ctx := context.Background()

	within := func(what string, deadline time.Duration, op func(ctx context.Context) error) error {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, deadline)
		defer cancel()
		start := time.Now()
		err := call(func() error { return op(c) })
		if took := time.Since(start); took > deadline+time.Second {
			t.Errorf("%s: took %v with a %v deadline", what, took, deadline)
		}
		return err
	}
	validate := func(c context.Context) error { _, err := e.Validate(c, res.Token); return err }

	// Latency beyond the deadline: a typed error carrying the deadline.
	p.SetLatency(150 * time.Millisecond)
	err = within("validate under 150ms latency", 100*time.Millisecond, validate)
	if !typedUnavailable(err) {
		t.Errorf("validate under latency past its deadline: %v, want ErrUnavailable with its cause", err)
	}
	// Latency within the deadline: it works, slowly.
	if err := within("validate under 150ms latency, 3s deadline", 3*time.Second, validate); err != nil {
		t.Errorf("validate under latency within its deadline: %v", err)
	}
	p.SetLatency(0)

	// A black hole: no answer ever. With a deadline the call ends by it;
	// without one, go-redis's read timeout and retries bound it.
	p.SetBlackhole(true)
	if err := within("validate into a black hole", 200*time.Millisecond, validate); !typedUnavailable(err) {
		t.Errorf("validate into a black hole: %v, want ErrUnavailable", err)
	}
	start := time.Now()
	if err := call(func() error { return validate(ctx) }); !typedUnavailable(err) {
		t.Errorf("validate into a black hole without a deadline: %v", err)
	}
	t.Logf("no deadline, black hole: failed after %v (ReadTimeout 500ms and go-redis retries)", time.Since(start).Round(time.Millisecond))
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("validate into a black hole without a deadline hung for %v", took)
	}
	p.SetBlackhole(false)
	p.ResetAll() // black-holed connections carry stale replies

	// A slow link: 2 KiB/s cannot carry 16 KiB of values in 500 ms.
	p.SetBandwidth(2 << 10)
	big := map[string]string{"blob": strings.Repeat("v", 16<<10)}
	err = within("login over a 2 KiB/s link", 500*time.Millisecond, func(c context.Context) error {
		_, err := e.Login(c, user, Meta{Values: big})
		return err
	})
	if !typedUnavailable(err) {
		t.Errorf("login over a slow link past its deadline: %v", err)
	}
	p.SetBandwidth(0)
	p.ResetAll()

	// Reset every connection while 4 goroutines validate.
	var (
		mu               sync.Mutex
		okAfter, failed  int
		untyped          []error
		resetAt          time.Time
		stop             = make(chan struct{})
		wg               sync.WaitGroup
		fresh            = mustLogin(t, e, user, Meta{})
		wrongSessionSeen bool
	)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 100000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				c, cancel := context.WithTimeout(ctx, time.Second)
				s, err := e.Validate(c, fresh.Token)
				cancel()
				mu.Lock()
				switch {
				case err == nil:
					if s.ID != fresh.SessionID {
						wrongSessionSeen = true
					}
					if !resetAt.IsZero() {
						okAfter++
					}
				case typedUnavailable(err):
					failed++
				default:
					untyped = append(untyped, err)
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	resetAt = time.Now()
	mu.Unlock()
	n := p.ResetAll()
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("reset %d proxied connections under load: %d calls failed (typed), %d succeeded after", n, failed, okAfter)
	if n == 0 {
		t.Errorf("nothing was reset: the load did not go through the proxy")
	}
	if okAfter == 0 {
		t.Errorf("no call succeeded after the reset")
	}
	if len(untyped) > 0 || wrongSessionSeen {
		t.Errorf("untyped errors %v, wrong session %v", untyped, wrongSessionSeen)
	}
}

// TestScriptCacheLoss: SCRIPT FLUSH and FUNCTION FLUSH under load cost no
// failed operation, and a restart (with an fsync-always AOF, so the data
// and the function library survive and only the script cache is lost)
// costs exactly the operations that overlapped the downtime: every failed call started before the restarted server
// answered PING and ended after the kill. No session is lost or revived.
func TestScriptCacheLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a redis-server")
	}
	needRedisServer(t, "script cache loss")
	srv, err := redistest.Start(t.TempDir(), "--appendonly", "yes", "--appendfsync", "always")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer client.Close()
	stats := &Stats{}
	e, err := New(client, Config{MaxSessions: 3, Observer: stats})
	if err != nil {
		t.Fatal(err)
	}
	w := newWorkload(t, e, "script", 16, 4, func(string) int { return 3 })
	_, stopLoad := w.start(60 * time.Second)
	defer stopLoad()

	time.Sleep(500 * time.Millisecond)
	retries := stats.Snapshot().ScriptRetries
	if _, err := redistest.Call(srv.Addr(), time.Second, "SCRIPT", "FLUSH"); err != nil {
		t.Fatal(err)
	}
	if _, err := redistest.Call(srv.Addr(), time.Second, "FUNCTION", "FLUSH"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	afterFlush := stats.Snapshot().ScriptRetries
	if _, _, n := w.failureSpan(); n != 0 {
		t.Errorf("%d operations failed across SCRIPT FLUSH: %v", n, w.failures[0].err)
	}
	if afterFlush == retries {
		t.Errorf("no EVALSHA missed after SCRIPT FLUSH: the flush was not exercised")
	}

	killAt := time.Now()
	srv.Kill()
	time.Sleep(200 * time.Millisecond)
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	readyAt := time.Now()
	time.Sleep(time.Second)
	stopLoad()

	_, _, n := w.failureSpan()
	for _, f := range w.failures {
		if f.start.After(readyAt) || f.at.Before(killAt) {
			t.Errorf("%s started at kill%+v and failed at kill%+v, outside the downtime [kill, ready at kill%+v]: %v",
				f.op, f.start.Sub(killAt), f.at.Sub(killAt), readyAt.Sub(killAt), f.err)
		}
	}
	// The function library is data: the AOF brings it back with the
	// sessions, so the restart costs no reload. Only the EVAL form's
	// script cache is lost.
	afterRestart := stats.Snapshot().ScriptRetries
	if !e.functions() && afterRestart == afterFlush {
		t.Errorf("no EVALSHA missed after the restart: the empty script cache was not exercised")
	}
	if e.functions() && afterRestart != afterFlush {
		t.Errorf("%d script reloads after the restart: the function library should have come back with the AOF", afterRestart-afterFlush)
	}
	t.Logf("SCRIPT FLUSH and FUNCTION FLUSH: 0 failed ops, %d script reloads; restart: down %v, %d failed ops, all overlapping the downtime, %d reloads",
		afterFlush-retries, readyAt.Sub(killAt).Round(time.Millisecond), n, afterRestart-afterFlush)
	w.report(t, "script cache loss")
	if n := w.kinds[anVanished] + w.kinds[anRevived]; n > 0 {
		t.Errorf("with an fsync-always AOF no session may vanish or come back: %d did", n)
	}
}
