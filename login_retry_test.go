package sessioncap

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap/internal/redistest"
)

// lostReply is a go-redis hook that lets the next script call run on the
// server and then reports it failed, as a deadline passing after the
// script ran would.
type lostReply struct {
	redistest.PassHook
	armed atomic.Bool
}

func (h *lostReply) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err == nil && h.armed.CompareAndSwap(true, false) {
			return context.DeadlineExceeded
		}
		return err
	}
}

// TestLoginRetryWithToken: a Login reported as failed after its script ran
// leaves a session nobody holds a token for, which has already evicted a
// device. With Meta.Token from NewToken, calling Login again finds that
// session: the caller gets its token, and nothing more is evicted.
func TestLoginRetryWithToken(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		lost := &lostReply{}
		b.client.AddHook(lost)
		e := b.engine(t, Config{MaxSessions: 2})
		first := mustLogin(t, e, "retry", Meta{UserAgent: "first"})
		second := mustLogin(t, e, "retry", Meta{UserAgent: "second"})

		tok, err := e.NewToken("retry")
		if err != nil {
			t.Fatal(err)
		}
		meta := Meta{UserAgent: "third", Token: tok}
		lost.armed.Store(true)
		if _, err := e.Login(ctx, "retry", meta); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Login with a lost reply: %v, want ErrUnavailable", err)
		}
		res, err := e.Login(ctx, "retry", meta)
		if err != nil {
			t.Fatalf("retried Login: %v", err)
		}
		if res.Token != tok || len(res.Evicted) != 0 {
			t.Fatalf("retried Login: token %q evicted %v, want the prepared token and no evictions", res.Token, res.Evicted)
		}
		if _, err := e.Validate(ctx, tok); err != nil {
			t.Fatalf("the prepared token: %v", err)
		}
		if _, err := e.Validate(ctx, first.Token); !errors.Is(err, ErrEvicted) {
			t.Fatalf("the first session: %v, want evicted by the first attempt", err)
		}
		validOK(t, e, second.Token)
		if n := liveCount(t, e, "retry"); n != 2 {
			t.Fatalf("%d live sessions after a retried login, want 2", n)
		}

		// A token drawn for another user is refused before any Redis call.
		other, _ := e.NewToken("someone-else")
		b.count.reset()
		if _, err := e.Login(ctx, "retry", Meta{Token: other}); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("Login with another user's token: %v, want ErrInvalidToken", err)
		}
		if _, err := e.Login(ctx, "retry", Meta{Token: "not a token"}); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("Login with a malformed token: %v, want ErrInvalidToken", err)
		}
		if n := b.count.cmds.Load(); n != 0 {
			t.Fatalf("refused logins sent %d commands", n)
		}
	})
}

// TestLimiterFailureIsASentinel: a failing Limiter matches ErrLimiter and
// its own error, and no session is created.
func TestLimiterFailureIsASentinel(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		boom := errors.New("plans database down")
		e := b.engine(t, Config{Limiter: LimitFunc(func(context.Context, string) (int, error) { return 0, boom })})
		_, err := e.Login(context.Background(), "limited", Meta{})
		if !errors.Is(err, ErrLimiter) || !errors.Is(err, boom) {
			t.Fatalf("Login with a failing Limiter: %v, want ErrLimiter wrapping the cause", err)
		}
		if n := liveCount(t, e, "limited"); n != 0 {
			t.Fatalf("%d sessions after a failed Login", n)
		}
	})
}
