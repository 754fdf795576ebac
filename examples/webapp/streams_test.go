package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap/internal/redistest"
)

// stream is one open /api/events request.
type stream struct {
	resp   *http.Response
	cancel context.CancelFunc
}

func (s *stream) close() {
	s.cancel()
	if s.resp != nil {
		s.resp.Body.Close()
	}
}

// openStream requests /api/events as c and, on a 200, waits for "ready" so
// the subscription is in place. On any other status it returns the decoded
// JSON body.
func (c *client) openStream(t *testing.T) (*stream, int, map[string]any) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", c.ts.srv.URL+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.ts.srv.Client().Do(req)
	if err != nil {
		cancel()
		t.Error(err)
		return nil, 0, nil
	}
	s := &stream{resp: resp, cancel: cancel}
	if resp.StatusCode != http.StatusOK {
		body := map[string]any{}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Errorf("%d answer is not JSON: %v", resp.StatusCode, err)
		}
		s.close()
		return nil, resp.StatusCode, body
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if sc.Text() == "event: ready" {
			return s, resp.StatusCode, nil
		}
	}
	s.close()
	t.Errorf("stream ended before ready: %v", sc.Err())
	return nil, 0, nil
}

// TestEventStreamCaps: a session may hold DefaultStreamsPerSession event
// streams and a user DefaultStreamsPerUser over all sessions; one more is a
// 429 with a JSON error naming the cap, and closing a stream frees its slot.
func TestEventStreamCaps(t *testing.T) {
	ts := newTestServer(t, appConfig{MaxSessions: 10})
	var open []*stream
	defer func() {
		for _, s := range open {
			s.close()
		}
	}()
	devices := make([]*client, DefaultStreamsPerUser/DefaultStreamsPerSession+1)
	for i := range devices {
		devices[i] = ts.device("Tab/"+string(rune('A'+i)), false)
		devices[i].mustLogin("alice", "demo")
	}
	a := devices[0]
	for range DefaultStreamsPerSession {
		s, code, body := a.openStream(t)
		if code != 200 {
			t.Fatalf("stream within the cap: %d %v", code, body)
		}
		open = append(open, s)
	}
	_, code, body := a.openStream(t)
	if code != http.StatusTooManyRequests || body["error"] != "too_many_streams" || body["scope"] != "session" ||
		body["limit"] != float64(DefaultStreamsPerSession) || !strings.Contains(body["message"].(string), "event streams") {
		t.Fatalf("stream over the session cap: %d %v", code, body)
	}
	// The user's other sessions fill the user cap.
	for _, d := range devices[1 : len(devices)-1] {
		for range DefaultStreamsPerSession {
			s, code, body := d.openStream(t)
			if code != 200 {
				t.Fatalf("stream within the caps: %d %v", code, body)
			}
			open = append(open, s)
		}
	}
	last := devices[len(devices)-1]
	_, code, body = last.openStream(t)
	if code != http.StatusTooManyRequests || body["scope"] != "user" || body["limit"] != float64(DefaultStreamsPerUser) {
		t.Fatalf("stream over the user cap: %d %v", code, body)
	}
	// Another user is not affected.
	bob := ts.device("Bob/1", false)
	bob.mustLogin("bob", "demo")
	if s, code, body := bob.openStream(t); code != 200 {
		t.Fatalf("another user's stream: %d %v", code, body)
	} else {
		open = append(open, s)
	}
	// Closing one of alice's streams frees a slot.
	open[0].close()
	open = open[1:]
	waitUntil(t, 5*time.Second, func() bool { return ts.app.streams.total() == DefaultStreamsPerUser })
	s, code, body := last.openStream(t)
	if code != 200 {
		t.Fatalf("stream after one closed: %d %v", code, body)
	}
	open = append(open, s)
}

