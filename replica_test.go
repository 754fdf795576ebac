package sessioncap

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap/internal/redistest"
)

// Validate must never read a replica (issue 13, part 2). A client built with
// ReadOnly, RouteByLatency or RouteRandomly sends read-only commands (HGET,
// the Validate fast path) to replicas, which lag the master; scripts are not
// read-only commands and always go to the master. New therefore turns the
// touch cache off on such a client (readsFromReplicas), so that Validate
// always runs its script.
//
// The tests end sessions and validate each token at once through such a
// client, on the 3+3 Cluster and behind Sentinel, twice:
//
//   - "natural": replicas as they are. On loopback they lag the master by
//     microseconds, so even without the guard a stale read is luck;
//
//   - "lagged": every replica under CLIENT PAUSE WRITE, which in Redis 7
//     also pauses applying the replication stream while the replica keeps
//     answering reads: a deterministic lag. A control HGET through the same
//     client right after each Validate counts how often a replica-routed
//     read really saw the ended session as live, so a 0 from Validate is
//     not a test that could not fail.

// replicaModes are the client options that route reads to replicas.
var replicaModes = []struct {
	name                          string
	readOnly, byLatency, randomly bool
}{
	{"ReadOnly", true, false, false},
	{"RouteByLatency", false, true, false},
	{"RouteRandomly", false, false, true},
}

func TestValidateNeverReadsAReplicaCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("pauses replicas")
	}
	c := sharedCluster(t)
	for _, m := range replicaModes {
		t.Run(m.name, func(t *testing.T) {
			client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(),
				ReadOnly: m.readOnly, RouteByLatency: m.byLatency, RouteRandomly: m.randomly})
			defer client.Close()
			checkNoReplicaReads(t, client, c.Nodes, 1000, m.readOnly || m.randomly)
		})
	}
	if err := c.WaitHealthy(30 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestValidateNeverReadsAReplicaSentinel: NewFailoverClusterClient (what
// NewUniversalClient builds for a MasterName with RouteByLatency,
// RouteRandomly or IsClusterMode) is a *redis.ClusterClient over the
// primary and its replicas; ReplicaOnly becomes its ReadOnly.
func TestValidateNeverReadsAReplicaSentinel(t *testing.T) {
	if testing.Short() {
		t.Skip("pauses replicas")
	}
	s := sharedSentinel(t)
	for _, m := range []struct {
		name                             string
		replicaOnly, byLatency, randomly bool
	}{
		{"ReplicaOnly", true, false, false},
		{"RouteByLatency", false, true, false},
		{"RouteRandomly", false, false, true},
	} {
		t.Run(m.name, func(t *testing.T) {
			client := redis.NewFailoverClusterClient(&redis.FailoverOptions{MasterName: s.MasterName,
				SentinelAddrs: s.SentinelAddrs(), ReplicaOnly: m.replicaOnly,
				RouteByLatency: m.byLatency, RouteRandomly: m.randomly})
			defer client.Close()
			checkNoReplicaReads(t, client, s.Data, 300, m.replicaOnly || m.randomly)
		})
	}
	if err := s.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// checkNoReplicaReads ends n sessions (a third each by Logout, Revoke and
// eviction by a new Login), validates each token as soon as the ending
// returns, and fails on any success; first with replicas as they are, then
// with every replica among nodes paused for writes. mustSeeLag says the
// client sends a fair share of reads to replicas, so the control reads must
// have seen stale data in the lagged run.
func checkNoReplicaReads(t *testing.T, client redis.UniversalClient, nodes []*redistest.Server, n int, mustSeeLag bool) {
	t.Helper()
	ctx := context.Background()
	for _, lagged := range []bool{false, true} {
		name := map[bool]string{false: "natural", true: "lagged"}[lagged]
		e, err := New(client, Config{KeyPrefix: newPrefix(), MaxSessions: 1})
		if err != nil {
			t.Fatal(err)
		}
		type sess struct {
			user string
			res  *LoginResult
		}
		all := make([]sess, n)
		lost := 0
		for i := range all {
			u := fmt.Sprintf("replica-read-%d", i)
			all[i] = sess{u, mustLogin(t, e, u, Meta{})}
			// Validate at once, as the app does after a sign-in: a read
			// from a replica that has not got the login yet would say
			// ErrExpired. (A Login also fills the touch cache, which would
			// send the Validates down the HGET path if the guard were off.)
			if _, err := e.Validate(ctx, all[i].res.Token); err != nil {
				lost++
			}
		}
		if lost > 0 {
			t.Errorf("%s: %d of %d sessions did not validate right after their login", name, lost, n)
		}
		// Every replica must hold the live records before the endings, or
		// a lagging replica would answer "no such session" and prove nothing.
		waitReplicated(t, nodes)
		clientSeesReplicas(t, client, nodes)
		var replicas []*redistest.Server
		if lagged {
			replicas = pauseReplicaWrites(t, nodes)
		}
		successes, stale := 0, 0
		start := time.Now()
		for i, s := range all {
			switch i % 3 {
			case 0:
				err = e.Logout(ctx, s.res.Token)
			case 1:
				err = e.Revoke(ctx, s.user, s.res.SessionID)
			case 2:
				var r *LoginResult
				r, err = e.Login(ctx, s.user, Meta{})
				if err == nil && len(r.Evicted) != 1 {
					err = fmt.Errorf("login evicted %v, want the old session", r.Evicted)
				}
			}
			if err != nil {
				t.Fatalf("ending %d: %v", i, err)
			}
			_, err := e.Validate(ctx, s.res.Token)
			if err == nil {
				successes++
			} else if !errors.Is(err, ErrRevoked) && !errors.Is(err, ErrEvicted) {
				t.Fatalf("Validate after ending %d: %v, want ErrRevoked or ErrEvicted", i, err)
			}
			// The control: the same client's plain HGET of the record.
			sid, _ := parsePublicID(s.res.SessionID)
			r, err := client.HGet(ctx, e.keysOf(s.user).data, string(sid[:])).Result()
			if err == nil && len(r) > 0 && r[0] == kindLive {
				stale++
			}
		}
		took := time.Since(start)
		for _, r := range replicas {
			if _, err := redistest.CallString(r.Addr(), 2*time.Second, "CLIENT", "UNPAUSE"); err != nil {
				t.Errorf("CLIENT UNPAUSE on %d: %v", r.Port, err)
			}
		}
		t.Logf("%s: %d endings in %v; Validate succeeded %d times; control HGET saw a live record %d times; fresh logins not found: %d",
			name, n, took.Round(time.Millisecond), successes, stale, lost)
		if successes != 0 {
			t.Errorf("%s: %d of %d ended sessions validated right after their ending", name, successes, n)
		}
		if lagged && mustSeeLag && stale == 0 {
			t.Errorf("%s: no control read saw a stale record: the replicas did not lag, so the test proves nothing", name)
		}
	}
	waitReplicated(t, nodes)
}

// clientSeesReplicas waits until the client's slot map lists every replica
// among nodes. A Cluster lists a replica in CLUSTER SLOTS only once its
// replication offset is not 0, so a client that loaded the map on a fresh
// cluster, before the first write, knows no replica and reads the masters
// until its next reload: the test would then prove nothing.
func clientSeesReplicas(t *testing.T, client redis.UniversalClient, nodes []*redistest.Server) {
	t.Helper()
	cc, ok := client.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("%T: want a *redis.ClusterClient", client)
	}
	want := 0
	for _, s := range nodes {
		if s.Alive() && nodeRole(t, s.Addr())[0] == "slave" {
			want++
		}
	}
	ctx := context.Background()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var mu sync.Mutex
		seen := 0
		err := cc.ForEachSlave(ctx, func(context.Context, *redis.Client) error {
			mu.Lock()
			seen++
			mu.Unlock()
			return nil
		})
		if err == nil && seen >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client knows %d replicas (%v), want %d", seen, err, want)
		}
		cc.ReloadState(ctx)
		time.Sleep(100 * time.Millisecond)
	}
}

// pauseReplicaWrites puts every replica among nodes under CLIENT PAUSE
// WRITE: it still answers reads but applies nothing from its master until
// CLIENT UNPAUSE (or 60 s). The cleanup unpauses them whatever happens.
func pauseReplicaWrites(t *testing.T, nodes []*redistest.Server) []*redistest.Server {
	t.Helper()
	var out []*redistest.Server
	for _, s := range nodes {
		if !s.Alive() || nodeRole(t, s.Addr())[0] != "slave" {
			continue
		}
		if _, err := redistest.CallString(s.Addr(), 2*time.Second, "CLIENT", "PAUSE", "60000", "WRITE"); err != nil {
			t.Fatalf("CLIENT PAUSE WRITE on %d: %v", s.Port, err)
		}
		out = append(out, s)
		t.Cleanup(func() { _, _ = redistest.CallString(s.Addr(), 2*time.Second, "CLIENT", "UNPAUSE") })
	}
	if len(out) == 0 {
		t.Fatal("no replica to pause")
	}
	return out
}

