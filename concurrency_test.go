package sessioncap

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestConcurrentLoginsCluster: 2,000 logins at once, spread over 50 users
// whose caps (from a Limiter) run from 1 to 5, on the Redis Cluster. Then
// an exact account, read from Redis: each user holds exactly its cap of live
// sessions, every other session of its 40 is a tombstone, every session is
// either live or listed as evicted by exactly one login, and exactly the live
// ones validate. Serial: 2,000 logins at once load both cores, and other
// tests' timeouts should not pay for it.
func TestConcurrentLoginsCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 logins on the cluster")
	}
	const (
		logins = 2000
		users  = 50
		per    = logins / users
	)
	c := sharedCluster(t)
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), PoolSize: 64, PoolTimeout: 30 * time.Second})
	defer client.Close()
	capOf := func(user string) int {
		i, _ := strconv.Atoi(user[strings.LastIndexByte(user, '-')+1:])
		return 1 + i%5
	}
	prefix := newPrefix()
	e, err := New(client, Config{
		KeyPrefix: prefix,
		Limiter:   LimitFunc(func(_ context.Context, u string) (int, error) { return capOf(u), nil }),
	})
	if err != nil {
		t.Fatal(err)
	}
	user := func(i int) string { return fmt.Sprintf("conc-user-%d", i%users) }

	type result struct {
		user string
		res  *LoginResult
		err  error
	}
	results := make([]result, logins)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < logins; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-gate
			r, err := e.Login(ctx, user(i), Meta{UserAgent: "conc"})
			results[i] = result{user(i), r, err}
		}(i)
	}
	start := time.Now()
	close(gate)
	wg.Wait()
	t.Logf("%d concurrent logins over %d users took %v", logins, users, time.Since(start).Round(time.Millisecond))

	issued := map[string]map[string]string{} // user -> session ID -> token
	evictedBy := map[string]int{}            // session ID -> times listed as evicted
	for _, r := range results {
		if r.err != nil {
			t.Fatalf("Login(%s): %v", r.user, r.err)
		}
		if issued[r.user] == nil {
			issued[r.user] = map[string]string{}
		}
		issued[r.user][r.res.SessionID] = r.res.Token
		for _, id := range r.res.Evicted {
			evictedBy[id]++
		}
	}
	for i := 0; i < users; i++ {
		u := user(i)
		cp := capOf(u)
		k := keysFor(prefix, userDigest(u))
		live, _, err := indexIDs(ctx, client, k)
		if err != nil {
			t.Fatal(err)
		}
		fields, err := hashRecords(ctx, client, k)
		if err != nil {
			t.Fatal(err)
		}
		liveRecords, tombs := 0, 0
		tombIDs := map[string]bool{}
		for sid, rec := range fields {
			if rec[0] == kindLive {
				liveRecords++
			} else {
				tombs++
				tombIDs[publicID([sidLen]byte([]byte(sid)))] = true
			}
		}
		// Every eviction leaves a tombstone, but a user keeps the newest
		// maxTombstones only.
		if wantTombs := min(per-cp, maxTombstones); len(live) != cp || liveRecords != cp || tombs != wantTombs {
			t.Errorf("%s (cap %d): index %d, live records %d, tombstones %d; want %d, %d, %d",
				u, cp, len(live), liveRecords, tombs, cp, cp, wantTombs)
		}
		liveIDs := map[string]bool{}
		for _, raw := range live {
			liveIDs[publicID([sidLen]byte([]byte(raw)))] = true
		}
		valid := 0
		for id, tok := range issued[u] {
			switch {
			case liveIDs[id] && evictedBy[id] != 0:
				t.Errorf("%s: session %s is live in Redis but a login reported it evicted", u, id)
			case !liveIDs[id] && evictedBy[id] != 1:
				t.Errorf("%s: session %s is not live but was reported evicted %d times", u, id, evictedBy[id])
			}
			_, err := e.Validate(ctx, tok)
			switch {
			case err == nil:
				valid++
				if !liveIDs[id] {
					t.Errorf("%s: session %s validates but is not in the index", u, id)
				}
			case tombIDs[id] && !errors.Is(err, ErrEvicted):
				t.Errorf("%s: Validate(%s): %v, want ErrEvicted (its tombstone is kept)", u, id, err)
			case !tombIDs[id] && !errors.Is(err, ErrExpired):
				t.Errorf("%s: Validate(%s): %v, want ErrExpired (its tombstone was dropped)", u, id, err)
			}
		}
		if len(issued[u]) != per || valid != cp {
			t.Errorf("%s: %d sessions issued, %d valid; want %d and %d", u, len(issued[u]), valid, per, cp)
		}
	}
}
