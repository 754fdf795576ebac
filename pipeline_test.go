package sessioncap

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap/internal/redistest"
)

// The engine on go-redis's automatic pipeliner. *redis.AutoPipeliner is a
// redis.UniversalClient, so New takes it as it is; these tests prove every
// operation, the NOSCRIPT fallback and the error mapping work through it,
// in each of its modes, on miniredis and on a real redis-server.

// pipelineModes are the autopipeliner's faces the engine is tested on.
var pipelineModes = []struct {
	name string
	make func(*redis.Client) (*redis.AutoPipeliner, error)
}{
	{"half-duplex", func(c *redis.Client) (*redis.AutoPipeliner, error) { return c.AutoPipeline() }},
	{"full-duplex", func(c *redis.Client) (*redis.AutoPipeliner, error) {
		o := redis.DefaultBlockingAutoPipelineOptions()
		o.FullDuplex = true
		return c.AutoPipelineWithOptions(o)
	}},
	{"async", func(c *redis.Client) (*redis.AutoPipeliner, error) { return c.AsyncAutoPipeline() }},
}

// batchCounter counts what reaches the server in pipelines and what goes
// one command at a time.
type batchCounter struct {
	redistest.PassHook
	single, batched, batches atomic.Int64
}

func (h *batchCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.single.Add(1)
		return next(ctx, cmd)
	}
}

func (h *batchCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.batched.Add(int64(len(cmds)))
		h.batches.Add(1)
		return next(ctx, cmds)
	}
}

// pipelineTargets runs f on miniredis and on the real redis-server, once per
// autopipeliner mode, each on a client of its own (go-redis keeps one
// autopipeliner per client, whose first options win).
func pipelineTargets(t *testing.T, cfg Config, f func(t *testing.T, e *Engine, ap *redis.AutoPipeliner, ctl *redis.Client, h *batchCounter, st *Stats)) {
	targets := []struct{ name, backend string }{{"miniredis", redistest.BackendMiniredis}, {"redis", redistest.BackendRedis}}
	for _, tg := range targets {
		for _, m := range pipelineModes {
			t.Run(tg.name+"/"+m.name, func(t *testing.T) {
				report.Use(t, tg.backend)
				addr := realRedis
				if tg.backend == redistest.BackendMiniredis {
					addr = miniredis.RunT(t).Addr()
				} else if addr == "" {
					report.Missing(t, redistest.BackendRedis, "no real redis-server")
				}
				c := redis.NewClient(&redis.Options{Addr: addr})
				h := &batchCounter{}
				c.AddHook(h)
				t.Cleanup(func() { c.Close() })
				ctl := redis.NewClient(&redis.Options{Addr: addr})
				t.Cleanup(func() { ctl.Close() })
				ap, err := m.make(c)
				if err != nil {
					t.Fatal(err)
				}
				st := &Stats{}
				cfg := cfg
				cfg.Now, cfg.KeyPrefix, cfg.Observer = newClock().Now, newPrefix(), st
				e, err := New(ap, cfg)
				if err != nil {
					t.Fatal(err)
				}
				f(t, e, ap, ctl, h, st)
			})
		}
	}
}

