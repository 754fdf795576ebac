package httpsession_test

import (
	"context"
	"encoding/json"
	"html"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sessioncap/sessioncap"
	"github.com/sessioncap/sessioncap/httpsession"
)

const (
	firefoxWindows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0"
	safariIPhone   = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
	chromeLinux    = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)

// endingErr builds the error Validate returns for an ending of reason r.
func endingErr(e sessioncap.Ending) error {
	if e.Reason == sessioncap.ReasonEvicted || e.Reason == sessioncap.ReasonReplaced {
		return &sessioncap.EvictedError{Ending: e}
	}
	return &sessioncap.RevokedError{Ending: e}
}

// checkSentence fails on the traces of a missing field: a preposition with
// nothing after it, doubled spaces, a raw user agent.
func checkSentence(t *testing.T, msg string) {
	t.Helper()
	for _, bad := range []string{"  ", " by at", " from at", " at .", " at :", "()", "( ", " ,", ",)", " on .", "by .",
		"Mozilla", "Unknown device", " on at"} {
		if strings.Contains(msg, bad) {
			t.Errorf("message %q contains %q", msg, bad)
		}
	}
	if !strings.HasSuffix(msg, ".") || strings.HasSuffix(msg, "..") {
		t.Errorf("message %q does not end in one full stop", msg)
	}
}

