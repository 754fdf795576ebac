package sessioncap

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap/internal/redistest"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of LogoutAll.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLogsNeverHoldTokensOrSecrets(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		var buf syncBuffer
		logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		e := b.engine(t, Config{MaxSessions: 1, Logger: logger})
		r1 := mustLogin(t, e, "alice", Meta{UserAgent: "laptop"})
		r2 := mustLogin(t, e, "alice", Meta{UserAgent: "phone"})
		rot, err := e.Rotate(ctx, r2.Token)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = e.Validate(ctx, r1.Token)
		_, _ = e.LogoutOthers(ctx, rot)
		_ = e.Logout(ctx, rot)
		mustLogin(t, e, "bob", Meta{})
		_, _ = e.LogoutAll(ctx, "bob")
		// And a failing call, whose error text is logged.
		down, _ := New(redis.NewClient(&redis.Options{Addr: deadAddr(t), MaxRetries: -1}), Config{Logger: logger})
		_, _ = down.Validate(ctx, rot)

		out := buf.String()
		for _, want := range []string{"sessioncap login", r1.SessionID, "sessioncap sessions ended", "sessioncap call failed"} {
			if !strings.Contains(out, want) {
				t.Fatalf("log lacks %q; the scan below would prove nothing:\n%s", want, out)
			}
		}
		for _, tok := range []string{r1.Token, r2.Token, rot} {
			p, _ := parseToken(tok)
			for _, needle := range []string{tok, tok[30:60], base64.RawURLEncoding.EncodeToString(p.secret[:12]),
				hex.EncodeToString(p.secret[:12]), base64.StdEncoding.EncodeToString(p.secret[:12])} {
				if strings.Contains(out, needle) {
					t.Fatalf("log holds a token or secret piece %q", needle)
				}
			}
		}
	})
}

func TestStatsCountOutcomes(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		stats := &Stats{}
		e := b.engine(t, Config{MaxSessions: 1, Observer: stats})
		r1 := mustLogin(t, e, "alice", Meta{})
		r2 := mustLogin(t, e, "alice", Meta{}) // evicts r1
		validOK(t, e, r2.Token)
		_, _ = e.Validate(ctx, r1.Token)         // evicted
		_, _ = e.Validate(ctx, "garbage")        // invalid
		_, _ = e.Validate(ctx, token{}.String()) // expired (unknown)
		_ = e.Logout(ctx, r2.Token)
		_, _ = e.Validate(ctx, r2.Token) // revoked
		rej := b.engine(t, Config{MaxSessions: 1, Overflow: RejectNew, Observer: stats})
		mustLogin(t, rej, "bob", Meta{})
		_, _ = rej.Login(ctx, "bob", Meta{})
		got := stats.Snapshot()
		want := StatsSnapshot{Logins: 3, Evictions: 1, Rejections: 1, Validations: map[Outcome]uint64{
			OutcomeOK: 1, OutcomeEvicted: 1, OutcomeInvalid: 1, OutcomeExpired: 1, OutcomeRevoked: 1}}
		if got.Logins != want.Logins || got.Evictions != want.Evictions || got.Rejections != want.Rejections {
			t.Fatalf("stats %+v, want %+v", got, want)
		}
		for o, n := range want.Validations {
			if got.Validations[o] != n {
				t.Fatalf("validations[%s] = %d, want %d (all: %v)", o, got.Validations[o], n, got.Validations)
			}
		}
	})
}

// The Tracer wraps every operation, and the Redis calls run in the context
// it returns, so an instrumented client's spans nest under it.
func TestTracerWrapsEachOperation(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		type spanKey struct{}
		var mu sync.Mutex
		var spans []string
		var ended []error
		nested := &ctxRecorder{key: spanKey{}}
		b.client.AddHook(nested)
		e := b.engine(t, Config{MaxSessions: 1, Tracer: func(ctx context.Context, op Op) (context.Context, func(error)) {
			mu.Lock()
			spans = append(spans, "sessioncap."+string(op))
			mu.Unlock()
			return context.WithValue(ctx, spanKey{}, op), func(err error) {
				mu.Lock()
				ended = append(ended, err)
				mu.Unlock()
			}
		}})
		r := mustLogin(t, e, "alice", Meta{})
		validOK(t, e, r.Token)
		_ = e.Logout(ctx, r.Token)
		_, err := e.Validate(ctx, r.Token)
		want := []string{"sessioncap.login", "sessioncap.validate", "sessioncap.logout", "sessioncap.validate"}
		if strings.Join(spans, ",") != strings.Join(want, ",") {
			t.Fatalf("spans %v, want %v", spans, want)
		}
		if len(ended) != 4 || ended[0] != nil || !errors.Is(ended[3], err) {
			t.Fatalf("span ends %v", ended)
		}
		if nested.outside.Load() != 0 || nested.inside.Load() == 0 {
			t.Fatalf("%d Redis commands ran outside a span, %d inside", nested.outside.Load(), nested.inside.Load())
		}
	})
}

// ctxRecorder counts commands issued with and without a span in the context.
type ctxRecorder struct {
	redistest.PassHook
	key             any
	inside, outside atomic.Int64
}

func (r *ctxRecorder) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if ctx.Value(r.key) != nil {
			r.inside.Add(1)
		} else if n := cmd.Name(); isScriptCall(n) || n == "lrange" {
			r.outside.Add(1)
		}
		return next(ctx, cmd)
	}
}
