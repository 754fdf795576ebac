package sessioncap

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap/internal/redistest"
)

// TestLossOfKeysFailsClosed deletes every combination of a user's keys (the
// data hash with its index inside, the history list) and requires that no
// session becomes valid that was not, that the user never holds more than
// the cap, and that every session that still validates can be ended by
// Logout, Revoke and LogoutAll.
func TestLossOfKeysFailsClosed(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		e := b.engine(t, Config{MaxSessions: 2, HistoryLimit: 10})
		for _, lose := range [][]string{nil, {"data"}, {"history"}, {"data", "history"}} {
			user := fmt.Sprintf("lose-%v", lose)
			a := mustLogin(t, e, user, Meta{})
			c := mustLogin(t, e, user, Meta{})
			k := e.keysOf(user)
			for _, which := range lose {
				key := map[string]string{"data": k.data, "history": k.hist}[which]
				if err := b.client.Del(ctx, key).Err(); err != nil {
					t.Fatal(err)
				}
			}
			tokens := []string{a.Token, c.Token}
			for i := 0; i < 3; i++ {
				tokens = append(tokens, mustLogin(t, e, user, Meta{}).Token)
				if n := validating(e, tokens); n > 2 {
					t.Fatalf("lost %v: %d sessions validate, cap 2", lose, n)
				}
			}
			// End every session that validates, each way once.
			for i, tok := range tokens {
				s, err := e.Validate(ctx, tok)
				if err != nil {
					continue
				}
				switch i % 3 {
				case 0:
					err = e.Logout(ctx, tok)
				case 1:
					err = e.Revoke(ctx, user, s.ID)
				default:
					_, err = e.LogoutAll(ctx, user)
				}
				if err != nil {
					t.Fatalf("lost %v: ending a session that validates: %v", lose, err)
				}
				if _, err := e.Validate(ctx, tok); err == nil {
					t.Fatalf("lost %v: a session still validates after it was ended", lose)
				}
			}
		}
	})
}

// validating counts the tokens that Validate accepts.
func validating(e *Engine, tokens []string) int {
	n := 0
	for _, tok := range tokens {
		if _, err := e.Validate(context.Background(), tok); err == nil {
			n++
		}
	}
	return n
}

// TestEvictionPoliciesFailClosed runs thousands of cap-1 users on a real
// redis-server whose maxmemory is too small for them, under each evicting
// policy, until Redis has evicted keys; then every user signs in again and
// every session that still validates is ended. No user may ever have more
// than one session that validates, and none may be left unendable.
func TestEvictionPoliciesFailClosed(t *testing.T) {
	needRedisServer(t, "key eviction under maxmemory")
	if testing.Short() {
		t.Skip("-short: the eviction-policy runs take several seconds each")
	}
	for _, policy := range []string{"allkeys-lru", "volatile-lru", "volatile-ttl"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rdb := ownRedis(t, "--maxmemory", "3mb", "--maxmemory-policy", policy, "--maxmemory-samples", "10")
			e, err := New(rdb, Config{MaxSessions: 1, HistoryLimit: 5, Now: newClock().Now})
			if err != nil {
				t.Fatal(err)
			}
			const users = 4000
			first := make([]string, users)
			for i := range first {
				res, err := e.Login(ctx, fmt.Sprint("u", i), Meta{UserAgent: "first", Values: map[string]string{"v": fmt.Sprint(i, "-", string(make([]byte, 200)))}})
				if err != nil {
					t.Fatal(err)
				}
				first[i] = res.Token
			}
			evicted := infoInt(t, rdb, "stats", "evicted_keys")
			if evicted == 0 {
				t.Fatalf("%s: no key was evicted; the test needs memory pressure", policy)
			}
			var above, unendable int
			for i := range first {
				u := fmt.Sprint("u", i)
				res, err := e.Login(ctx, u, Meta{UserAgent: "second"})
				if err != nil {
					t.Fatal(err)
				}
				toks := []string{first[i], res.Token}
				if validating(e, toks) > 1 {
					above++
				}
				for j, tok := range toks {
					s, err := e.Validate(ctx, tok)
					if err != nil {
						continue
					}
					if j == 0 {
						err = e.Revoke(ctx, u, s.ID)
					} else {
						err = e.Logout(ctx, tok)
					}
					// Redis may evict the user between the Validate and the
					// ending: then there is nothing left to end.
					if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrExpired) {
						t.Fatal(err)
					}
					if _, err := e.Validate(ctx, tok); err == nil {
						unendable++
					}
				}
			}
			t.Logf("%s: %d keys evicted during the fill; users above the cap: %d; sessions that could not be ended: %d",
				policy, evicted, above, unendable)
			if above != 0 || unendable != 0 {
				t.Fatalf("%s: %d users above the cap, %d sessions unendable", policy, above, unendable)
			}
		})
	}
}

// infoInt reads one integer field of an INFO section.
func infoInt(t *testing.T, rdb *redis.Client, section, field string) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), section).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in INFO %s", field, section)
	return 0
}

// ownRedis starts a redis-server of the test's own, with these arguments,
// for a test that changes what the whole server does (maxmemory, policy).
func ownRedis(t *testing.T, args ...string) *redis.Client {
	t.Helper()
	srv, err := redistest.Start(t.TempDir(), args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}