// TestDescribeEveryReason checks the sentence, the JSON and the HTML page
// for every reason, with and without an acting device and an admin name.
func TestDescribeEveryReason(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600)) // not UTC: Describe converts
	const T = "2026-01-02T02:04:05Z"
	phone := sessioncap.Device{SessionID: "0b6f0000-0000-4000-8000-000000000002", IP: "198.51.100.2", UserAgent: safariIPhone}
	const D = "Safari on iPhone (198.51.100.2)"
	const A = "support: jane"
	type actor int
	const (
		nobody actor = iota
		device
		admin
		both
	)
	tests := []struct {
		reason sessioncap.Reason
		by     actor
		want   string
	}{
		{sessioncap.ReasonEvicted, nobody, "You were signed out because your account signed in on another device at " + T + "."},
		{sessioncap.ReasonEvicted, device, "You were signed out because your account signed in on another device (Safari on iPhone, 198.51.100.2) at " + T + "."},
		{sessioncap.ReasonReplaced, nobody, "You were signed out because your account signed in on another device at " + T + " and that sign-in chose to sign this device out to stay within the account's device limit."},
		{sessioncap.ReasonReplaced, device, "You were signed out because your account signed in on another device (Safari on iPhone, 198.51.100.2) at " + T + " and that sign-in chose to sign this device out to stay within the account's device limit."},
		{sessioncap.ReasonLogout, nobody, "This device was signed out at " + T + "."},
		{sessioncap.ReasonLogout, device, "This device was signed out from " + D + " at " + T + "."},
		{sessioncap.ReasonLogout, admin, "This device was signed out by " + A + " at " + T + "."},
		{sessioncap.ReasonLogoutOthers, nobody, "This device was signed out at " + T + ": another of your devices chose to sign out all other devices."},
		{sessioncap.ReasonLogoutOthers, device, "This device was signed out from " + D + " at " + T + ": that device chose to sign out all other devices."},
		{sessioncap.ReasonLogoutOthers, admin, "This device was signed out by " + A + " at " + T + "."},
		{sessioncap.ReasonLogoutEverywhere, nobody, "This device was signed out at " + T + ": signing out on another of your devices signs out all of them."},
		{sessioncap.ReasonLogoutEverywhere, device, "This device was signed out from " + D + " at " + T + ": signing out on that device signs out all of the account's devices."},
		{sessioncap.ReasonAdmin, nobody, "This device was signed out by an administrator at " + T + "."},
		{sessioncap.ReasonAdmin, device, "This device was signed out from " + D + " at " + T + "."},
		{sessioncap.ReasonAdmin, admin, "This device was signed out by " + A + " at " + T + "."},
		{sessioncap.ReasonAdmin, both, "This device was signed out from " + D + " by " + A + " at " + T + "."},
		{sessioncap.ReasonRevoked, nobody, "This device was signed out at " + T + ": its session was revoked."},
		{sessioncap.ReasonRevoked, device, "This device was signed out from " + D + " at " + T + "."},
		{sessioncap.ReasonRevoked, admin, "This device was signed out by " + A + " at " + T + "."},
		{sessioncap.ReasonRevoked, both, "This device was signed out from " + D + " by " + A + " at " + T + "."},
		{sessioncap.ReasonSecurity, nobody, "This device was signed out at " + T + " as a security measure."},
		{sessioncap.ReasonSecurity, device, "This device was signed out at " + T + " as a security measure: someone using " + D + " reported a sign-in they did not recognise."},
		{sessioncap.ReasonSecurity, admin, "This device was signed out by " + A + " at " + T + " as a security measure."},
		{sessioncap.ReasonSecurity, both, "This device was signed out by " + A + " at " + T + " as a security measure: someone using " + D + " reported a sign-in they did not recognise."},
		{sessioncap.ReasonPasswordChange, nobody, "This device was signed out at " + T + " after the account's password was changed."},
		{sessioncap.ReasonPasswordChange, device, "This device was signed out at " + T + " after the account's password was changed on " + D + "."},
		{sessioncap.ReasonPasswordChange, admin, "This device was signed out at " + T + " after the account's password was changed by " + A + "."},
		{sessioncap.ReasonPasswordChange, both, "This device was signed out at " + T + " after the account's password was changed by " + A + " on " + D + "."},
		{sessioncap.ReasonExpired, nobody, "This device was signed out at " + T + " because its session expired."},
		{sessioncap.ReasonRotated, nobody, "This device was signed out at " + T + " because its session was renewed with a new key."},
		{"some-future-reason", nobody, "This device was signed out at " + T + "."},
		{"some-future-reason", both, "This device was signed out from " + D + " by " + A + " at " + T + "."},
	}
	for _, tc := range tests {
		t.Run(string(tc.reason)+"/"+[]string{"nobody", "device", "admin", "both"}[tc.by], func(t *testing.T) {
			e := sessioncap.Ending{UserID: "alice", SessionID: "0b6f0000-0000-4000-8000-000000000001", At: at, Reason: tc.reason}
			if tc.by == device || tc.by == both {
				e.By = phone
			}
			if tc.by == admin || tc.by == both {
				e.Admin = A
			}
			err := endingErr(e)
			f := httpsession.Describe(err)
			if f.Message != tc.want {
				t.Errorf("message\n got %q\nwant %q", f.Message, tc.want)
			}
			checkSentence(t, f.Message)

			// JSON: the old fields, and the actor in the same shape for
			// every ending.
			rec := httptest.NewRecorder()
			httpsession.DefaultErrorHandler(rec, httptest.NewRequest("GET", "/", nil), err)
			var got map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			evicted := tc.reason == sessioncap.ReasonEvicted || tc.reason == sessioncap.ReasonReplaced
			wantKind := map[bool]string{true: "evicted", false: "revoked"}[evicted]
			if rec.Code != 401 || got["error"] != wantKind || got["message"] != tc.want || got["reason"] != string(tc.reason) || got["at"] != T {
				t.Errorf("JSON %d %s", rec.Code, rec.Body)
			}
			wantBy := map[string]any{"session_id": phone.SessionID, "device": "Safari on iPhone", "ip": phone.IP, "user_agent": safariIPhone}
			checkDevice := func(field string, want bool) {
				t.Helper()
				d, ok := got[field].(map[string]any)
				if ok != want {
					t.Errorf("JSON %q present %v, want %v: %s", field, ok, want, rec.Body)
					return
				}
				for k, v := range wantBy {
					if ok && d[k] != v {
						t.Errorf("JSON %s.%s = %v, want %v", field, k, d[k], v)
					}
				}
			}
			checkDevice("by", e.By.SessionID != "")
			checkDevice("replaced_by", e.By.SessionID != "" && evicted)
			if a, _ := got["admin"].(string); a != e.Admin {
				t.Errorf("JSON admin %q, want %q", a, e.Admin)
			}

			// HTML: the same sentence, escaped.
			req := httptest.NewRequest("GET", "/", nil)
			req.Header.Set("Accept", "text/html")
			rec = httptest.NewRecorder()
			httpsession.DefaultErrorHandler(rec, req, err)
			if !strings.Contains(rec.Body.String(), "<p>"+html.EscapeString(tc.want)+"</p>") {
				t.Errorf("HTML page lacks the message:\n%s", rec.Body)
			}
		})
	}
}

// TestDescribeNamesNobodyForItsOwnLogout: a session ended by itself (as
// Manager.Login records another user's session it replaces) does not name
// itself as the acting device.
func TestDescribeNamesNobodyForItsOwnLogout(t *testing.T) {
	self := sessioncap.Device{SessionID: "0b6f0000-0000-4000-8000-000000000001", IP: "192.0.2.9", UserAgent: chromeLinux}
	f := httpsession.Describe(endingErr(sessioncap.Ending{SessionID: self.SessionID, Reason: sessioncap.ReasonLogout,
		At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), By: self}))
	if f.Message != "This device was signed out at 2026-01-02T03:04:05Z." {
		t.Fatalf("%q", f.Message)
	}
	if f.By == nil || f.By.Name != "Chrome on Linux" {
		t.Fatalf("JSON still carries the actor: %+v", f.By)
	}
}

