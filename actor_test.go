package sessioncap

import (
	"context"
	"errors"
	"testing"
	"time"
)

const (
	firefoxWindows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0"
	safariIPhone   = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
	chromeLinux    = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)

// ending validates tok and returns how its session ended, failing unless
// the error is an ending of the wanted reason.
func ending(t *testing.T, e *Engine, tok string, want Reason) Ending {
	t.Helper()
	_, err := e.Validate(context.Background(), tok)
	var ev *EvictedError
	var rv *RevokedError
	var got Ending
	switch {
	case errors.As(err, &ev):
		got = ev.Ending
	case errors.As(err, &rv):
		got = rv.Ending
	default:
		t.Fatalf("Validate of an ended token: %v, want an ending (%s)", err, want)
	}
	if got.Reason != want {
		t.Fatalf("ended with reason %q, want %q", got.Reason, want)
	}
	return got
}

// byDevice requires that an ending names the acting sign-in.
func byDevice(t *testing.T, got Ending, actor *LoginResult, ip, ua string) {
	t.Helper()
	if got.By.SessionID != actor.SessionID || got.By.IP != ip || got.By.UserAgent != ua {
		t.Fatalf("ending names %+v, want session %s from %s, %s", got.By, actor.SessionID, ip, ua)
	}
}

