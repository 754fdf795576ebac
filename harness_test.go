package sessioncap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap/internal/redistest"
)

// report counts the tests that ran on each backend; TestMain writes it to
// a file (see redistest.Report.Finish), because go test shows a passing
// package as one "ok" line.
var report = redistest.NewReport("sessioncap", redistest.BackendMiniredis, redistest.BackendRedis, redistest.BackendCluster, redistest.BackendSentinel)

// realRedis is the address of the redis-server the tests started (or were
// given with SESSIONCAP_REDIS_ADDR); empty when none is available.
var realRedis string

// TestMain starts one real redis-server for the package when redis-server is
// on PATH, and says loudly when it is not. With SESSIONCAP_REQUIRE_REDIS=1
// (set by .ci/run) a missing server fails the run instead of skipping.
func TestMain(m *testing.M) {
	// go-redis logs every failed dial; the outage tests cause them on purpose.
	redis.SetLogger(quietLogger{})
	var srv *redistest.Server
	switch {
	case os.Getenv("SESSIONCAP_REDIS_ADDR") != "":
		realRedis = os.Getenv("SESSIONCAP_REDIS_ADDR")
	case redistest.Available():
		dir, err := os.MkdirTemp("", "sessioncap-test-")
		if err == nil {
			srv, err = redistest.Start(dir)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "sessioncap: could not start redis-server: %v\n", err)
			os.Exit(1)
		}
		realRedis = srv.Addr()
		// os.Exit skips deferred calls, so the directory goes at teardown.
		atTeardown(func() { srv.Stop(); os.RemoveAll(dir) })
	}
	if realRedis == "" {
		banner := strings.Repeat("!", 72)
		fmt.Fprintf(os.Stderr, "%s\n!!! SKIPPING REAL-REDIS TESTS: redis-server is not on PATH.\n"+
			"!!! Only miniredis was tested. Install redis-server (apt-get install redis-server).\n%s\n", banner, banner)
		if os.Getenv("SESSIONCAP_REQUIRE_REDIS") == "1" {
			fmt.Fprintln(os.Stderr, "SESSIONCAP_REQUIRE_REDIS=1: failing instead of skipping")
			os.Exit(1)
		}
	}
	code := m.Run()
	for i := len(teardowns) - 1; i >= 0; i-- {
		teardowns[i]()
	}
	os.Exit(report.Finish(code))
}

// teardowns run after all tests, last registered first: shared topologies
// (a cluster, a Sentinel set) started lazily by some test register their
// shutdown here, so every process the tests start is stopped by PID.
var (
	teardownMu sync.Mutex
	teardowns  []func()
)

func atTeardown(f func()) {
	teardownMu.Lock()
	teardowns = append(teardowns, f)
	teardownMu.Unlock()
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// clock is a settable fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// counter is a go-redis hook that counts commands and round trips.
type counter struct {
	redistest.PassHook
	cmds  atomic.Int64
	trips atomic.Int64
	names sync.Map
}

func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.cmds.Add(1)
		c.trips.Add(1)
		c.names.Store(cmd.Name(), true)
		return next(ctx, cmd)
	}
}
func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.cmds.Add(int64(len(cmds)))
		c.trips.Add(1)
		return next(ctx, cmds)
	}
}
func (c *counter) reset() { c.cmds.Store(0); c.trips.Store(0); c.names.Clear() }

// sent reports whether a command of this name went out since reset.
func (c *counter) sent(name string) bool { _, ok := c.names.Load(name); return ok }

// sentScript reports whether a script call went out since reset: FCALL of
// the library, or EVALSHA where the server has no functions.
func (c *counter) sentScript() bool { return c.sent("fcall") || c.sent("evalsha") }

