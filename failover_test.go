package sessioncap

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap/internal/redistest"
)

// Failover: kill -9 the Redis that owns the users' data while 16 goroutines
// keep logging in, validating and logging out, then check that nothing was
// let in (the cap, read from Redis), nothing was answered wrongly (no
// "valid" for an ended session), every error was typed, and the engine
// recovered by itself once a new primary served.
//
// Reproduce the figures in docs/cluster.md with
//
//	go test -run 'TestFailover' -v -count=1 .

const (
	foUsers   = 32
	foWorkers = 16
	foCap     = 2
)

func TestFailoverCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a cluster master")
	}
	c, e, w, victim := clusterFailover(t, newClusterClient,
		Config{MaxSessions: foCap, WaitReplicas: 1, WaitTimeout: 250 * time.Millisecond}, 20*time.Second)

	// The old master comes back empty and rejoins as a replica: endings are
	// replicated again, so a Logout with WaitReplicas=1 returns nil.
	if err := c.Rejoin(victim, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// Its link being up does not mean its first acknowledgements arrive
	// within 250 ms on two busy cores (with -race they sometimes do not), so
	// retry the Logout, which is idempotent, for a bounded time.
	ctx := context.Background()
	res := mustLogin(t, e, w.users[0].id, Meta{})
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := e.Logout(ctx, res.Token)
		if err == nil {
			t.Logf("Logout acknowledged by the rejoined replica after %d attempt(s), %v", attempt, time.Since(start).Round(time.Millisecond))
			break
		}
		if !errors.Is(err, ErrNotReplicated) || time.Since(start) > 10*time.Second {
			t.Fatalf("Logout after the old master rejoined (attempt %d): %v", attempt, err)
		}
	}
	if _, err := e.Validate(ctx, res.Token); !errors.Is(err, ErrRevoked) {
		t.Fatalf("Validate after Logout: %v, want ErrRevoked", err)
	}
}

// TestFailoverClusterDefaultClient is TestFailoverCluster with go-redis's
// default ClusterOptions, as an application would construct them. go-redis
// reloads its slot map on MOVED and ASK, which a dead master never sends,
// and otherwise only every ClusterStateReloadInterval (60 s by default); the
// engine asks for a reload after a connection-level failure (afterError),
// which is what lets the users of the dead master's slots recover within
// seconds of the promotion.
func TestFailoverClusterDefaultClient(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a cluster master")
	}
	defaultClient := func(c *redistest.Cluster) *redis.ClusterClient {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	}
	clusterFailover(t, defaultClient, Config{MaxSessions: foCap}, 15*time.Second)
}