// TestDescribeUnreadableDevice: an acting device with no user agent, no IP
// or hostile bytes still makes a whole sentence.
func TestDescribeUnreadableDevice(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, d := range []sessioncap.Device{
		{SessionID: "x"},
		{SessionID: "x", IP: "192.0.2.1"},
		{SessionID: "x", UserAgent: "\xff\xfe\x00\x1b[31m"},
		{SessionID: "x", IP: "\x00\n\xff", UserAgent: chromeLinux},
	} {
		for _, r := range []sessioncap.Reason{sessioncap.ReasonEvicted, sessioncap.ReasonRevoked, sessioncap.ReasonSecurity, sessioncap.ReasonLogoutOthers} {
			f := httpsession.Describe(endingErr(sessioncap.Ending{Reason: r, At: at, By: d}))
			checkSentence(t, f.Message)
			if !utf8.ValidString(f.Message) || strings.ContainsAny(f.Message, "\x00\n\x1b") {
				t.Errorf("%q", f.Message)
			}
			if f.At == nil || *f.At != at {
				t.Errorf("at %v", f.At)
			}
		}
	}
	// No time at all (an app's own Ending): no " at ".
	f := httpsession.Describe(endingErr(sessioncap.Ending{Reason: sessioncap.ReasonRevoked}))
	if f.At != nil || f.Message != "This device was signed out: its session was revoked." {
		t.Fatalf("%+v", f)
	}
}