func waitUntil(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// redisClients counts the connections of a redis-server, and those in
// Pub/Sub mode. The reading connection is among them.
func redisClients(t *testing.T, addr string) (all, pubsub int) {
	t.Helper()
	list, err := redistest.CallString(addr, 5*time.Second, "CLIENT", "LIST")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		all++
		if strings.Contains(line, " sub=") && !strings.Contains(line, " sub=0 ") ||
			strings.Contains(line, " ssub=") && !strings.Contains(line, " ssub=0 ") {
			pubsub++
		}
	}
	return all, pubsub
}

// TestEventStreamFlood fires 200 concurrent /api/events requests from one
// session at a demo backed by a redis-server with maxclients 50 (the issue
// saw 198 streams fill a server's 200). Beyond the cap they get 429; the
// server's connection count grows by at most the client's command pool
// (PoolSize, whatever the flood) and one Pub/Sub connection; another user
// can still sign in, on this instance and on a second one. With the caps lifted, 200 streams still cost one
// Pub/Sub connection, since the engine shares it among them.
func TestEventStreamFlood(t *testing.T) {
	if !redistest.Available() {
		if os.Getenv("SESSIONCAP_REQUIRE_REDIS") == "1" {
			t.Fatal("redis-server not on PATH, and SESSIONCAP_REQUIRE_REDIS=1 makes that a failure")
		}
		t.Skip("!!! SKIPPED: redis-server not on PATH, stream flood untested (apt-get install redis-server)")
	}
	srv, err := redistest.Start(t.TempDir(), "--maxclients", "50")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	const flood = 200
	for _, tc := range []struct {
		name       string
		perSession int
		wantOK     int
	}{{"capped", 0, DefaultStreamsPerSession}, {"uncapped", flood, flood}} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, appConfig{RedisURL: "redis://" + srv.Addr() + "/0", MaxSessions: 10,
				StreamsPerSession: tc.perSession, StreamsPerUser: tc.perSession})
			a := ts.device("Flood/1", false)
			a.mustLogin("alice", "demo")
			before, pubBefore := redisClients(t, srv.Addr())
			var (
				mu      sync.Mutex
				open    []*stream
				ok, cap int
				other   []string
				wg      sync.WaitGroup
			)
			for range flood {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s, code, body := a.openStream(t)
					mu.Lock()
					defer mu.Unlock()
					switch {
					case code == 200:
						ok++
						open = append(open, s)
					case code == http.StatusTooManyRequests && body["error"] == "too_many_streams":
						cap++
					default:
						other = append(other, strings.TrimSpace(http.StatusText(code)))
					}
				}()
			}
			wg.Wait()
			defer func() {
				for _, s := range open {
					s.close()
				}
			}()
			after, pubAfter := redisClients(t, srv.Addr())
			t.Logf("%d stream requests: %d streams, %d answered 429, other %v; Redis connections %d -> %d (Pub/Sub %d -> %d)",
				flood, ok, cap, other, before, after, pubBefore, pubAfter)
			if ok != tc.wantOK || ok+cap != flood {
				t.Fatalf("%d streams and %d 429s (other: %v), want %d streams and the rest 429", ok, cap, other, tc.wantOK)
			}
			if pubAfter-pubBefore > 1 {
				t.Fatalf("%d streams added %d Pub/Sub connections, want at most 1", ok, pubAfter-pubBefore)
			}
			// The concurrent session checks may grow the command pool up
			// to its PoolSize; streams add nothing beyond the one Pub/Sub
			// connection.
			pool := ts.app.client.(*redis.Client).Options().PoolSize
			if after-before > pool+1 {
				t.Fatalf("the flood added %d Redis connections, more than the pool's %d and one Pub/Sub", after-before, pool)
			}
			// Another user still signs in, on this instance and on another.
			ts.device("Bob/1", false).mustLogin("bob", "demo")
			other2 := newTestServer(t, appConfig{RedisURL: "redis://" + srv.Addr() + "/0"})
			other2.device("Carol/1", false).mustLogin("carol", "demo")
		})
	}
}
