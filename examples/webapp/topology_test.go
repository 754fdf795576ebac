package main

import (
	"strings"
	"testing"

	"github.com/sessioncap/sessioncap/internal/redistest"
)

// TestRedisURLTopologies runs the demo against real redis-server processes
// through each -redis URL scheme (a single server, a Sentinel set, a
// Cluster), so the schemes are known to reach working clients, and the live
// event stream is checked on each (PUBLISH, and SPUBLISH on the Cluster).
//
// The single server runs in the -short tier too; Sentinel and Cluster only
// in the full one.
func TestRedisURLTopologies(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		needServer(t, redistest.BackendRedis)
		s, err := redistest.Start(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Kill)
		evictionOverURL(t, "redis://"+s.Addr()+"/2")
	})
	t.Run("sentinel", func(t *testing.T) {
		report.FullTier(t, redistest.BackendSentinel)
		needServer(t, redistest.BackendSentinel)
		s, err := redistest.StartSentinel(redistest.SentinelOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		evictionOverURL(t, "redis+sentinel://"+strings.Join(s.SentinelAddrs(), ",")+"/"+s.MasterName)
	})
	t.Run("cluster", func(t *testing.T) {
		report.FullTier(t, redistest.BackendCluster)
		needServer(t, redistest.BackendCluster)
		c, err := redistest.StartCluster(redistest.ClusterOptions{Masters: 3})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Stop)
		evictionOverURL(t, "redis+cluster://"+strings.Join(c.Addrs(), ","))
	})
}

// needServer records t under backend, and skips it (or, with
// SESSIONCAP_REQUIRE_REDIS=1, fails it) when redis-server is missing.
func needServer(t *testing.T, backend string) {
	t.Helper()
	if !redistest.Available() {
		report.Missing(t, backend, "redis-server is not on PATH, so the -redis URL scheme for "+backend+" is not tested (apt-get install redis-server)")
	}
	report.Use(t, backend)
}

// evictionOverURL signs a user in twice under a cap of one and checks the
// first device's event stream and its 401 body.
func evictionOverURL(t *testing.T, redisURL string) {
	ts := newTestServer(t, appConfig{RedisURL: redisURL})
	t.Logf("backend: %s", ts.app.backend)
	a := ts.device("A/1", false)
	a.mustLogin("alice", "demo")

	next, _ := a.events()
	next("event: ready")
	second := ts.device("B/1", false).mustLogin("alice", "demo")
	next("event: ended")

	r, body := a.do("GET", "/api/me", nil)
	expect(t, r, body, 401, "evicted")
	if rb, _ := body["replaced_by"].(map[string]any); rb["session_id"] != second {
		t.Fatalf("%v", body)
	}
}