// nodeRole is ROLE as strings: for a replica "slave", master host, master
// port, state, processed offset; for a master "master", offset.
func nodeRole(t *testing.T, addr string) []string {
	t.Helper()
	v, err := redistest.Call(addr, 2*time.Second, "ROLE")
	if err != nil {
		t.Fatalf("ROLE on %s: %v", addr, err)
	}
	a, ok := v.([]any)
	if !ok || len(a) < 2 {
		t.Fatalf("ROLE on %s: %v", addr, v)
	}
	out := make([]string, len(a))
	for i, x := range a {
		out[i] = fmt.Sprint(x)
	}
	return out
}

// waitReplicated waits until every live replica among nodes has applied
// its master's whole replication stream as it stood when checked.
func waitReplicated(t *testing.T, nodes []*redistest.Server) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for _, s := range nodes {
		if !s.Alive() {
			continue
		}
		role := nodeRole(t, s.Addr())
		if role[0] != "slave" || len(role) < 5 {
			continue
		}
		master := role[1] + ":" + role[2]
		want := atoi(t, nodeRole(t, master)[1])
		for atoi(t, nodeRole(t, s.Addr())[4]) < want {
			if time.Now().After(deadline) {
				t.Fatalf("replica %d still behind its master %s", s.Port, master)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// TestReadsFromReplicas: which clients New treats as able to read a
// replica, and so keeps Validate off the HGET fast path.
func TestReadsFromReplicas(t *testing.T) {
	t.Parallel()
	addrs := []string{deadAddr(t), deadAddr(t)}
	fo := func(o redis.FailoverOptions) *redis.FailoverOptions {
		o.MasterName, o.SentinelAddrs = "m", addrs
		return &o
	}
	for _, tc := range []struct {
		name   string
		client redis.UniversalClient
		want   bool
	}{
		{"Client", redis.NewClient(&redis.Options{Addr: addrs[0]}), false},
		{"Cluster", redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs}), false},
		{"Cluster ReadOnly", redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, ReadOnly: true}), true},
		{"Cluster RouteByLatency", redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, RouteByLatency: true}), true},
		{"Cluster RouteRandomly", redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, RouteRandomly: true}), true},
		{"FailoverClient", redis.NewFailoverClient(fo(redis.FailoverOptions{})), false},
		{"FailoverClusterClient", redis.NewFailoverClusterClient(fo(redis.FailoverOptions{})), false},
		{"FailoverClusterClient ReplicaOnly", redis.NewFailoverClusterClient(fo(redis.FailoverOptions{ReplicaOnly: true})), true},
		{"FailoverClusterClient RouteByLatency", redis.NewFailoverClusterClient(fo(redis.FailoverOptions{RouteByLatency: true})), true},
		{"FailoverClusterClient RouteRandomly", redis.NewFailoverClusterClient(fo(redis.FailoverOptions{RouteRandomly: true})), true},
		{"Universal MasterName RouteRandomly", redis.NewUniversalClient(&redis.UniversalOptions{MasterName: "m", Addrs: addrs, RouteRandomly: true}), true},
		{"Universal cluster ReadOnly", redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs, ReadOnly: true}), true},
		// NewUniversalClient with MasterName and ReadOnly builds a plain
		// *redis.Client whose every connection goes to a replica: nothing
		// in it says so without I/O. Every Login on it fails (READONLY);
		// docs/instances.md says not to build one.
		{"Universal MasterName ReadOnly (undetectable)", redis.NewUniversalClient(&redis.UniversalOptions{MasterName: "m", Addrs: addrs, ReadOnly: true}), false},
		// A Ring shards by key over independent servers, one *redis.Client
		// each, and never routes to a replica.
		{"Ring", redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": addrs[0], "b": addrs[1]}}), false},
	} {
		if got := readsFromReplicas(tc.client); got != tc.want {
			t.Errorf("%s: readsFromReplicas = %v, want %v", tc.name, got, tc.want)
		}
		e, err := New(tc.client, Config{})
		if err != nil {
			t.Fatal(err)
		}
		if (e.touched == nil) != tc.want {
			t.Errorf("%s: touch cache on = %v, want %v", tc.name, e.touched != nil, !tc.want)
		}
		tc.client.Close()
	}
}