// flushScripts empties the script cache and the function libraries (of
// every master of a Cluster), as a restart without persistence would.
func flushScripts(ctx context.Context, c redis.UniversalClient) error {
	flush := func(ctx context.Context, c *redis.Client) error {
		if err := c.ScriptFlush(ctx).Err(); err != nil {
			return err
		}
		if err := c.FunctionFlush(ctx).Err(); err != nil && !redis.HasErrorPrefix(err, "unknown command") {
			return err
		}
		return nil
	}
	switch c := c.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, flush)
	case *redis.Client:
		return flush(ctx, c)
	}
	return fmt.Errorf("flushScripts: a %T", c)
}

// masters counts the primaries behind a client: a Cluster's, or 1.
func masters(t *testing.T, c redis.UniversalClient) int {
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		return 1
	}
	var n atomic.Int32
	if err := cc.ForEachMaster(context.Background(), func(context.Context, *redis.Client) error {
		n.Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return int(n.Load())
}

// isScriptCall reports whether a command is a script call, in either form.
func isScriptCall(name string) bool { return name == "fcall" || name == "evalsha" || name == "eval" }

// backend is one Redis the behaviour suite runs against.
type backend struct {
	name   string
	client redis.UniversalClient
	mini   *miniredis.Miniredis // nil on real Redis
	count  *counter
	clock  *clock
	prefix string
	// userKey, if set, is the Config.UserKey of every engine built here
	// that sets none (see userkey_test.go).
	userKey []byte
	// evalOnly: every engine built here runs its scripts by EVALSHA
	// (Config.EvalOnly; see library_test.go).
	evalOnly bool
}

// engine builds an Engine on this backend with a fixed clock and a key
// prefix of its own, so tests never see each other's keys.
func (b *backend) engine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = b.clock.Now
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = b.prefix
	}
	if cfg.UserKey == nil {
		cfg.UserKey = b.userKey
	}
	cfg.EvalOnly = cfg.EvalOnly || b.evalOnly
	e, err := New(b.client, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

// keys lists every key under this backend's prefix (on every master of a
// cluster).
func (b *backend) keys(t testing.TB) []string {
	t.Helper()
	ctx := context.Background()
	var (
		mu  sync.Mutex
		out []string
	)
	collect := func(ctx context.Context, c *redis.Client) error {
		keys, err := c.Keys(ctx, b.prefix+":*").Result()
		mu.Lock()
		out = append(out, keys...)
		mu.Unlock()
		return err
	}
	var err error
	switch c := b.client.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, collect)
	case *redis.Client:
		err = collect(ctx, c)
	default:
		t.Fatalf("keys: unsupported client %T", b.client)
	}
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	return out
}

var prefixSeq atomic.Int64

func newPrefix() string { return fmt.Sprintf("t%d", prefixSeq.Add(1)) }

// topology provides a backend for the behaviour suite. Providers for a
// single redis-server and miniredis are built in; topology_test.go adds
// Redis Cluster and Sentinel.
type topology struct {
	name    string
	backend string // as the backend report names it
	// setup returns a fresh backend, or calls t.Skip with a loud reason.
	setup func(t *testing.T) *backend
}

var topologies = []topology{
	{"miniredis", redistest.BackendMiniredis, func(t *testing.T) *backend {
		m := miniredis.RunT(t)
		client := redis.NewClient(&redis.Options{Addr: m.Addr()})
		return &backend{name: "miniredis", client: client, mini: m}
	}},
	{"redis", redistest.BackendRedis, func(t *testing.T) *backend {
		if realRedis == "" {
			report.Missing(t, redistest.BackendRedis, "no real redis-server: redis-server is not on PATH (apt-get install redis-server)")
		}
		return &backend{name: "redis", client: redis.NewClient(&redis.Options{Addr: realRedis})}
	}},
}

