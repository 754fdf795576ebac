package httpsession_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sessioncap/sessioncap"
	"github.com/sessioncap/sessioncap/httpsession"
)

// signInAgain runs Manager.Login as userID on a request that carries
// token, and returns the result and the new cookie's token.
func signInAgain(t *testing.T, f *fixture, token, userID string) (*sessioncap.LoginResult, string) {
	t.Helper()
	var res *sessioncap.LoginResult
	h := f.m.Load(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if httpsession.FromContext(r.Context()) == nil {
			t.Error("the request's old session did not load")
		}
		var err error
		if res, err = f.m.Login(w, r, userID, nil); err != nil {
			t.Error(err)
		}
	}))
	req := withCookie(httptest.NewRequest("POST", "/login", nil), f.m.CookieName(), token)
	req.Header.Set("User-Agent", firefoxWindows)
	rec := do(h, req)
	c := rec.Result().Cookies()
	if res == nil || len(c) != 1 || c[0].Value != res.Token {
		t.Fatalf("%d %v %s", rec.Code, c, rec.Body)
	}
	return res, c[0].Value
}

// TestLoginAgainSameUserEndsOnlyThisDevice: signing in again on a device
// with a session, under LogoutEverywhere, replaces that session alone; the
// user's other devices stay signed in, and at a full RejectNew cap the
// sign-in still succeeds because the old session makes room.
func TestLoginAgainSameUserEndsOnlyThisDevice(t *testing.T) {
	for _, overflow := range []sessioncap.Overflow{sessioncap.EvictOldest, sessioncap.RejectNew} {
		t.Run(overflow.String(), func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, sessioncap.Config{MaxSessions: 2, Overflow: overflow, LogoutEverywhere: true}, httpsession.Options{})
			phone := f.login(t, "alice", "198.51.100.2")
			laptop := f.login(t, "alice", "203.0.113.7") // the cap is full
			res, tok := signInAgain(t, f, laptop.Token, "alice")

			if _, err := f.engine.Validate(ctx, phone.Token); err != nil {
				t.Fatalf("the other device was signed out: %v", err)
			}
			if s, err := f.engine.Validate(ctx, tok); err != nil || s.ID != res.SessionID || s.UserID != "alice" {
				t.Fatalf("new session: %+v %v", s, err)
			}
			var ev *sessioncap.EvictedError
			if _, err := f.engine.Validate(ctx, laptop.Token); !errors.As(err, &ev) || ev.Reason != sessioncap.ReasonReplaced || ev.By.SessionID != res.SessionID {
				t.Fatalf("old session of this device: %v", err)
			}
			if len(res.Evicted) != 0 || len(res.EvictedDevices) != 0 {
				t.Fatalf("the sign-in reports this device's own old session as ended: %v %v", res.Evicted, res.EvictedDevices)
			}
			if ss, err := f.engine.Sessions(ctx, "alice"); err != nil || len(ss) != 2 {
				t.Fatalf("sessions %d %v", len(ss), err)
			}
		})
	}
}

// TestLoginAgainOtherUserEndsOnlyThatSession: signing in as another user
// on a device with a session ends that session alone, as its own logout,
// even under LogoutEverywhere: the first user's other devices stay signed in.
func TestLoginAgainOtherUserEndsOnlyThatSession(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, sessioncap.Config{MaxSessions: 3, LogoutEverywhere: true}, httpsession.Options{})
	bobPhone := f.login(t, "bob", "198.51.100.2")
	bobLaptop := f.login(t, "bob", "203.0.113.7")
	alicePhone := f.login(t, "alice", "192.0.2.9")
	res, tok := signInAgain(t, f, bobLaptop.Token, "alice")

	if _, err := f.engine.Validate(ctx, bobPhone.Token); err != nil {
		t.Fatalf("bob's other device was signed out: %v", err)
	}
	if _, err := f.engine.Validate(ctx, alicePhone.Token); err != nil {
		t.Fatalf("alice's other device was signed out: %v", err)
	}
	if s, err := f.engine.Validate(ctx, tok); err != nil || s.UserID != "alice" || s.ID != res.SessionID {
		t.Fatalf("new session: %+v %v", s, err)
	}
	_, err := f.engine.Validate(ctx, bobLaptop.Token)
	var rv *sessioncap.RevokedError
	if !errors.As(err, &rv) || rv.Reason != sessioncap.ReasonLogout {
		t.Fatalf("bob's session on this device: %v", err)
	}
	if got := httpsession.Describe(err).Message; got != "This device was signed out at 2026-01-02T03:04:05Z." {
		t.Fatalf("message %q", got)
	}
	if len(res.Evicted) != 0 {
		t.Fatalf("evicted %v", res.Evicted)
	}
}
