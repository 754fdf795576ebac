package sessioncap

import (
	"context"
	"errors"
	"testing"
)

// TestSessionCeiling: no user holds more than SessionCeiling live sessions,
// Unlimited included; the refused sign-in changes nothing; a sign-in that
// replaces one of them still goes through; a cap above the ceiling is
// refused by New, and a Limiter's is held to the ceiling.
func TestSessionCeiling(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		limited := b.engine(t, Config{MaxSessions: Unlimited, SessionCeiling: 5, Limiter: LimitFunc(
			func(_ context.Context, u string) (int, error) {
				if u == "big-plan" {
					return 10, nil
				}
				return 0, nil
			})})
		for _, user := range []string{"unlimited", "big-plan"} {
			var first *LoginResult
			for i := 0; i < 5; i++ {
				r := mustLogin(t, limited, user, Meta{})
				if first == nil {
					first = r
				}
			}
			b.count.reset()
			if _, err := limited.Login(ctx, user, Meta{}); !errors.Is(err, ErrSessionCeiling) {
				t.Fatalf("%s: the sixth sign-in under a ceiling of 5: %v, want ErrSessionCeiling", user, err)
			}
			if n := liveCount(t, limited, user); n != 5 {
				t.Fatalf("%s: %d live sessions after a refused sign-in, want 5", user, n)
			}
			validOK(t, limited, first.Token)
			if r, err := limited.Login(ctx, user, Meta{Replace: first.SessionID}); err != nil || len(r.Evicted) != 1 {
				t.Fatalf("%s: replacing one at the ceiling: %v, %v", user, r, err)
			}
		}
		if _, err := New(b.client, Config{MaxSessions: 10, SessionCeiling: 5}); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("MaxSessions above SessionCeiling: %v, want ErrInvalidConfig", err)
		}
		if c := b.engine(t, Config{}).Config(); c.SessionCeiling != DefaultSessionCeiling {
			t.Fatalf("default SessionCeiling %d", c.SessionCeiling)
		}
	})
}