// clusterFailover starts a fresh 3+3 cluster, runs the failover workload on
// an engine with cfg over a client from newClient, and kills -9 the master
// that owns the first user's slot; runFailover checks the outcome. The
// cluster, engine, workload and dead master are returned for further checks.
func clusterFailover(t *testing.T, newClient func(*redistest.Cluster) *redis.ClusterClient, cfg Config,
	limit time.Duration) (*redistest.Cluster, *Engine, *workload, *redistest.Server) {
	t.Helper()
	c := freshCluster(t, redistest.ClusterOptions{ReplicasPerMaster: 1})
	client, observer := newClient(c), newClusterClient(c)
	t.Cleanup(func() { client.Close(); observer.Close() })
	cfg.KeyPrefix = newPrefix()
	e, err := New(client, cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := newWorkload(t, e, cfg.KeyPrefix, foUsers, foWorkers, func(string) int { return foCap })
	slot := redistest.KeySlot(keysFor(cfg.KeyPrefix, userDigest(w.users[0].id)).data)
	victim, err := c.MasterOf(slot)
	if err != nil {
		t.Fatal(err)
	}
	runFailover(t, w, observer, cfg.KeyPrefix, limit,
		func() { c.Kill(victim) },
		func() error { _, err := c.WaitPromotion(slot, victim, 30*time.Second); return err })
	return c, e, w, victim
}

func TestFailoverSentinel(t *testing.T) {
	if testing.Short() {
		t.Skip("kills the Sentinel-watched primary")
	}
	s := freshSentinel(t)
	client, observer := newFailoverClient(s), newFailoverClient(s)
	defer client.Close()
	defer observer.Close()
	prefix := newPrefix()
	e, err := New(client, Config{MaxSessions: foCap, KeyPrefix: prefix, WaitReplicas: 1, WaitTimeout: 250 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w := newWorkload(t, e, prefix, foUsers, foWorkers, func(string) int { return foCap })
	victim, err := s.Primary()
	if err != nil {
		t.Fatal(err)
	}
	runFailover(t, w, observer, prefix, 20*time.Second,
		func() { victim.Kill() },
		func() error { _, err := s.WaitFailover(victim, 30*time.Second); return err })
}

// runFailover runs the workload, calls kill after a warm-up, waits for the
// topology to promote a new primary and for the engine to go one full second
// without a failure, then checks and reports.
func runFailover(t *testing.T, w *workload, observer redis.Cmdable, prefix string, recoverWithin time.Duration, kill func(), promoted func() error) {
	t.Helper()
	_, stopLoad := w.start(90 * time.Second)
	cc := &capChecker{}
	ccStop, ccDone := make(chan struct{}), make(chan struct{})
	go func() {
		cc.loop(observer, prefix, w.users, w.cap, ccStop)
		close(ccDone)
	}()
	defer func() {
		stopLoad()
		close(ccStop)
		<-ccDone
	}()

	time.Sleep(time.Second)
	if _, _, n := w.failureSpan(); n > 0 {
		t.Errorf("%d operations failed before any fault: %v", n, w.failures[0].err)
	}
	opsBefore := w.okOps.Load()
	killAt := time.Now()
	kill()
	if err := promoted(); err != nil {
		t.Fatal(err)
	}
	promotedAt := time.Now()

	// Recovered: a full second without a failure after the promotion.
	var recoveredAt time.Time
	for recoveredAt.IsZero() {
		_, last, _ := w.failureSpan()
		quietSince := promotedAt
		if last.After(quietSince) {
			quietSince = last
		}
		switch {
		case time.Since(quietSince) >= time.Second:
			recoveredAt = quietSince
		case time.Since(promotedAt) > recoverWithin:
			w.mu.Lock()
			seen := map[string]bool{}
			for _, f := range w.failures {
				if f.at.After(promotedAt) && !seen[f.op] {
					seen[f.op] = true
					t.Logf("after promotion: %s: %v", f.op, f.err)
				}
			}
			w.mu.Unlock()
			t.Fatalf("the engine did not recover within %v of the promotion (last failure %v ago)", recoverWithin, time.Since(last))
		default:
			time.Sleep(50 * time.Millisecond)
		}
	}
	okAtRecovery := w.okOps.Load()
	time.Sleep(500 * time.Millisecond)
	stopLoad()

	first, last, n := w.failureSpan()
	if n == 0 {
		t.Fatalf("no operation failed: the fault did not reach the engine")
	}
	for _, f := range w.failures {
		if f.at.Before(killAt) || f.at.After(recoveredAt.Add(time.Millisecond)) {
			t.Errorf("%s failed at kill%+v, outside the failover window: %v", f.op, f.at.Sub(killAt), f.err)
		}
	}
	if w.okOps.Load() == okAtRecovery {
		t.Errorf("no operation succeeded after the recovery")
	}
	t.Logf("ops before kill %d; kill -> promotion seen by the nodes %v; failures from kill%+v to kill%+v (window %v): %d failed ops; recovered (1 s without failure) at kill%+v",
		opsBefore, promotedAt.Sub(killAt).Round(time.Millisecond), first.Sub(killAt).Round(time.Millisecond),
		last.Sub(killAt).Round(time.Millisecond), last.Sub(first).Round(time.Millisecond), n,
		recoveredAt.Sub(killAt).Round(time.Millisecond))
	causes := map[string]int{}
	for _, f := range w.failures {
		var ue *unavailableError
		if errors.As(f.err, &ue) {
			msg := ue.cause.Error()
			if i := strings.IndexAny(msg, "0123456789"); i > 0 {
				msg = msg[:i] // group "dial tcp 127.0.0.1:21000: ..." and the like
			}
			causes[msg]++
		}
	}
	t.Logf("causes of the failed calls: %v", causes)
	w.report(t, "failover")
	cc.assert(t)
	exactLiveCheck(t, observer, prefix, w.users, w.cap)
}