// TestPipelinedEveryOperation: Login (with an eviction), Validate (script
// and plain read), Save, Update, Rotate, Sessions, History, LogoutOthers,
// Revoke, LogoutAll and Logout through the autopipeliner, each answer
// checked, and every ending's error mapped to its type; then 32 goroutines
// sign in and validate 10 times each at once, and the hook sees them share
// batches.
func TestPipelinedEveryOperation(t *testing.T) {
	pipelineTargets(t, Config{MaxSessions: 2, HistoryLimit: 100}, func(t *testing.T, e *Engine, ap *redis.AutoPipeliner, _ *redis.Client, h *batchCounter, _ *Stats) {
		ctx := context.Background()
		r1 := mustLogin(t, e, "alice", Meta{UserAgent: "a"})
		r2 := mustLogin(t, e, "alice", Meta{UserAgent: "b"})
		r3 := mustLogin(t, e, "alice", Meta{UserAgent: "c"}) // evicts r1
		if len(r3.Evicted) != 1 || r3.Evicted[0] != r1.SessionID {
			t.Fatalf("Login at the cap evicted %v, want %s", r3.Evicted, r1.SessionID)
		}
		var ev *EvictedError
		if _, err := e.Validate(ctx, r1.Token); !errors.As(err, &ev) {
			t.Fatalf("Validate of an evicted session: %v", err)
		}
		for range 2 { // the script, then the plain read
			s, err := e.Validate(ctx, r2.Token)
			if err != nil || s.ID != r2.SessionID {
				t.Fatalf("Validate: %v %v", s, err)
			}
		}
		s, err := e.Validate(ctx, r2.Token)
		if err != nil {
			t.Fatal(err)
		}
		s.Values["theme"] = "dark"
		if err := e.Save(ctx, s); err != nil {
			t.Fatalf("Save: %v", err)
		}
		s, err = e.Update(ctx, r2.Token, func(v map[string]string) error { v["n"] = "1"; return nil })
		if err != nil || s.Values["theme"] != "dark" || s.Values["n"] != "1" {
			t.Fatalf("Update: %v %v", s, err)
		}
		rotated, err := e.Rotate(ctx, r2.Token)
		if err != nil {
			t.Fatalf("Rotate: %v", err)
		}
		if _, err := e.Validate(ctx, r2.Token); !errors.Is(err, ErrExpired) {
			t.Fatalf("the token Rotate replaced: %v, want ErrExpired", err)
		}
		list, err := e.Sessions(ctx, "alice")
		if err != nil || len(list) != 2 {
			t.Fatalf("Sessions: %d %v", len(list), err)
		}
		if ended, err := e.LogoutOthers(ctx, rotated); err != nil || len(ended) != 1 || ended[0] != r3.SessionID {
			t.Fatalf("LogoutOthers: %v %v", ended, err)
		}
		var rev *RevokedError
		if _, err := e.Validate(ctx, r3.Token); !errors.As(err, &rev) {
			t.Fatalf("Validate after LogoutOthers: %v", err)
		}
		if err := e.Revoke(ctx, "alice", r3.SessionID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Revoke of an ended session: %v, want ErrNotFound", err)
		}
		r4 := mustLogin(t, e, "alice", Meta{})
		if err := e.Revoke(ctx, "alice", r4.SessionID); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		if n, err := e.LogoutAll(ctx, "alice"); err != nil || n != 1 {
			t.Fatalf("LogoutAll: %d %v", n, err)
		}
		r5 := mustLogin(t, e, "bob", Meta{})
		if err := e.Logout(ctx, r5.Token); err != nil {
			t.Fatalf("Logout: %v", err)
		}
		if _, err := e.Validate(ctx, r5.Token); !errors.Is(err, ErrRevoked) {
			t.Fatalf("Validate after Logout: %v", err)
		}
		hist, err := e.History(ctx, "alice", 0, 100)
		if err != nil || len(hist) < 8 {
			t.Fatalf("History: %d events, %v", len(hist), err)
		}
		if _, err := e.Validate(ctx, "not a token"); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("bad token: %v", err)
		}

		// Concurrent callers share batches.
		h.batched.Store(0)
		h.batches.Store(0)
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for g := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 10 {
					r, err := e.Login(ctx, fmt.Sprintf("c%d-%d", g, i), Meta{})
					if err == nil {
						_, err = e.Validate(ctx, r.Token)
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("concurrent Login/Validate: %v", err)
		}
		cmds, batches := h.batched.Load(), h.batches.Load()
		t.Logf("640 concurrent calls: %d commands in %d pipelines (%.1f per pipeline), %d single commands in all",
			cmds, batches, float64(cmds)/float64(max(batches, 1)), h.single.Load())
		if ap.Config().FullDuplex {
			// The full-duplex engine streams on one held connection and
			// runs hooks per command, so the hook cannot see its batches.
			return
		}
		if cmds < 500 || batches*4 > cmds {
			t.Fatalf("%d commands in %d pipelines: the engine did not run on the autopipeliner", cmds, batches)
		}
	})
}