// TestEndingsThroughMiddleware runs each way of ending a session on a real
// engine and reads the ended device's JSON: reason, time, acting device by
// name and admin.
func TestEndingsThroughMiddleware(t *testing.T) {
	ctx := context.Background()
	laptop := sessioncap.Meta{IP: "203.0.113.7", UserAgent: firefoxWindows}
	phone := sessioncap.Meta{IP: "198.51.100.2", UserAgent: safariIPhone}
	const T = "2026-01-02T03:04:05Z"
	tests := []struct {
		name   string
		cfg    sessioncap.Config
		end    func(t *testing.T, f *fixture, laptop *sessioncap.LoginResult) *sessioncap.LoginResult // returns the acting sign-in
		reason sessioncap.Reason
		admin  string
		want   string
	}{
		{"eviction", sessioncap.Config{MaxSessions: 1}, func(t *testing.T, f *fixture, _ *sessioncap.LoginResult) *sessioncap.LoginResult {
			return mustLogin(t, f, phone)
		}, sessioncap.ReasonEvicted, "", "You were signed out because your account signed in on another device (Safari on iPhone, 198.51.100.2) at " + T + "."},
		{"reject-new replacement", sessioncap.Config{MaxSessions: 1, Overflow: sessioncap.RejectNew}, func(t *testing.T, f *fixture, l *sessioncap.LoginResult) *sessioncap.LoginResult {
			m := phone
			m.Replace = l.SessionID
			return mustLogin(t, f, m)
		}, sessioncap.ReasonReplaced, "", "You were signed out because your account signed in on another device (Safari on iPhone, 198.51.100.2) at " + T + " and that sign-in chose to sign this device out to stay within the account's device limit."},
		{"sign out other devices", sessioncap.Config{MaxSessions: 3}, func(t *testing.T, f *fixture, _ *sessioncap.LoginResult) *sessioncap.LoginResult {
			p := mustLogin(t, f, phone)
			if _, err := f.engine.LogoutOthers(ctx, p.Token); err != nil {
				t.Fatal(err)
			}
			return p
		}, sessioncap.ReasonLogoutOthers, "", "This device was signed out from Safari on iPhone (198.51.100.2) at " + T + ": that device chose to sign out all other devices."},
		{"logout everywhere", sessioncap.Config{MaxSessions: 3, LogoutEverywhere: true}, func(t *testing.T, f *fixture, _ *sessioncap.LoginResult) *sessioncap.LoginResult {
			p := mustLogin(t, f, phone)
			if err := f.engine.Logout(ctx, p.Token); err != nil {
				t.Fatal(err)
			}
			return p
		}, sessioncap.ReasonLogoutEverywhere, "", "This device was signed out from Safari on iPhone (198.51.100.2) at " + T + ": signing out on that device signs out all of the account's devices."},
		{"revoked from the devices page", sessioncap.Config{MaxSessions: 3}, func(t *testing.T, f *fixture, l *sessioncap.LoginResult) *sessioncap.LoginResult {
			p := mustLogin(t, f, phone)
			if err := f.engine.RevokeWith(ctx, "alice", l.SessionID, sessioncap.EndOptions{By: sessioncap.Actor{Session: p.Session}}); err != nil {
				t.Fatal(err)
			}
			return p
		}, sessioncap.ReasonRevoked, "", "This device was signed out from Safari on iPhone (198.51.100.2) at " + T + "."},
		{"admin", sessioncap.Config{MaxSessions: 3}, func(t *testing.T, f *fixture, _ *sessioncap.LoginResult) *sessioncap.LoginResult {
			if _, err := f.engine.LogoutAllWith(ctx, sessioncap.EndOptions{By: sessioncap.Actor{Admin: "support: jane"}}, "alice"); err != nil {
				t.Fatal(err)
			}
			return nil
		}, sessioncap.ReasonAdmin, "support: jane", "This device was signed out by support: jane at " + T + "."},
		{"plain LogoutAll", sessioncap.Config{MaxSessions: 3}, func(t *testing.T, f *fixture, _ *sessioncap.LoginResult) *sessioncap.LoginResult {
			if _, err := f.engine.LogoutAll(ctx, "alice"); err != nil {
				t.Fatal(err)
			}
			return nil
		}, sessioncap.ReasonAdmin, "", "This device was signed out by an administrator at " + T + "."},
		{"this wasn't me", sessioncap.Config{MaxSessions: 3}, func(t *testing.T, f *fixture, _ *sessioncap.LoginResult) *sessioncap.LoginResult {
			p := mustLogin(t, f, phone)
			if _, err := f.engine.LogoutOthersWith(ctx, p.Token, sessioncap.ReasonSecurity); err != nil {
				t.Fatal(err)
			}
			return p
		}, sessioncap.ReasonSecurity, "", "This device was signed out at " + T + " as a security measure: someone using Safari on iPhone (198.51.100.2) reported a sign-in they did not recognise."},
		{"password change", sessioncap.Config{MaxSessions: 3}, func(t *testing.T, f *fixture, _ *sessioncap.LoginResult) *sessioncap.LoginResult {
			m := phone
			m.SignOutOthers = sessioncap.ReasonPasswordChange
			return mustLogin(t, f, m)
		}, sessioncap.ReasonPasswordChange, "", "This device was signed out at " + T + " after the account's password was changed on Safari on iPhone (198.51.100.2)."},
		{"own logout", sessioncap.Config{MaxSessions: 3}, func(t *testing.T, f *fixture, l *sessioncap.LoginResult) *sessioncap.LoginResult {
			if err := f.engine.Logout(ctx, l.Token); err != nil {
				t.Fatal(err)
			}
			return l // the JSON names the session itself; the sentence does not
		}, sessioncap.ReasonLogout, "", "This device was signed out at " + T + "."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.cfg, httpsession.Options{})
			f.now.Add(-1000)
			l := mustLogin(t, f, laptop)
			f.now.Add(1000) // the ending happens at T exactly
			actor := tc.end(t, f, l)
			rec := do(f.m.Require(whoami), withCookie(httptest.NewRequest("GET", "/", nil), f.m.CookieName(), l.Token))
			got := decodeFailure(t, rec)
			if rec.Code != 401 || got.Reason != string(tc.reason) || got.At == nil || got.At.Format(time.RFC3339) != T ||
				got.Admin != tc.admin || got.Message != tc.want {
				t.Fatalf("%d %s\nwant message %q", rec.Code, rec.Body, tc.want)
			}
			if actor == nil {
				if got.By != nil || got.ReplacedBy != nil {
					t.Fatalf("names a device: %s", rec.Body)
				}
				return
			}
			want := httpsession.Device{SessionID: actor.SessionID, Name: actor.Session.DeviceName(), IP: actor.Session.IP, UserAgent: actor.Session.UserAgent}
			if got.By == nil || *got.By != want {
				t.Fatalf("by %+v, want %+v", got.By, want)
			}
			if evicted := got.Error == httpsession.KindEvicted; evicted != (got.ReplacedBy != nil) || evicted && *got.ReplacedBy != want {
				t.Fatalf("replaced_by %+v", got.ReplacedBy)
			}
		})
	}
}

func mustLogin(t *testing.T, f *fixture, m sessioncap.Meta) *sessioncap.LoginResult {
	t.Helper()
	res, err := f.engine.Login(context.Background(), "alice", m)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
