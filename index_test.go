package sessioncap

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestIndexAgainstAModel drives one user's live index through random
// sign-ins (some over a cap, so evicting), logouts, revokes, idle refreshes
// and expiries, across the sizes where it changes shape (one block, a
// large index of many blocks, back to small), and after every step checks
// it against a model of which sessions should be live: the index's shape
// (indexIDs), its sign-in order, the expiry it holds for each session, and
// that exactly the model's sessions validate.
func TestIndexAgainstAModel(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		const idle = time.Hour
		cap := 150
		e := b.engine(t, Config{IdleTimeout: idle, TouchInterval: time.Minute, AbsoluteTimeout: 4 * time.Hour,
			Limiter: LimitFunc(func(context.Context, string) (int, error) { return cap, nil })})
		rng := rand.New(rand.NewPCG(1, uint64(len(b.name))))
		type live struct {
			token, id string
			last      time.Time // last refresh the engine wrote
			created   time.Time
		}
		var model []live // sign-in order
		var peak int
		var large, shrunk bool
		k := e.keysOf("model")
		check := func(step int, what string) {
			t.Helper()
			ids, exps, err := indexIDs(ctx, b.client, k)
			if err != nil {
				t.Fatalf("step %d (%s): %v", step, what, err)
			}
			if len(ids) != len(model) {
				t.Fatalf("step %d (%s): index holds %d sessions, model %d", step, what, len(ids), len(model))
			}
			for i, m := range model {
				sid, _ := parsePublicID(m.id)
				if ids[i] != string(sid[:]) {
					var got []string
					for _, id := range ids {
						got = append(got, publicID([sidLen]byte([]byte(id)))[:4])
					}
					var want []string
					for _, m := range model {
						want = append(want, m.id[:4])
					}
					t.Logf("index %v\nmodel %v cap %d", got, want, cap)
					t.Fatalf("step %d (%s): index position %d is not the model's session %s", step, what, i, m.id)
				}
				want := min(m.last.Add(idle).UnixMilli(), m.created.Add(4*time.Hour).UnixMilli())
				if exps[i] != want {
					t.Fatalf("step %d (%s): session %d expires at %d in the index, want %d", step, what, i, exps[i], want)
				}
			}
		}
		for step := 0; step < 1600; step++ {
			var what string
			n := len(model)
			// Grow to about 200, shrink to nothing, grow again: every
			// shape and both conversions, several times.
			grow := (step/400)%2 == 0
			r := rng.IntN(10)
			if !grow && r < 5 {
				r += 3 // shrinking: fewer sign-ins, more endings
			}
			switch {
			case r < 7 && grow, r < 2:
				what = "login"
				res := mustLogin(t, e, "model", Meta{UserAgent: "m"})
				model = append(model, live{res.Token, res.SessionID, b.clock.Now(), b.clock.Now()})
				if len(model) > cap {
					model = model[len(model)-cap:]
				}
				if step%97 == 0 {
					cap = 40 + rng.IntN(160)
				}
			case r < 7 && n > 0:
				what = "logout"
				i := rng.IntN(n)
				if err := e.Logout(ctx, model[i].token); err != nil {
					t.Fatalf("step %d: Logout: %v", step, err)
				}
				model = slices.Delete(model, i, i+1)
			case r < 8 && n > 0:
				what = "revoke"
				i := rng.IntN(n)
				if err := e.Revoke(ctx, "model", model[i].id); err != nil {
					t.Fatalf("step %d: Revoke: %v", step, err)
				}
				model = slices.Delete(model, i, i+1)
			case r < 9 && n > 0:
				what = "refresh"
				i := rng.IntN(n)
				s, err := e.Validate(ctx, model[i].token)
				if err != nil {
					t.Fatalf("step %d: Validate: %v", step, err)
				}
				model[i].last = s.LastSeenAt
			default:
				what = "time passes"
				b.clock.Add(time.Duration(rng.IntN(90)) * time.Second)
				// The engine learns of expiries at its next call.
				now := b.clock.Now()
				model = slices.DeleteFunc(model, func(m live) bool {
					return min(m.last.Add(idle).UnixMilli(), m.created.Add(4*time.Hour).UnixMilli()) <= now.UnixMilli()
				})
				if _, err := e.Sessions(ctx, "model"); err != nil {
					t.Fatal(err)
				}
			}
			check(step, what)
			peak = max(peak, len(model))
			if len(model) > smallMax {
				large = true
			}
			if large && len(model) <= smallMin {
				shrunk = true
			}
		}
		// The walk must have crossed every shape, or it proved less.
		if peak <= 2*blockMax || !shrunk {
			t.Fatalf("the walk peaked at %d sessions (shrunk back to small: %v); it must pass %d and come back", peak, shrunk, 2*blockMax)
		}
		// Every session the model holds validates; every other is refused.
		for _, m := range model {
			if _, err := e.Validate(ctx, m.token); err != nil {
				t.Fatalf("a live session of the model: %v", err)
			}
		}
		if n, err := e.LogoutAll(ctx, "model"); err != nil || n != len(model) {
			t.Fatalf("LogoutAll: %d, %v, want %d", n, err, len(model))
		}
		if f, _ := b.client.HKeys(ctx, k.data).Result(); slices.ContainsFunc(f, func(s string) bool {
			return s == "j" || s == "k" || (len(s) == 1+idLen && s[0] == blockPrefix[0])
		}) {
			t.Fatalf("index fields left after LogoutAll: %q", f)
		}
		if _, err := e.Validate(ctx, "x"); !errors.Is(err, ErrInvalidToken) {
			t.Fatal(err)
		}
	})
}
