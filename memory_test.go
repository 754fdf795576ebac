package sessioncap

import (
	"context"
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestMemoryPerUserIsBounded signs one cap-1 account in 20,000 times, with
// history kept (HistoryLimit 50) and without, on a real redis-server, and
// requires what that user holds (MEMORY USAGE of its keys) to stay within a
// few hundred KB: tombstones are capped, history is trimmed.
func TestMemoryPerUserIsBounded(t *testing.T) {
	needRedisServer(t, "memory per user")
	if testing.Short() {
		t.Skip("-short: 40,000 sign-ins take a few seconds")
	}
	b := topologies[1].setup(t)
	b.clock, b.prefix = newClock(), newPrefix()
	t.Cleanup(func() { b.client.Close() })
	ctx := context.Background()
	for _, hist := range []int{0, 50} {
		e := b.engine(t, Config{MaxSessions: 1, HistoryLimit: hist})
		user := "heavy-user"
		if hist > 0 {
			user = "heavy-user-with-history"
		}
		ua := "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
		for i := 0; i < 20000; i++ {
			mustLogin(t, e, user, Meta{IP: "203.0.113.77", UserAgent: ua, Values: map[string]string{"cart": "0123456789abcdef0123456789abcdef"}})
		}
		k := e.keysOf(user)
		var total int64
		for _, key := range []string{k.data, k.hist} {
			n, err := b.client.MemoryUsage(ctx, key).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				t.Fatal(err)
			}
			total += n
		}
		t.Logf("HistoryLimit %d: one cap-1 user after 20,000 sign-ins holds %d bytes", hist, total)
		if total > 300<<10 {
			t.Fatalf("HistoryLimit %d: %d bytes for one user, want at most 300 KB", hist, total)
		}
	}
}

// TestMaxTombstonesIsConfigurable: a user keeps at most MaxTombstones
// tombstones; older endings read as expired.
func TestMaxTombstonesIsConfigurable(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		e := b.engine(t, Config{MaxSessions: 1, MaxTombstones: 3})
		var all []*LoginResult
		for i := 0; i < 10; i++ {
			all = append(all, mustLogin(t, e, "k3", Meta{}))
		}
		for i, r := range all[:9] {
			_, err := e.Validate(context.Background(), r.Token)
			want := ErrExpired
			if i >= 6 {
				want = ErrEvicted
			}
			if !errors.Is(err, want) {
				t.Fatalf("session %d of 10: %v, want %v (3 tombstones kept)", i, err, want)
			}
		}
	})
}
