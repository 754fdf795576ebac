package main

import (
	"bufio"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sessioncap/sessioncap/internal/redistest"
)

// TestRedisURLTopologies runs the demo against real redis-server processes
// through each -redis URL scheme (a single server, a Sentinel set, a
// Cluster), so the schemes are known to reach working clients, and the live
// event stream is checked on each (PUBLISH, and SPUBLISH on the Cluster).
func TestRedisURLTopologies(t *testing.T) {
	if !redistest.Available() {
		msg := "!!! SKIPPED: redis-server not on PATH, -redis URL schemes untested (apt-get install redis-server)"
		if os.Getenv("SESSIONCAP_REQUIRE_REDIS") == "1" {
			t.Fatal("redis-server not on PATH, and SESSIONCAP_REQUIRE_REDIS=1 makes that a failure")
		}
		t.Skip(msg)
	}
	if testing.Short() {
		t.Skip("starts a Sentinel set and a Cluster; skipped under -short")
	}
	t.Run("redis", func(t *testing.T) {
		s, err := redistest.Start(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Kill)
		evictionOverURL(t, "redis://"+s.Addr()+"/2")
	})
	t.Run("sentinel", func(t *testing.T) {
		s, err := redistest.StartSentinel(redistest.SentinelOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		evictionOverURL(t, "redis+sentinel://"+strings.Join(s.SentinelAddrs(), ",")+"/"+s.MasterName)
	})
	t.Run("cluster", func(t *testing.T) {
		c, err := redistest.StartCluster(redistest.ClusterOptions{Masters: 3})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Stop)
		evictionOverURL(t, "redis+cluster://"+strings.Join(c.Addrs(), ","))
	})
}

// evictionOverURL signs a user in twice under a cap of one and checks the
// first device's event stream and its 401 body.
func evictionOverURL(t *testing.T, redisURL string) {
	ts := newTestServer(t, appConfig{RedisURL: redisURL})
	t.Logf("backend: %s", ts.app.backend)
	a := ts.device("A/1", false)
	a.mustLogin("alice", "demo")

	req, _ := http.NewRequest("GET", ts.srv.URL+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := ts.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("events: %d", resp.StatusCode)
	}
	events := make(chan string, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "event: ") {
				events <- strings.TrimPrefix(l, "event: ")
			}
		}
	}()
	wait := func(name string) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatalf("stream closed before %q", name)
				}
				if ev == name {
					return
				}
			case <-timeout:
				t.Fatalf("no %q event within 10s", name)
			}
		}
	}
	wait("ready")
	second := ts.device("B/1", false).mustLogin("alice", "demo")
	wait("ended")

	r, body := a.do("GET", "/api/me", nil)
	expect(t, r, body, 401, "evicted")
	if rb, _ := body["replaced_by"].(map[string]any); rb["session_id"] != second {
		t.Fatalf("%v", body)
	}
}
