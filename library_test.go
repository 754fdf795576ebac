package sessioncap

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap/internal/redistest"
)

// The behaviour suite runs once more on the real redis-server with
// EvalOnly, so both forms of every script (library.go) pass the same
// tests; miniredis, which has no functions, tests the EVAL form too.
func init() {
	topologies = append(topologies,
		topology{"redis+eval", redistest.BackendRedis, func(t *testing.T) *backend {
			if realRedis == "" {
				report.Missing(t, redistest.BackendRedis, "no real redis-server: redis-server is not on PATH (apt-get install redis-server)")
			}
			return &backend{name: "redis+eval", client: redis.NewClient(&redis.Options{Addr: realRedis}), evalOnly: true}
		}},
	)
}

// TestLibraryNamesFollowTheText: the library is named after a hash of its
// text, so two versions of the engine on one server never call each
// other's functions, and every script has its function in it.
func TestLibraryNamesFollowTheText(t *testing.T) {
	name := regexp.MustCompile(`^[A-Za-z0-9_]+$`) // what FUNCTION LOAD accepts
	if !name.MatchString(libraryName) {
		t.Fatalf("library name %q", libraryName)
	}
	if !strings.HasPrefix(libraryText, "#!lua name="+libraryName+"\n") {
		t.Fatalf("the library does not start with its shebang: %.60q", libraryText)
	}
	unnamed := strings.ReplaceAll(libraryText, libraryName, "sessioncap_LIBRARY")
	sum := sha1.Sum([]byte(unnamed))
	if want := "sessioncap_" + hex.EncodeToString(sum[:8]); libraryName != want {
		t.Fatalf("library %s, want %s: the name is not the hash of the text", libraryName, want)
	}
	for _, s := range []*luaScript{scriptLogin, scriptValidate, scriptSave, scriptRotate, scriptEnd, scriptSessions} {
		if !name.MatchString(s.fn) || !strings.Contains(libraryText, "redis.register_function('"+s.fn+"',") {
			t.Errorf("function %q is not registered by the library", s.fn)
		}
		if s.fnA != any(s.fn) || s.shaA != any(s.eval.Hash()) {
			t.Errorf("%s: boxed names out of date", s.fn)
		}
	}
}

// TestLibraryLoadsItselfOnEveryMaster: on a server that lost the library
// (restart without persistence, FUNCTION FLUSH, a new Cluster node), the
// first call loads it on every master and runs again, once; after that a
// sign-in is one FCALL. An engine on a server without functions, or with
// EvalOnly, never sends FUNCTION LOAD.
func TestLibraryLoadsItselfOnEveryMaster(t *testing.T) {
	backendsInTurn(t, func(t *testing.T, b *backend) {
		stats := &Stats{}
		e := b.engine(t, Config{Observer: stats})
		if err := flushScripts(ctx, b.client); err != nil {
			t.Fatal(err)
		}
		b.count.reset()
		mustLogin(t, e, "alice", Meta{})
		r := mustLogin(t, e, "alice", Meta{}) // the cap is 1: the first is evicted
		switch {
		case b.mini != nil || b.evalOnly:
			if e.functions() || b.count.sent("function") {
				t.Fatalf("functions in use: %v, FUNCTION LOAD sent: %v", e.functions(), b.count.sent("function"))
			}
			if b.evalOnly && b.count.sent("fcall") {
				t.Fatal("an EvalOnly engine sent FCALL")
			}
			validOK(t, e, r.Token)
			return
		case !e.functions():
			t.Fatal("an engine on Redis 7 gave up its function library")
		}
		if got := stats.Snapshot().ScriptRetries; got != 1 {
			t.Fatalf("%d script retries for the first sign-in after the flush, want 1", got)
		}
		var mu sync.Mutex
		loaded := 0
		check := func(ctx context.Context, c *redis.Client) error {
			libs, err := c.FunctionList(ctx, redis.FunctionListQuery{LibraryNamePattern: libraryName}).Result()
			if err != nil {
				return err
			}
			if len(libs) != 1 || len(libs[0].Functions) != len(libraryFunctions) {
				t.Errorf("%s: libraries %+v, want %s with %d functions", c, libs, libraryName, len(libraryFunctions))
			}
			mu.Lock()
			loaded++
			mu.Unlock()
			return nil
		}
		var err error
		if cc, ok := b.client.(*redis.ClusterClient); ok {
			err = cc.ForEachMaster(ctx, check)
		} else {
			err = check(ctx, b.client.(*redis.Client))
		}
		if err != nil {
			t.Fatal(err)
		}
		if loaded != masters(t, b.client) {
			t.Fatalf("library checked on %d masters", loaded)
		}
		b.count.reset()
		r = mustLogin(t, e, "alice", Meta{})
		if got := b.count.cmds.Load(); got != 1 || !b.count.sent("fcall") {
			t.Fatalf("a sign-in with the library loaded sent %d commands (fcall: %v), want one FCALL", got, b.count.sent("fcall"))
		}
		validOK(t, e, r.Token)
	})
}

