package sessioncap

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap/internal/redistest"
)

// clientCounts reads CLIENT LIST on addr: every connection, and those in
// Pub/Sub mode (subscribed to a channel or a shard channel). The reading
// connection itself is among them, in every count alike.
func clientCounts(t testing.TB, addr string) (all, pubsub int) {
	t.Helper()
	list, err := redistest.CallString(addr, 5*time.Second, "CLIENT", "LIST")
	if err != nil {
		t.Fatalf("CLIENT LIST on %s: %v", addr, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		if line == "" {
			continue
		}
		all++
		for _, f := range strings.Fields(line) {
			if (strings.HasPrefix(f, "sub=") || strings.HasPrefix(f, "ssub=")) && !strings.HasSuffix(f, "=0") {
				pubsub++
				break
			}
		}
	}
	return all, pubsub
}

// clusterMasters lists the masters of c.
func clusterMasters(t testing.TB, c *redistest.Cluster) []string {
	t.Helper()
	view, err := c.NodesView()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range view {
		if n.Has("master") && !n.Has("fail") {
			out = append(out, c.Node(n.Port).Addr())
		}
	}
	return out
}

// expectEvent waits for an event of user on sub.
func expectEvent(t testing.TB, sub *Subscription, user string, typ Reason, within time.Duration) Event {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev, ok := <-sub.C():
			if !ok {
				t.Fatalf("%s: subscription closed before a %s event", user, typ)
			}
			if ev.UserID == user && ev.Type == typ {
				return ev
			}
		case <-deadline:
			t.Fatalf("%s: no %s event within %v", user, typ, within)
		}
	}
}

// subscribeMany subscribes each user on its own Subscription, as one SSE
// stream per user would, 16 at a time.
func subscribeMany(t testing.TB, e *Engine, users []string) []*Subscription {
	t.Helper()
	subs := make([]*Subscription, len(users))
	errs := make([]error, len(users))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, u := range users {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			// The context bounds the subscribing, not the subscription.
			subs[i], errs[i] = e.Subscribe(context.WithoutCancel(ctx), u)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Subscribe(%s): %v", users[i], err)
		}
	}
	return subs
}

// TestSubscribeSharesConnections subscribes 500 users, one Subscription each,
// and counts the connections on every master before and after: Subscribe
// may add at most one per master, with EventsPubSub on a single
// redis-server and with EventsSharded on the 3+3 Cluster. A sample of the
// users then signs in, and each one's Subscription gets the event.
func TestSubscribeSharesConnections(t *testing.T) {
	const users = 500
	for _, tc := range []struct {
		name string
		mode EventMode
	}{{"redis/pubsub", EventsPubSub}, {"redis/sharded", EventsSharded}, {"cluster/sharded", EventsSharded}, {"cluster/pubsub", EventsPubSub}} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				client  redis.UniversalClient
				masters []string
			)
			if strings.HasPrefix(tc.name, "cluster") {
				c := sharedCluster(t)
				client = redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
				masters = clusterMasters(t, c)
			} else {
				if realRedis == "" {
					needRedisServer(t, "Subscribe on a real redis-server")
					t.Skip("SKIPPED: no real redis-server (see the banner above)")
				}
				client = redis.NewClient(&redis.Options{Addr: realRedis})
				masters = []string{realRedis}
			}
			leakCheck(t)
			defer client.Close()
			e, err := New(client, Config{Events: tc.mode, KeyPrefix: newPrefix()})
			if err != nil {
				t.Fatal(err)
			}
			ids := make([]string, users)
			for i := range ids {
				ids[i] = fmt.Sprintf("user-%03d@example.com", i)
			}
			// Warm the command pool (and a cluster client's slot map) so that
			// only Subscribe's connections are counted.
			for _, u := range ids[:20] {
				mustLogin(t, e, u, Meta{})
			}
			before := map[string][2]int{}
			for _, m := range masters {
				a, p := clientCounts(t, m)
				before[m] = [2]int{a, p}
			}
			start := time.Now()
			subs := subscribeMany(t, e, ids)
			took := time.Since(start)
			addedAll := 0
			for _, m := range masters {
				a, p := clientCounts(t, m)
				t.Logf("%s: %d connections before, %d after %d Subscribe calls (Pub/Sub connections %d -> %d)",
					m, before[m][0], a, users, before[m][1], p)
				if a-before[m][0] > 1 || p-before[m][1] > 1 {
					t.Errorf("%s: %d users added %d connections (%d in Pub/Sub mode), want at most 1",
						m, users, a-before[m][0], p-before[m][1])
				}
				addedAll += a - before[m][0]
			}
			t.Logf("%d users subscribed in %v; %d connections added over %d masters", users, took.Round(time.Millisecond), addedAll, len(masters))
			// A sample signs in; each one's own Subscription sees it, and
			// no one else's does.
			for i := 0; i < users; i += 25 {
				res := mustLogin(t, e, ids[i], Meta{UserAgent: "sample"})
				ev := expectEvent(t, subs[i], ids[i], ReasonLogin, 5*time.Second)
				if ev.SessionID != res.SessionID {
					t.Fatalf("%s: event for session %s, want %s", ids[i], ev.SessionID, res.SessionID)
				}
			}
			for i := 1; i < users; i += 25 {
				select {
				case ev := <-subs[i].C():
					t.Fatalf("%s got %+v, of a user it did not subscribe", ids[i], ev)
				default:
				}
			}
			for _, s := range subs {
				s.Close()
			}
			// The last Close unsubscribes everything and closes the
			// connections.
			waitFor(t, 5*time.Second, func() error {
				for _, m := range masters {
					if _, p := clientCounts(t, m); p > before[m][1] {
						return fmt.Errorf("%s: %d Pub/Sub connections left, %d before", m, p, before[m][1])
					}
				}
				return nil
			})
		})
	}
}

