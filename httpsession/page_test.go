package httpsession_test

import (
	"errors"
	"html"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sessioncap/sessioncap"
	"github.com/sessioncap/sessioncap/httpsession"
)

// TestFailurePage checks the HTML page of every kind: its own title, no
// inline style or script (a strict Content-Security-Policy would block
// them), and the optional stylesheet link.
func TestFailurePage(t *testing.T) {
	ended := sessioncap.Ending{Reason: sessioncap.ReasonEvicted, At: time.Now(),
		By: sessioncap.Device{SessionID: "x", IP: "198.51.100.2", UserAgent: safariIPhone}}
	tests := []struct {
		err    error
		status int
		title  string
	}{
		{httpsession.ErrNoToken, 401, "Please sign in"},
		{sessioncap.ErrInvalidToken, 401, "Please sign in again"},
		{sessioncap.ErrExpired, 401, "Session expired"},
		{&sessioncap.EvictedError{Ending: ended}, 401, "Your account signed in on another device"},
		{&sessioncap.RevokedError{Ending: sessioncap.Ending{Reason: sessioncap.ReasonLogoutOthers, At: time.Now()}}, 401, "You were signed out"},
		{sessioncap.ErrUnavailable, 503, "Please try again"},
		{errors.New("boom"), 500, "Something went wrong"},
	}
	page := func(h func(http.ResponseWriter, *http.Request, error), err error) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Accept", "text/html,application/xhtml+xml")
		rec := httptest.NewRecorder()
		h(rec, req, err)
		return rec
	}
	noInline := func(t *testing.T, body string) {
		t.Helper()
		low := strings.ToLower(body)
		// Inline styles, style elements, scripts and event handler
		// attributes are what style-src/script-src 'self' block.
		for _, bad := range []string{"style=", "<style", "<script", "javascript:", " onload=", " onclick=", " onerror="} {
			if strings.Contains(low, bad) {
				t.Errorf("page has %q:\n%s", bad, body)
			}
		}
	}
	for _, tc := range tests {
		t.Run(tc.title, func(t *testing.T) {
			rec := page(httpsession.DefaultErrorHandler, tc.err)
			body := rec.Body.String()
			f := httpsession.Describe(tc.err)
			if rec.Code != tc.status || f.Title() != tc.title ||
				!strings.Contains(body, "<title>"+tc.title+"</title>") || !strings.Contains(body, "<h1>"+tc.title+"</h1>") ||
				!strings.Contains(body, html.EscapeString(f.Message)) ||
				!strings.Contains(body, `class="sessioncap-failure sessioncap-`+string(f.Error)+`"`) {
				t.Fatalf("%d\n%s", rec.Code, body)
			}
			noInline(t, body)
			if strings.Contains(body, "stylesheet") {
				t.Fatalf("no stylesheet was asked for:\n%s", body)
			}
			if tc.status == 503 && (strings.Contains(body, "Signed out") || strings.Contains(body, "signed out")) {
				t.Fatalf("the 503 page speaks of a sign-out:\n%s", body)
			}
		})
	}

	t.Run("Options.Stylesheet", func(t *testing.T) {
		f := newFixture(t, sessioncap.Config{MaxSessions: 1}, httpsession.Options{Stylesheet: "/static/app.css?v=2&x=1"})
		old := f.login(t, "alice", "1.1.1.1")
		f.login(t, "alice", "2.2.2.2")
		req := withCookie(httptest.NewRequest("GET", "/", nil), f.m.CookieName(), old.Token)
		req.Header.Set("Accept", "text/html")
		rec := do(f.m.Require(whoami), req)
		body := rec.Body.String()
		if rec.Code != 401 || !strings.Contains(body, `<link rel="stylesheet" href="/static/app.css?v=2&amp;x=1">`) {
			t.Fatalf("%d\n%s", rec.Code, body)
		}
		noInline(t, body)
		rec = page(func(w http.ResponseWriter, r *http.Request, err error) {
			f.m.WriteFailure(w, r, httpsession.Describe(err))
		}, sessioncap.ErrExpired)
		if !strings.Contains(rec.Body.String(), `<link rel="stylesheet" href="/static/app.css?v=2&amp;x=1">`) {
			t.Fatalf("Manager.WriteFailure:\n%s", rec.Body)
		}
		// html/template neutralises a URL that is not one.
		m := httpsession.New(f.engine, httpsession.Options{Stylesheet: "javascript:alert(1)"})
		req = withCookie(httptest.NewRequest("GET", "/", nil), m.CookieName(), old.Token)
		req.Header.Set("Accept", "text/html")
		if body := do(m.Require(whoami), req).Body.String(); strings.Contains(body, "javascript:") {
			t.Fatalf("unsafe stylesheet URL kept:\n%s", body)
		}
	})
}
