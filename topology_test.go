package sessioncap

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap/internal/redistest"
)

// The behaviour suite also runs on a Redis Cluster (3 masters, 3 replicas)
// and behind Sentinel (primary, replica, 3 Sentinels). Each is started once
// per test binary, on first use, and stopped by TestMain after every test;
// under -short neither starts (see Report.FullTier).
// Tests that break a topology (failover, resharding) start their own with
// freshCluster / freshSentinel instead.
func init() {
	topologies = append(topologies,
		topology{"cluster", redistest.BackendCluster, func(t *testing.T) *backend {
			c := sharedCluster(t)
			return &backend{name: "cluster", client: redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})}
		}},
		topology{"sentinel", redistest.BackendSentinel, func(t *testing.T) *backend {
			s := sharedSentinel(t)
			return &backend{name: "sentinel", client: newFailoverClient(s)}
		}},
	)
}

var (
	clusterOnce   sync.Once
	clusterShared *redistest.Cluster
	clusterErr    error

	sentinelOnce   sync.Once
	sentinelShared *redistest.Sentinel
	sentinelErr    error
)

// needRedisServer skips t loudly when redis-server is missing, or fails it
// when SESSIONCAP_REQUIRE_REDIS=1 says that a missing topology is an error.
// It records t in the package's backend report as a redis-server test.
func needRedisServer(t testing.TB, what string) {
	t.Helper()
	needBackend(t, redistest.BackendRedis, what)
}

// needBackend is needRedisServer for a topology built of redis-server
// processes (a Cluster, a Sentinel set), recorded under its own name.
func needBackend(t testing.TB, backend, what string) {
	t.Helper()
	if !redistest.Available() {
		report.Missing(t, backend, "redis-server is not on PATH, so "+what+" is not tested (apt-get install redis-server)")
	}
	report.Use(t, backend)
}

func sharedCluster(t *testing.T) *redistest.Cluster {
	t.Helper()
	report.FullTier(t, redistest.BackendCluster)
	needBackend(t, redistest.BackendCluster, "Redis Cluster")
	clusterOnce.Do(func() {
		start := time.Now()
		clusterShared, clusterErr = redistest.StartCluster(redistest.ClusterOptions{ReplicasPerMaster: 1})
		if clusterErr == nil {
			atTeardown(clusterShared.Stop)
			t.Logf("shared 3+3 cluster started in %v", time.Since(start).Round(time.Millisecond))
		}
	})
	if clusterErr != nil {
		t.Fatalf("starting the shared cluster: %v", clusterErr)
	}
	return clusterShared
}

func sharedSentinel(t *testing.T) *redistest.Sentinel {
	t.Helper()
	report.FullTier(t, redistest.BackendSentinel)
	needBackend(t, redistest.BackendSentinel, "Redis Sentinel")
	sentinelOnce.Do(func() {
		start := time.Now()
		sentinelShared, sentinelErr = redistest.StartSentinel(redistest.SentinelOptions{})
		if sentinelErr == nil {
			atTeardown(sentinelShared.Stop)
			t.Logf("shared Sentinel set started in %v", time.Since(start).Round(time.Millisecond))
		}
	})
	if sentinelErr != nil {
		t.Fatalf("starting the shared Sentinel set: %v", sentinelErr)
	}
	return sentinelShared
}

// freshCluster starts a cluster that only t uses, for tests that kill or
// reshard nodes, and stops it when t ends.
func freshCluster(t *testing.T, o redistest.ClusterOptions) *redistest.Cluster {
	t.Helper()
	report.FullTier(t, redistest.BackendCluster)
	needBackend(t, redistest.BackendCluster, "Redis Cluster")
	start := time.Now()
	c, err := redistest.StartCluster(o)
	if err != nil {
		t.Fatalf("starting a cluster: %v", err)
	}
	t.Cleanup(c.Stop)
	t.Logf("fresh %d-node cluster started in %v", len(c.Nodes), time.Since(start).Round(time.Millisecond))
	return c
}