// waitFor polls cond until it returns nil or fails t after timeout.
func waitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHubFansOutWithoutBlocking opens several Subscriptions of one user: all
// of them get every event over the one shared channel; one that is never
// read drops events once full and delays no one; closing one leaves the
// others subscribed; a Subscription of two users gets both.
//
// Serial, its topologies in turn: leakCheck sees every goroutine.
func TestHubFansOutWithoutBlocking(t *testing.T) {
	// miniredis is left out: TestSubscribeDeliversEndingsLive covers it.
	realBackendsInTurn(t, func(t *testing.T, b *backend) {
		leakCheck(t)
		t.Cleanup(func() { b.client.Close() }) // before leakCheck looks
		mode := EventsPubSub
		if b.name == "cluster" {
			mode = EventsSharded
		}
		e := b.engine(t, Config{Events: mode, MaxSessions: 1000})
		var subs []*Subscription
		for range 4 {
			s, err := e.Subscribe(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			subs = append(subs, s)
		}
		slow, err := e.Subscribe(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		both, err := e.Subscribe(ctx, "alice", "bob")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { // Close is idempotent; this is for a failed test
			for _, s := range append(subs, slow, both) {
				s.Close()
			}
		})
		n := SubscriptionBuffer + 36
		var wg sync.WaitGroup
		got := make([]int, len(subs))
		for i, s := range subs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range n {
					expectEvent(t, s, "alice", ReasonLogin, 10*time.Second)
					got[i]++
				}
			}()
		}
		for range n {
			mustLogin(t, e, "alice", Meta{})
		}
		wg.Wait()
		for i, g := range got {
			if g != n {
				t.Fatalf("subscription %d got %d of %d events", i, g, n)
			}
		}
		waitFor(t, 5*time.Second, func() error {
			if d := slow.Dropped(); d != uint64(n-SubscriptionBuffer) {
				return fmt.Errorf("the unread subscription dropped %d events, want %d", d, n-SubscriptionBuffer)
			}
			return nil
		})
		if len(slow.C()) != SubscriptionBuffer {
			t.Fatalf("the unread subscription holds %d events, want %d", len(slow.C()), SubscriptionBuffer)
		}
		// "both" was not read either: it holds the first alice events and
		// dropped the rest. Emptied, it has room again.
		if d := both.Dropped(); d != uint64(n-SubscriptionBuffer) {
			t.Fatalf("the unread two-user subscription dropped %d events, want %d", d, n-SubscriptionBuffer)
		}
		for len(both.C()) > 0 {
			<-both.C()
		}
		slow.Close()
		subs[0].Close()
		if _, ok := <-subs[0].C(); ok {
			t.Fatal("C not closed after Close")
		}
		mustLogin(t, e, "bob", Meta{})
		expectEvent(t, both, "bob", ReasonLogin, 5*time.Second)
		res := mustLogin(t, e, "alice", Meta{})
		for _, s := range append(subs[1:], both) {
			if ev := expectEvent(t, s, "alice", ReasonLogin, 5*time.Second); ev.SessionID != res.SessionID {
				t.Fatalf("event of %s, want %s", ev.SessionID, res.SessionID)
			}
		}
		// Bob's channel outlives alice's Subscriptions only in "both".
		for _, s := range subs[1:] {
			s.Close()
		}
		mustLogin(t, e, "alice", Meta{})
		expectEvent(t, both, "alice", ReasonLogin, 5*time.Second)
		both.Close()

		// A context that ends closes the Subscription.
		cctx, cancel := context.WithCancel(ctx)
		s, err := e.Subscribe(cctx, "carol")
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		select {
		case _, ok := <-s.C():
			if ok {
				t.Fatal("event after cancel")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("C not closed when the context ended")
		}
	})
}