// TestPipelinedNoScriptFallback: after SCRIPT FLUSH and FUNCTION FLUSH,
// each script call's FCALL fails (or, without functions, its EVALSHA
// with NOSCRIPT) inside a batch, and the engine's reload runs through the
// autopipeliner too (observed as a script retry).
func TestPipelinedNoScriptFallback(t *testing.T) {
	// Without the touch cache every Validate runs the script.
	pipelineTargets(t, Config{TouchCacheSize: NoTouchCache}, func(t *testing.T, e *Engine, _ *redis.AutoPipeliner, ctl *redis.Client, _ *batchCounter, st *Stats) {
		ctx := context.Background()
		flush := func() {
			if err := flushScripts(ctx, ctl); err != nil {
				t.Fatal(err)
			}
		}
		before := st.Snapshot().ScriptRetries
		flush()
		r := mustLogin(t, e, "alice", Meta{})
		flush()
		if _, err := e.Validate(ctx, r.Token); err != nil {
			t.Fatalf("Validate after SCRIPT FLUSH: %v", err)
		}
		flush()
		if err := e.Logout(ctx, r.Token); err != nil {
			t.Fatalf("Logout after SCRIPT FLUSH: %v", err)
		}
		flush()
		if _, err := e.Validate(ctx, r.Token); !errors.Is(err, ErrRevoked) {
			t.Fatalf("Validate of the logged-out session after SCRIPT FLUSH: %v", err)
		}
		r = mustLogin(t, e, "alice", Meta{})
		flush()
		rotated, err := e.Rotate(ctx, r.Token)
		if err != nil {
			t.Fatalf("Rotate after SCRIPT FLUSH: %v", err)
		}
		flush()
		s, err := e.Validate(ctx, rotated)
		if err != nil {
			t.Fatal(err)
		}
		s.Values["k"] = "v"
		flush()
		if err := e.Save(ctx, s); err != nil {
			t.Fatalf("Save after SCRIPT FLUSH: %v", err)
		}
		flush()
		if list, err := e.Sessions(ctx, "alice"); err != nil || len(list) != 1 || list[0].Values["k"] != "v" {
			t.Fatalf("Sessions after SCRIPT FLUSH: %v %v", list, err)
		}
		flush()
		if n, err := e.LogoutAll(ctx, "alice"); err != nil || n != 1 {
			t.Fatalf("LogoutAll after SCRIPT FLUSH: %d %v", n, err)
		}
		// One per call after each of the 9 flushes, and, with EVAL, the
		// second Login, whose script the EVALs since the flush did not
		// load (the function library comes back whole).
		want := uint64(10)
		if e.functions() {
			want = 9
		}
		if got := st.Snapshot().ScriptRetries - before; got != want {
			t.Fatalf("%d script retries, want %d", got, want)
		}
	})
}

// TestPipelinedRedisDownIsUnavailable: with the server gone, every
// operation through the autopipeliner fails with ErrUnavailable, never
// with a session or a nil error.
func TestPipelinedRedisDownIsUnavailable(t *testing.T) {
	report.Use(t, redistest.BackendMiniredis)
	for _, m := range pipelineModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel() // each waits out its own dial failures
			mr := miniredis.RunT(t)
			c := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
			defer c.Close()
			ap, err := m.make(c)
			if err != nil {
				t.Fatal(err)
			}
			e, err := New(ap, Config{Now: newClock().Now})
			if err != nil {
				t.Fatal(err)
			}
			r := mustLogin(t, e, "alice", Meta{})
			mr.Close()
			ctx := context.Background()
			var wg sync.WaitGroup
			// In parallel: each waits out the autopipeliner's dial
			// failures (about 0.8 s).
			for name, op := range map[string]func() error{
				"Login":    func() error { _, err := e.Login(ctx, "alice", Meta{}); return err },
				"Validate": func() error { _, err := e.Validate(ctx, r.Token); return err },
				"Rotate":   func() error { _, err := e.Rotate(ctx, r.Token); return err },
				"Logout":   func() error { return e.Logout(ctx, r.Token) },
				"Revoke":   func() error { return e.Revoke(ctx, "alice", r.SessionID) },
				"Sessions": func() error { _, err := e.Sessions(ctx, "alice"); return err },
				"History":  func() error { _, err := e.History(ctx, "alice", 0, 10); return err },
				"LogoutAll": func() error {
					_, err := e.LogoutAll(ctx, "alice")
					return err
				},
				"LogoutOthers": func() error { _, err := e.LogoutOthers(ctx, r.Token); return err },
			} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := op(); !errors.Is(err, ErrUnavailable) {
						t.Errorf("%s with Redis down: %v, want ErrUnavailable", name, err)
					}
				}()
			}
			wg.Wait()
		})
	}
}
