package sessioncap

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestBadInputEveryMethod sends hostile strings through every public Engine
// method, as a token, a user ID and a session ID, and requires the exact
// error for each, with no Redis command sent when the input is rejected.
// Strings that are legal user IDs (braces, NUL, invalid UTF-8, glob
// characters, newlines) must be accepted and stay in their own hash slot:
// the key layout hashes the user ID, so none of them can break a key.
func TestBadInputEveryMethod(t *testing.T) {
	t.Parallel()
	inputs := map[string]string{
		"empty":        "",
		"huge":         strings.Repeat("x", 1<<20),
		"NUL":          "a\x00b",
		"invalid UTF8": "\xff\xfe\xc3",
		"braces":       "{user}",
		"open brace":   "{",
		"reversed":     "}{",
		"glob star":    "*",
		"glob query":   "?",
		"glob class":   "[a-z]",
		"newline":      "a\nb",
		"CRLF":         "\r\n",
	}
	backends(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		e := b.engine(t, Config{MaxSessions: 3, HistoryLimit: 5, Events: EventsPubSub})
		good := mustLogin(t, e, "bad-input-owner", Meta{})
		const goodUUID = "0b5a4a4e-5d2c-4e0b-9a8e-7d1f3a2b1c0d"

		type check struct {
			method string
			call   func() error
			want   error // nil: the input is legal and must be accepted
		}
		for name, in := range inputs {
			// The same characters inside a token of the right length.
			asToken := (good.Token[:40] + in + good.Token[40:])[:tokenLen]
			userWant := error(nil)
			if in == "" || len(in) > maxUserIDLen {
				userWant = ErrInvalidUserID
			}
			revokeWant := ErrNotFound
			if userWant != nil {
				revokeWant = userWant
			}
			var checks []check
			tokens := []string{in}
			if asToken != good.Token {
				tokens = append(tokens, asToken)
			}
			for _, tok := range tokens {
				checks = append(checks,
					check{"Validate", func() error { _, err := e.Validate(ctx, tok); return err }, ErrInvalidToken},
					check{"Logout", func() error { return e.Logout(ctx, tok) }, ErrInvalidToken},
					check{"LogoutOthers", func() error { _, err := e.LogoutOthers(ctx, tok); return err }, ErrInvalidToken},
					check{"Rotate", func() error { _, err := e.Rotate(ctx, tok); return err }, ErrInvalidToken},
					check{"Update", func() error {
						_, err := e.Update(ctx, tok, func(map[string]string) error {
							t.Errorf("Update called fn for a bad token")
							return nil
						})
						return err
					}, ErrInvalidToken},
				)
			}
			checks = append(checks,
				check{"Login", func() error { _, err := e.Login(ctx, in, Meta{IP: in, UserAgent: in}); return err }, userWant},
				check{"Sessions", func() error { _, err := e.Sessions(ctx, in); return err }, userWant},
				check{"History", func() error { _, err := e.History(ctx, in, 0, 10); return err }, userWant},
				check{"LogoutAll", func() error { _, err := e.LogoutAll(ctx, in); return err }, userWant},
				check{"LogoutAll mixed", func() error { _, err := e.LogoutAll(ctx, "fine-user", in); return err }, userWant},
				check{"Revoke user", func() error { return e.Revoke(ctx, in, goodUUID) }, revokeWant},
				check{"Revoke session ID", func() error { return e.Revoke(ctx, "bad-input-owner", in) }, ErrInvalidSessionID},
				check{"Revoke braced UUID", func() error { return e.Revoke(ctx, "bad-input-owner", "{"+goodUUID+"}") }, ErrInvalidSessionID},
				check{"Subscribe", func() error {
					s, err := e.Subscribe(ctx, in)
					if s != nil {
						s.Close()
					}
					return err
				}, userWant},
			)
			for _, c := range checks {
				b.count.reset()
				err := call(c.call)
				sent := b.count.cmds.Load()
				switch {
				case c.want == nil && err != nil:
					t.Errorf("%s(%s): %v, want it accepted", c.method, name, err)
				case c.want != nil && !errors.Is(err, c.want):
					t.Errorf("%s(%s): %v, want %v", c.method, name, err, c.want)
				case c.want != nil && c.want != ErrNotFound && sent != 0:
					t.Errorf("%s(%s): rejected, but %d Redis commands were sent", c.method, name, sent)
				case (c.want == nil || c.want == ErrNotFound) && sent == 0 && c.method != "Subscribe":
					t.Errorf("%s(%s): accepted without a Redis command: the counter is blind", c.method, name)
				}
			}
		}

		// Inputs that are not strings.
		b.count.reset()
		bigValues := map[string]string{"v": strings.Repeat("v", maxValuesLen)}
		for _, c := range []check{
			{"Login huge values", func() error { _, err := e.Login(ctx, "u", Meta{Values: bigValues}); return err }, ErrInvalidInput},
			{"Save nil", func() error { return e.Save(ctx, nil) }, ErrInvalidInput},
			{"Save foreign", func() error { return e.Save(ctx, &Session{ID: goodUUID, UserID: "u"}) }, ErrInvalidInput},
			{"History offset", func() error { _, err := e.History(ctx, "u", -1, 10); return err }, ErrInvalidInput},
			{"History limit 0", func() error { _, err := e.History(ctx, "u", 0, 0); return err }, ErrInvalidInput},
			{"History limit huge", func() error { _, err := e.History(ctx, "u", 0, 10001); return err }, ErrInvalidInput},
			{"Subscribe nobody", func() error { _, err := e.Subscribe(ctx); return err }, ErrInvalidUserID},
			{"LogoutAll nobody", func() error { n, err := e.LogoutAll(ctx); _ = n; return err }, nil},
		} {
			err := call(c.call)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("%s: %v, want %v", c.method, err, c.want)
			}
		}
		if n := b.count.cmds.Load(); n != 0 {
			t.Errorf("%d Redis commands sent for rejected non-string input", n)
		}
		// Session values may hold any bytes and come back unchanged.
		vals := map[string]string{}
		for name, in := range inputs {
			if len(in) < 1000 {
				vals[in] = name
			}
		}
		res, err := e.Login(ctx, "values-owner", Meta{Values: vals})
		if err != nil {
			t.Fatal(err)
		}
		s, err := e.Validate(ctx, res.Token)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range vals {
			if s.Values[k] != v {
				t.Errorf("value under %q came back as %q, want %q", k, s.Values[k], v)
			}
		}
	})
}