// TestEveryEndingSaysWhyAndWho walks every way a session can end on
// purpose and requires the ended token's Validate, the user's history and
// the live event to carry the reason and who acted: the acting device
// (ID, IP, user agent) where one acted, the administrator's name where one
// did.
func TestEveryEndingSaysWhyAndWho(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		laptop := Meta{IP: "203.0.113.7", UserAgent: firefoxWindows}
		phone := Meta{IP: "198.51.100.2", UserAgent: safariIPhone}
		desk := Meta{IP: "192.0.2.9", UserAgent: chromeLinux}

		t.Run("eviction", func(t *testing.T) {
			e := b.engine(t, Config{MaxSessions: 1, HistoryLimit: 10})
			a := mustLogin(t, e, "evict", laptop)
			p := mustLogin(t, e, "evict", phone)
			byDevice(t, ending(t, e, a.Token, ReasonEvicted), p, phone.IP, phone.UserAgent)
			if len(p.EvictedDevices) != 1 || p.EvictedDevices[0] != (Device{a.SessionID, laptop.IP, laptop.UserAgent}) {
				t.Fatalf("the evicting sign-in is told it ended %+v", p.EvictedDevices)
			}
			if p.EvictedDevices[0].Name() != "Firefox on Windows" {
				t.Fatalf("evicted device named %q", p.EvictedDevices[0].Name())
			}
			hist, err := e.History(ctx, "evict", 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			if hist[0].Type != ReasonEvicted || hist[0].Actor != (Device{p.SessionID, phone.IP, phone.UserAgent}) {
				t.Fatalf("history of the eviction: %+v", hist[0])
			}
		})

		t.Run("reject-new replacement", func(t *testing.T) {
			e := b.engine(t, Config{MaxSessions: 1, Overflow: RejectNew})
			a := mustLogin(t, e, "replace", laptop)
			var full *LimitError
			if _, err := e.Login(ctx, "replace", phone); !errors.As(err, &full) {
				t.Fatalf("Login at a full cap: %v", err)
			}
			m := phone
			m.Replace = full.Sessions[0].ID
			p := mustLogin(t, e, "replace", m)
			got := ending(t, e, a.Token, ReasonReplaced)
			byDevice(t, got, p, phone.IP, phone.UserAgent)
			if _, err := e.Validate(ctx, a.Token); !errors.Is(err, ErrEvicted) {
				t.Fatalf("a replaced session: %v, want it to match ErrEvicted", err)
			}
			if len(p.Evicted) != 1 || p.Evicted[0] != a.SessionID {
				t.Fatalf("replacing sign-in reports %v", p.Evicted)
			}
			// A Replace naming a session that is gone changes nothing: the
			// cap is full again and the sign-in is refused.
			m.Replace = a.SessionID
			if _, err := e.Login(ctx, "replace", m); !errors.As(err, &full) {
				t.Fatalf("Login replacing an ended session at a full cap: %v", err)
			}
			validOK(t, e, p.Token)
		})

		t.Run("this wasn't me", func(t *testing.T) {
			e := b.engine(t, Config{MaxSessions: 3, HistoryLimit: 10, Events: EventsPubSub})
			a := mustLogin(t, e, "security", laptop)
			d := mustLogin(t, e, "security", desk)
			sub, err := e.Subscribe(ctx, "security")
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			m := phone
			m.SignOutOthers = ReasonSecurity
			p := mustLogin(t, e, "security", m)
			for _, tok := range []string{a.Token, d.Token} {
				byDevice(t, ending(t, e, tok, ReasonSecurity), p, phone.IP, phone.UserAgent)
			}
			if len(p.Evicted) != 2 {
				t.Fatalf("sign-in reports %v ended, want both others", p.Evicted)
			}
			validOK(t, e, p.Token)
			deadline := time.After(5 * time.Second)
			for seen := 0; seen < 2; {
				select {
				case ev := <-sub.C():
					if ev.Type == EventLogin {
						continue
					}
					if ev.Type != ReasonSecurity || ev.Actor.SessionID != p.SessionID || ev.Actor.UserAgent != phone.UserAgent {
						t.Fatalf("live event %+v", ev)
					}
					seen++
				case <-deadline:
					t.Fatalf("saw %d of 2 security events", seen)
				}
			}
		})

		t.Run("revoked from another device", func(t *testing.T) {
			e := b.engine(t, Config{MaxSessions: 2, HistoryLimit: 10})
			a := mustLogin(t, e, "revoke", laptop)
			p := mustLogin(t, e, "revoke", phone)
			if err := e.RevokeWith(ctx, "revoke", a.SessionID, EndOptions{By: Actor{Session: p.Session}}); err != nil {
				t.Fatal(err)
			}
			byDevice(t, ending(t, e, a.Token, ReasonRevoked), p, phone.IP, phone.UserAgent)
			// A retry after a lost reply succeeds again and changes nothing.
			if err := e.RevokeWith(ctx, "revoke", a.SessionID, EndOptions{By: Actor{Session: p.Session}}); err != nil {
				t.Fatalf("retried RevokeWith: %v", err)
			}
			hist, _ := e.History(ctx, "revoke", 0, 1)
			if hist[0].Type != ReasonRevoked || hist[0].Actor.IP != phone.IP {
				t.Fatalf("history of the revocation: %+v", hist[0])
			}
			// Plain Revoke still names nobody.
			d := mustLogin(t, e, "revoke", desk)
			if err := e.Revoke(ctx, "revoke", p.SessionID); err != nil {
				t.Fatal(err)
			}
			if got := ending(t, e, p.Token, ReasonRevoked); got.By != (Device{}) || got.Admin != "" {
				t.Fatalf("plain Revoke names %+v / %q", got.By, got.Admin)
			}
			validOK(t, e, d.Token)
		})

		t.Run("admin", func(t *testing.T) {
			e := b.engine(t, Config{MaxSessions: 2, HistoryLimit: 10})
			a := mustLogin(t, e, "admin", laptop)
			n, err := e.LogoutAllWith(ctx, EndOptions{By: Actor{Admin: "support: jane"}}, "admin")
			if err != nil || n != 1 {
				t.Fatalf("LogoutAllWith: %d, %v", n, err)
			}
			got := ending(t, e, a.Token, ReasonAdmin)
			if got.Admin != "support: jane" || got.By != (Device{}) || got.UserID != "admin" {
				t.Fatalf("admin ending: %+v", got)
			}
			hist, _ := e.History(ctx, "admin", 0, 1)
			if hist[0].Admin != "support: jane" || hist[0].Actor != (Device{}) {
				t.Fatalf("history of the admin logout: %+v", hist[0])
			}
		})

		t.Run("password change", func(t *testing.T) {
			e := b.engine(t, Config{MaxSessions: 3})
			a := mustLogin(t, e, "password", laptop)
			p := mustLogin(t, e, "password", phone)
			ended, err := e.LogoutOthersWith(ctx, p.Token, ReasonPasswordChange)
			if err != nil || len(ended) != 1 || ended[0] != a.SessionID {
				t.Fatalf("LogoutOthersWith: %v, %v", ended, err)
			}
			byDevice(t, ending(t, e, a.Token, ReasonPasswordChange), p, phone.IP, phone.UserAgent)
		})

		t.Run("logout-others and logout-everywhere", func(t *testing.T) {
			e := b.engine(t, Config{MaxSessions: 3, LogoutEverywhere: true})
			a := mustLogin(t, e, "others", laptop)
			p := mustLogin(t, e, "others", phone)
			d := mustLogin(t, e, "others", desk)
			if _, err := e.LogoutOthers(ctx, p.Token); err != nil {
				t.Fatal(err)
			}
			byDevice(t, ending(t, e, a.Token, ReasonLogoutOthers), p, phone.IP, phone.UserAgent)
			byDevice(t, ending(t, e, d.Token, ReasonLogoutOthers), p, phone.IP, phone.UserAgent)
			a = mustLogin(t, e, "others", laptop)
			if err := e.Logout(ctx, p.Token); err != nil {
				t.Fatal(err)
			}
			byDevice(t, ending(t, e, a.Token, ReasonLogoutEverywhere), p, phone.IP, phone.UserAgent)
			ending(t, e, p.Token, ReasonLogout)
		})

		t.Run("refused", func(t *testing.T) {
			e := b.engine(t, Config{MaxSessions: 2})
			a := mustLogin(t, e, "refused", laptop)
			o := mustLogin(t, e, "someone-else", phone)
			b.count.reset()
			for name, err := range map[string]error{
				"RevokeWith an expiry":                       e.RevokeWith(ctx, "refused", a.SessionID, EndOptions{Reason: ReasonExpired}),
				"RevokeWith another user's session as actor": e.RevokeWith(ctx, "refused", a.SessionID, EndOptions{By: Actor{Session: o.Session}}),
				"RevokeWith a huge admin name":               e.RevokeWith(ctx, "refused", a.SessionID, EndOptions{By: Actor{Admin: string(make([]byte, 300))}}),
				"LogoutOthersWith an eviction":               func() error { _, err := e.LogoutOthersWith(ctx, a.Token, ReasonEvicted); return err }(),
				"LogoutAllWith a logout":                     func() error { _, err := e.LogoutAllWith(ctx, EndOptions{Reason: ReasonLogout}, "refused"); return err }(),
				"Login signing others out as admin": func() error {
					_, err := e.Login(ctx, "refused", Meta{SignOutOthers: ReasonAdmin})
					return err
				}(),
			} {
				if !errors.Is(err, ErrInvalidInput) {
					t.Errorf("%s: %v, want ErrInvalidInput", name, err)
				}
			}
			if _, err := e.Login(ctx, "refused", Meta{Replace: "not-an-id"}); !errors.Is(err, ErrInvalidSessionID) {
				t.Errorf("Login replacing a malformed ID: %v", err)
			}
			if n := b.count.cmds.Load(); n != 0 {
				t.Errorf("refused calls sent %d commands", n)
			}
			validOK(t, e, a.Token)
		})
	})
}