// TestSubscribeFailsWithoutRedis: with nothing listening, Subscribe returns
// an error rather than waiting for a confirmation that never comes.
func TestSubscribeFailsWithoutRedis(t *testing.T) {
	leakCheck(t)
	for _, mode := range []EventMode{EventsPubSub, EventsSharded} {
		client := redis.NewClient(&redis.Options{Addr: deadAddr(t), MaxRetries: -1})
		e, err := New(client, Config{Events: mode})
		if err != nil {
			t.Fatal(err)
		}
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		start := time.Now()
		s, err := e.Subscribe(c, "alice")
		cancel()
		if err == nil {
			s.Close()
			t.Fatalf("mode %d: Subscribe to a dead address succeeded", mode)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("mode %d: Subscribe took %v to fail", mode, time.Since(start))
		}
		client.Close()
	}
}

// TestSubscribeFollowsReshardingAndFailover moves a subscribed user's slot
// to another master, then kills that master: after each, the user's events
// arrive again on the same Subscription (those published in between may be
// lost: Pub/Sub is at-most-once), while other users' subscriptions on the
// shared connections keep working, and still one Pub/Sub connection per
// master carries them all.
func TestSubscribeFollowsReshardingAndFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("reshards and fails over a cluster")
	}
	c := freshCluster(t, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1})
	leakCheck(t)
	client := newClusterClient(c)
	defer client.Close()
	e, err := New(client, Config{Events: EventsSharded, KeyPrefix: newPrefix()})
	if err != nil {
		t.Fatal(err)
	}
	users := make([]string, 60)
	for i := range users {
		users[i] = fmt.Sprintf("mover-%02d", i)
	}
	subs := subscribeMany(t, e, users)
	defer func() {
		for _, s := range subs {
			s.Close()
		}
	}()
	channelOf := func(u string) string { return keysFor(e.cfg.KeyPrefix, userDigest(u)).channel }
	// Events arrive, retrying the sign-in while the hub re-places a channel.
	eventually := func(i int, what string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			res, err := e.Login(ctx, users[i], Meta{})
			if err == nil {
				wait := time.After(300 * time.Millisecond)
			drain:
				for {
					select {
					case ev := <-subs[i].C():
						if ev.SessionID == res.SessionID && ev.Type == ReasonLogin {
							return
						}
					case <-wait:
						break drain
					}
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no event for %s within 15s (last login error: %v)", what, users[i], err)
			}
		}
	}
	for i := range users {
		eventually(i, "before")
	}

	// Resharding: move user 0's slot to another master.
	slot := redistest.KeySlot(channelOf(users[0]))
	from, err := c.MasterOf(slot)
	if err != nil {
		t.Fatal(err)
	}
	var to *redistest.Server
	for _, m := range clusterMasters(t, c) {
		if m != from.Addr() {
			to = c.Node(portOf(t, m))
			break
		}
	}
	if err := c.MigrateSlot(slot, to); err != nil {
		t.Fatalf("migrating slot %d: %v", slot, err)
	}
	start := time.Now()
	eventually(0, "after resharding")
	t.Logf("resharding: slot %d moved %s -> %s; events back after %v", slot, from.Addr(), to.Addr(), time.Since(start).Round(time.Millisecond))
	for i := range users {
		eventually(i, "after resharding")
	}
	for _, m := range clusterMasters(t, c) {
		if _, p := clientCounts(t, m); p > 1 {
			t.Errorf("%s: %d Pub/Sub connections after resharding, want 1", m, p)
		}
	}

	// Failover: kill the master that now owns user 0's slot.
	c.Kill(to)
	if _, err := c.WaitPromotion(slot, to, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	for i := range users {
		eventually(i, "after failover")
	}
	t.Logf("failover: %s killed; every user's events back after %v", to.Addr(), time.Since(start).Round(time.Millisecond))
	for _, m := range clusterMasters(t, c) {
		if _, p := clientCounts(t, m); p > 1 {
			t.Errorf("%s: %d Pub/Sub connections after failover, want 1", m, p)
		}
	}
}

func portOf(t testing.TB, addr string) int {
	t.Helper()
	var p int
	if _, err := fmt.Sscanf(addr[strings.LastIndex(addr, ":")+1:], "%d", &p); err != nil {
		t.Fatal(err)
	}
	return p
}