// backends runs f once on every topology: miniredis, a real redis-server,
// and whatever topology_test.go registers. The runs are parallel subtests:
// each has its own key prefix (and its own client, so b.count sees only its
// commands), though some share a server ("redis" and "redis+userkey").
//
// Tests are parallel (t.Parallel) unless they flush the script cache, kill
// or pause a server, check for leaked goroutines, or measure time or
// memory; those stay serial, and Go runs every serial top-level test before
// the parallel ones start. A serial test uses backendsInTurn.
func backends(t *testing.T, f func(t *testing.T, b *backend)) {
	t.Helper()
	runBackends(t, true, f)
}

// backendsInTurn is backends with the topologies one after another, for a
// test whose checks see the whole server or process (SCRIPT FLUSH, goleak).
func backendsInTurn(t *testing.T, f func(t *testing.T, b *backend)) {
	t.Helper()
	runBackends(t, false, f)
}

// realBackendsInTurn is backendsInTurn without miniredis, for a test of
// what only a real server does (connections, Pub/Sub confirmations); it
// leaves miniredis out instead of skipping it, so the full tier has no skip.
func realBackendsInTurn(t *testing.T, f func(t *testing.T, b *backend)) {
	t.Helper()
	runBackends(t, false, func(t *testing.T, b *backend) { f(t, b) }, redistest.BackendMiniredis)
}