// TestServerWithoutFunctionsFallsBackToEval: where the server has no
// FCALL (miniredis) or refuses it and FUNCTION LOAD to the engine's ACL
// user, the engine's first call finds out, runs by EVALSHA from then on,
// and says so once through its Logger, at Info: nothing fails.
func TestServerWithoutFunctionsFallsBackToEval(t *testing.T) {
	run := func(t *testing.T, client *redis.Client) {
		logs := &logRecorder{}
		e, err := New(client, Config{MaxSessions: 1, Logger: slog.New(logs)})
		if err != nil {
			t.Fatal(err)
		}
		count := &counter{}
		client.AddHook(count)
		a := mustLogin(t, e, "alice", Meta{})
		if !count.sent("fcall") || !count.sentScript() || e.functions() {
			t.Fatalf("first call: fcall sent %v, functions still in use %v", count.sent("fcall"), e.functions())
		}
		count.reset()
		b := mustLogin(t, e, "alice", Meta{})
		if count.sent("fcall") || count.sent("function") || count.cmds.Load() != 1 {
			t.Fatalf("after the fallback a sign-in sent %d commands (fcall %v)", count.cmds.Load(), count.sent("fcall"))
		}
		validOK(t, e, b.Token)
		if _, err := e.Validate(ctx, a.Token); !errors.Is(err, ErrEvicted) {
			t.Fatalf("the first session after the second sign-in: %v, want evicted", err)
		}
		if err := e.Logout(ctx, b.Token); err != nil {
			t.Fatal(err)
		}
		notices := 0
		for _, m := range logs.messages() {
			if strings.Contains(m, "functions") {
				notices++
			}
		}
		if notices != 1 {
			t.Fatalf("logged %q, want one notice about functions", logs.messages())
		}
	}
	t.Run("miniredis", func(t *testing.T) {
		m := miniredis.RunT(t)
		run(t, redis.NewClient(&redis.Options{Addr: m.Addr()}))
	})
	t.Run("redis/acl", func(t *testing.T) {
		needRedisServer(t, "an ACL user without functions")
		admin := ownRedis(t)
		if err := admin.Do(ctx, "ACL", "SETUSER", "nofunctions", "on", ">pw", "~*", "&*", "+@all", "-fcall", "-fcall_ro", "-function").Err(); err != nil {
			t.Fatal(err)
		}
		opt := *admin.Options()
		opt.Username, opt.Password = "nofunctions", "pw"
		c := redis.NewClient(&opt)
		t.Cleanup(func() { c.Close() })
		run(t, c)
	})
}

// logRecorder keeps the messages an slog.Logger was given.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Level.String()+" "+r.Message)
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }
func (l *logRecorder) messages() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.msgs...)
}

// TestLibraryLoadsOnceForConcurrentCalls: after a flush, concurrent calls
// find the library missing together; they send one FUNCTION LOAD between
// them, and every call succeeds.
func TestLibraryLoadsOnceForConcurrentCalls(t *testing.T) {
	needRedisServer(t, "concurrent calls after FUNCTION FLUSH")
	rdb := ownRedis(t)
	loads := &commandCounter{name: "function"}
	rdb.AddHook(loads)
	stats := &Stats{}
	e, err := New(rdb, Config{Observer: stats})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		if err := flushScripts(ctx, rdb); err != nil {
			t.Fatal(err)
		}
		loads.n.Store(0)
		before := stats.Snapshot().ScriptRetries
		const n = 64
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := e.Login(ctx, "user"+strconv.Itoa(i), Meta{}); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: a sign-in after the flush: %v", round, err)
		}
		if got := loads.n.Load(); got != 1 {
			t.Fatalf("round %d: %d FUNCTION LOADs for %d concurrent sign-ins, want 1", round, got, n)
		}
		if got := stats.Snapshot().ScriptRetries - before; got < 1 || got > n {
			t.Fatalf("round %d: %d script retries", round, got)
		}
	}
}

// commandCounter counts the commands of one name a client sends.
type commandCounter struct {
	redistest.PassHook
	name string
	n    atomic.Int64
}

func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == c.name {
			c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

// TestRefusalInsideTheFunctionIsTheCallsError: a command the function
// calls that the ACL user may not run fails the call, and the engine keeps
// its functions and does not run the EVAL form after it: the function may
// have run in part.
func TestRefusalInsideTheFunctionIsTheCallsError(t *testing.T) {
	needRedisServer(t, "an ACL user without HSET")
	admin := ownRedis(t)
	if err := admin.Do(ctx, "ACL", "SETUSER", "nohset", "on", ">pw", "~*", "&*", "+@all", "-hset").Err(); err != nil {
		t.Fatal(err)
	}
	opt := *admin.Options()
	opt.Username, opt.Password = "nohset", "pw"
	c := redis.NewClient(&opt)
	t.Cleanup(func() { c.Close() })
	count := &counter{}
	c.AddHook(count)
	e, err := New(c, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Login(ctx, "alice", Meta{}); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "can't run this command") {
		t.Fatalf("Login without HSET: %v, want ErrUnavailable with Redis's refusal", err)
	}
	if !e.functions() || count.sent("evalsha") || count.sent("eval") {
		t.Fatalf("functions in use %v, EVAL form sent %v", e.functions(), count.sent("evalsha") || count.sent("eval"))
	}
}