// freshSentinel is freshCluster for a Sentinel set.
func freshSentinel(t *testing.T) *redistest.Sentinel {
	t.Helper()
	report.FullTier(t, redistest.BackendSentinel)
	needBackend(t, redistest.BackendSentinel, "Redis Sentinel")
	start := time.Now()
	s, err := redistest.StartSentinel(redistest.SentinelOptions{})
	if err != nil {
		t.Fatalf("starting a Sentinel set: %v", err)
	}
	t.Cleanup(s.Stop)
	t.Logf("fresh Sentinel set started in %v", time.Since(start).Round(time.Millisecond))
	return s
}

func newFailoverClient(s *redistest.Sentinel) *redis.Client {
	return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.MasterName, SentinelAddrs: s.SentinelAddrs()})
}

// newClusterClient is the client the fault tests use. It reloads the slot
// map every second: go-redis reloads it on MOVED, ASK and READONLY replies
// but not on a refused connection, so after a master dies a client with the
// default 60 s interval keeps dialing the dead node for that long (see
// TestFailoverClusterDefaultClient and docs/cluster.md).
func newClusterClient(c *redistest.Cluster) *redis.ClusterClient {
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ClusterStateReloadInterval: time.Second})
}

// TestTopologiesAreWhatTheySayTheyAre guards the harness itself: a "cluster"
// backend must really be a cluster (a cross-slot script is refused), and a
// "sentinel" backend must really talk to the primary the Sentinels name.
func TestTopologiesAreWhatTheySayTheyAre(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		ctx := t.Context()
		switch b.name {
		case "cluster":
			c := b.client.(*redis.ClusterClient)
			err := c.Eval(ctx, "return 1", []string{"a", "b"}).Err()
			if err == nil || !redis.HasErrorPrefix(err, "CROSSSLOT") {
				t.Fatalf("cross-slot EVAL on the cluster: %v, want CROSSSLOT", err)
			}
			var masters atomic.Int32
			if err := c.ForEachMaster(ctx, func(context.Context, *redis.Client) error { masters.Add(1); return nil }); err != nil {
				t.Fatal(err)
			}
			if masters.Load() != 3 {
				t.Fatalf("cluster has %d masters, want 3", masters.Load())
			}
		case "sentinel":
			s := sharedSentinel(t)
			p, err := s.Primary()
			if err != nil {
				t.Fatal(err)
			}
			info, err := b.client.Info(ctx, "server").Result()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(info, "tcp_port:"+strconv.Itoa(p.Port)) {
				t.Fatalf("failover client is not on the primary %d", p.Port)
			}
		}
	})
}

// TestReplicaReadingClientsKeepValidateOnTheMaster: a Cluster client that
// may send read-only commands to replicas would send Validate's HGET to
// one, and a replica can lag a logout. The engine then keeps Validate to
// the script, which always runs on the master.
func TestReplicaReadingClientsKeepValidateOnTheMaster(t *testing.T) {
	t.Parallel()
	c := sharedCluster(t)
	for name, o := range map[string]redis.ClusterOptions{
		"ReadOnly":       {ReadOnly: true},
		"RouteByLatency": {RouteByLatency: true},
		"RouteRandomly":  {RouteRandomly: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			o.Addrs = c.Addrs()
			client := redis.NewClusterClient(&o)
			defer client.Close()
			count := &counter{}
			client.AddHook(count)
			e, err := New(client, Config{KeyPrefix: newPrefix()})
			if err != nil {
				t.Fatal(err)
			}
			r := mustLogin(t, e, "alice", Meta{})
			for range 3 {
				count.reset()
				validOK(t, e, r.Token)
				if count.sent("hget") || !count.sentScript() {
					t.Fatalf("Validate on a %s client sent hget: %v", name, count.sent("hget"))
				}
			}
			if err := e.Logout(ctx, r.Token); err != nil {
				t.Fatal(err)
			}
			if _, err := e.Validate(ctx, r.Token); !errors.Is(err, ErrRevoked) && !errors.Is(err, ErrExpired) {
				t.Fatalf("after Logout: %v", err)
			}
		})
	}
}
