package sessioncap

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// liveInRedis counts a user's live sessions by reading Redis directly, not
// through the engine: index members, and records of kind 'L'.
func liveInRedis(t *testing.T, b *backend, e *Engine, user string) (index, records int) {
	t.Helper()
	k := e.keysOf(user)
	ids, _, err := indexIDs(ctx, b.client, k)
	if err != nil {
		t.Fatal(err)
	}
	n := len(ids)
	all, err := hashRecords(ctx, b.client, k)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		if len(r) > 0 && r[0] == kindLive {
			records++
		}
	}
	return n, records
}

func TestConcurrentLoginsNeverExceedTheCap(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		for _, tc := range []struct {
			cap      int
			overflow Overflow
		}{{1, EvictOldest}, {3, EvictOldest}, {1, RejectNew}, {3, RejectNew}} {
			t.Run(fmt.Sprintf("cap=%d/%s", tc.cap, tc.overflow), func(t *testing.T) {
				e := b.engine(t, Config{MaxSessions: tc.cap, Overflow: tc.overflow,
					KeyPrefix: fmt.Sprintf("%s-%d-%s", b.prefix, tc.cap, tc.overflow)})
				const n = 500
				var ok, rejected atomic.Int64
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := 0; i < n; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						_, err := e.Login(ctx, "alice", Meta{UserAgent: "racer"})
						switch {
						case err == nil:
							ok.Add(1)
						case errors.Is(err, ErrLimitReached):
							rejected.Add(1)
						default:
							t.Errorf("Login: %v", err)
						}
					}()
				}
				close(start)
				wg.Wait()
				index, records := liveInRedis(t, b, e, "alice")
				if index != tc.cap || records != tc.cap {
					t.Fatalf("%d concurrent logins left %d index members and %d live records, want exactly %d",
						n, index, records, tc.cap)
				}
				if tc.overflow == RejectNew && (ok.Load() != int64(tc.cap) || rejected.Load() != n-int64(tc.cap)) {
					t.Fatalf("RejectNew: %d accepted, %d rejected; want %d and %d", ok.Load(), rejected.Load(), tc.cap, n-tc.cap)
				}
				t.Logf("%d logins: %d accepted, %d rejected, %d live", n, ok.Load(), rejected.Load(), index)
			})
		}
	})
}

// A Save that loses the race with an eviction must not bring the evicted
// session back: Save checks the record is live inside the same script.
func TestSaveRacingEvictionNeverResurrects(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		e := b.engine(t, Config{MaxSessions: 1})
		rounds := 200
		var savedBeforeEviction int
		for i := 0; i < rounds; i++ {
			user := fmt.Sprint("u", i)
			old := mustLogin(t, e, user, Meta{})
			s := validOK(t, e, old.Token)
			var wg sync.WaitGroup
			var saveErr error
			wg.Add(2)
			go func() {
				defer wg.Done()
				s.Values["cart"] = "full"
				saveErr = e.Save(ctx, s)
			}()
			go func() {
				defer wg.Done()
				mustLogin(t, e, user, Meta{})
			}()
			wg.Wait()
			if saveErr == nil {
				savedBeforeEviction++
			} else if !errors.Is(saveErr, ErrEvicted) {
				t.Fatalf("Save: %v", saveErr)
			}
			if _, err := e.Validate(ctx, old.Token); !errors.Is(err, ErrEvicted) {
				t.Fatalf("round %d: evicted session after a racing Save: %v", i, err)
			}
			if index, records := liveInRedis(t, b, e, user); index != 1 || records != 1 {
				t.Fatalf("round %d: %d index members, %d live records", i, index, records)
			}
		}
		t.Logf("%d of %d saves won the race, the rest were refused; none resurrected", savedBeforeEviction, rounds)
	})
}