func runBackends(t *testing.T, parallel bool, f func(t *testing.T, b *backend), leaveOut ...string) {
	t.Helper()
	for _, tp := range topologies {
		if slices.Contains(leaveOut, tp.backend) {
			continue
		}
		t.Run(tp.name, func(t *testing.T) {
			if parallel {
				t.Parallel()
			}
			report.Use(t, tp.backend)
			b := tp.setup(t)
			b.count = &counter{}
			b.client.AddHook(b.count)
			b.clock = newClock()
			b.prefix = newPrefix()
			t.Cleanup(func() { b.client.Close() })
			f(t, b)
		})
	}
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func mustLogin(t testing.TB, e *Engine, user string, meta Meta) *LoginResult {
	t.Helper()
	res, err := e.Login(context.Background(), user, meta)
	if err != nil {
		t.Fatalf("Login(%q): %v", user, err)
	}
	return res
}

func liveCount(t testing.TB, e *Engine, user string) int {
	t.Helper()
	s, err := e.Sessions(context.Background(), user)
	if err != nil {
		t.Fatalf("Sessions(%q): %v", user, err)
	}
	return len(s)
}

// indexIDs reads a user's live index (see lua/index.lua) straight from
// Redis: the session IDs in sign-in order, and each one's expiry in ms. It
// checks the index's shape: a small index in "j" or a large one in "k" and
// its blocks (never both), directories that match their blocks, both
// orders sorted and holding the same sessions, and the header's count.
func indexIDs(ctx context.Context, c redis.Cmdable, k userKeys) ([]string, []int64, error) {
	f, err := c.HMGet(ctx, k.data, "j", "k").Result()
	if err != nil {
		return nil, nil, err
	}
	var l, x []string
	listed := map[string]bool{} // block fields the directories list
	switch {
	case f[0] != nil && f[1] != nil:
		return nil, nil, fmt.Errorf("both a small and a large index")
	case f[0] != nil:
		j := f[0].(string)
		w := lEntryLen + xEntryLen
		if len(j) == 0 || len(j)%w != 0 || len(j)/w > smallMax {
			return nil, nil, fmt.Errorf("small index of %d bytes", len(j))
		}
		n := len(j) / w
		l, x = split(j[:n*lEntryLen], lEntryLen), split(j[n*lEntryLen:], xEntryLen)
	case f[1] != nil:
		hdr := f[1].(string)
		nextID, err1 := strconv.Atoi(hdr[:idLen])
		n, err2 := strconv.Atoi(hdr[idLen : idLen+countLen])
		nl, err3 := strconv.Atoi(hdr[idLen+countLen : indexHeaderLen])
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, nil, fmt.Errorf("large index header %q: %v", hdr[:indexHeaderLen], err)
		}
		if n <= smallMin {
			return nil, nil, fmt.Errorf("large index of %d sessions", n)
		}
		// A directory entry keeps the sort key of its block's first entry:
		// the seq, or the expiry and the seq.
		lkw, xkw := seqLen, tsLen+seqLen
		ldw, xdw := idLen+dirCountLen+lkw, idLen+dirCountLen+xkw
		ldir, xdir := hdr[indexHeaderLen:indexHeaderLen+nl*ldw], hdr[indexHeaderLen+nl*ldw:]
		if len(xdir)%xdw != 0 {
			return nil, nil, fmt.Errorf("expiry directory of %d bytes", len(xdir))
		}
		for _, o := range []struct {
			dir       string
			dw, w, kw int
			into      *[]string
		}{{ldir, ldw, lEntryLen, lkw, &l}, {xdir, xdw, xEntryLen, xkw, &x}} {
			for p := 0; p < len(o.dir); p += o.dw {
				id := o.dir[p : p+idLen]
				listed[blockPrefix+id] = true
				if n, _ := strconv.Atoi(id); n >= nextID {
					return nil, nil, fmt.Errorf("block %s at or past the next ID %d", id, nextID)
				}
				cnt, _ := strconv.Atoi(o.dir[p+idLen : p+idLen+dirCountLen])
				b, err := c.HGet(ctx, k.data, blockPrefix+id).Result()
				if err != nil {
					return nil, nil, fmt.Errorf("block %s: %v", id, err)
				}
				if len(b) != cnt*o.w || cnt == 0 || cnt > blockMax || b[:o.kw] != o.dir[p+idLen+dirCountLen:p+o.dw] {
					return nil, nil, fmt.Errorf("block %s (%d bytes) does not match its directory entry", id, len(b))
				}
				*o.into = append(*o.into, split(b, o.w)...)
			}
		}
		if len(l) != n {
			return nil, nil, fmt.Errorf("header says %d sessions, blocks hold %d", n, len(l))
		}
	}
	// No block is left behind that no directory lists.
	fields, err := c.HKeys(ctx, k.data).Result()
	if err != nil {
		return nil, nil, err
	}
	for _, f := range fields {
		if len(f) == len(blockPrefix)+idLen && strings.HasPrefix(f, blockPrefix) && !listed[f] {
			return nil, nil, fmt.Errorf("block field %q is in no directory", f)
		}
	}
	if f[0] == nil && f[1] == nil {
		return nil, nil, nil
	}
	if !slices.IsSorted(l) || !slices.IsSorted(x) {
		return nil, nil, fmt.Errorf("an order is not sorted")
	}
	exp := map[string]int64{}
	for _, e := range x {
		ms, err := parseMS(e[:tsLen])
		if err != nil {
			return nil, nil, err
		}
		exp[e[tsLen:]] = ms // seq and ID
	}
	var ids []string
	var exps []int64
	for _, e := range l {
		ms, ok := exp[e]
		if !ok {
			return nil, nil, fmt.Errorf("session %x of the sign-in order is not in the expiry order", e[seqLen:])
		}
		ids, exps = append(ids, e[seqLen:]), append(exps, ms)
	}
	if len(exp) != len(ids) {
		return nil, nil, fmt.Errorf("the two orders hold %d and %d sessions", len(ids), len(exp))
	}
	return ids, exps, nil
}

// split cuts s into entries of w bytes.
func split(s string, w int) []string {
	out := make([]string, 0, len(s)/w)
	for p := 0; p+w <= len(s); p += w {
		out = append(out, s[p:p+w])
	}
	return out
}

// hashRecords returns a user's session records (live and tombstones), without
// the index fields.
func hashRecords(ctx context.Context, c redis.Cmdable, k userKeys) (map[string]string, error) {
	all, err := c.HGetAll(ctx, k.data).Result()
	if err != nil {
		return nil, err
	}
	for f := range all {
		if len(f) != sidLen {
			delete(all, f)
		}
	}
	return all, nil
}
