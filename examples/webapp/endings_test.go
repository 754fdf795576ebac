package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Real user agents, so the names are the ones people read.
const (
	uaLinuxChrome  = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	uaWinFirefox   = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:131.0) Gecko/20100101 Firefox/131.0"
	uaMacEdge      = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0"
	uaIPhoneSafari = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)

// checkEnding asserts the 401 body an ended device gets: the kind, the
// reason, when, and who acted (a device by its ID and name, or an admin).
func checkEnding(t *testing.T, c *client, kind, reason, bySID, byDevice, admin string) map[string]any {
	t.Helper()
	resp, body := c.do("GET", "/api/me", nil)
	expect(t, resp, body, 401, kind)
	if body["reason"] != reason {
		t.Fatalf("reason %v, want %s: %v", body["reason"], reason, body)
	}
	at, _ := body["at"].(string)
	when, err := time.Parse(time.RFC3339Nano, at)
	if err != nil || time.Since(when) > time.Minute || time.Until(when) > time.Minute {
		t.Fatalf("at %q: %v", at, err)
	}
	by, _ := body["by"].(map[string]any)
	if bySID == "" {
		if by != nil {
			t.Fatalf("by %v, want none", by)
		}
	} else if by["session_id"] != bySID || by["device"] != byDevice || by["ip"] != "127.0.0.1" {
		t.Fatalf("by %v, want %s (%s): %v", by, bySID, byDevice, body)
	}
	if body["admin"] != nil && body["admin"] != admin || admin != "" && body["admin"] != admin {
		t.Fatalf("admin %v, want %q", body["admin"], admin)
	}
	msg, _ := body["message"].(string)
	if byDevice != "" && !strings.Contains(msg, byDevice) || admin != "" && !strings.Contains(msg, admin) {
		t.Fatalf("message %q does not name who acted", msg)
	}
	if body["user"] == nil || body["title"] == "" {
		t.Fatalf("%v", body)
	}
	return body
}

// TestAPIEndingsNameTheActor: every way a session ends reaches the ended
// device with its reason, its time and who acted, and the acting device
// learns what it ended.
func TestAPIEndingsNameTheActor(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, appConfig{MaxSessions: 2})
	phone, laptop, mac := ts.device(uaIPhoneSafari, false), ts.device(uaLinuxChrome, true), ts.device(uaMacEdge, false)
	phone.mustLogin("alice", "demo")
	lap := laptop.mustLogin("alice", "demo")

	// Eviction: the new sign-in is told what it ended; the ended device
	// which sign-in ended it.
	resp, body := mac.login("alice", "demo")
	expect(t, resp, body, 200, "")
	macID := body["session_id"].(string)
	ev := body["evicted_devices"].([]any)
	if len(ev) != 1 || ev[0].(map[string]any)["device"] != "Safari on iPhone" {
		t.Fatalf("evicted_devices %v", body)
	}
	checkEnding(t, phone, "evicted", "limit", macID, "Edge on macOS", "")

	// Revoke from another device: that device is named.
	resp, body = mac.do("POST", "/api/sessions/"+lap+"/revoke", nil)
	expect(t, resp, body, 200, "")
	checkEnding(t, laptop, "revoked", "revoked", macID, "Edge on macOS", "")

	// Sign out all other devices.
	laptop.token = ""
	laptop.mustLogin("alice", "demo")
	resp, body = mac.do("POST", "/api/logout-others", nil)
	expect(t, resp, body, 200, "")
	checkEnding(t, laptop, "revoked", "logout-others", macID, "Edge on macOS", "")

	// An admin: named, no device.
	adm := ts.device(uaWinFirefox, false)
	adm.mustLogin("admin", "admin")
	resp, body = adm.do("POST", "/api/admin/logout", map[string]any{"users": []string{"alice"}})
	expect(t, resp, body, 200, "")
	checkEnding(t, mac, "revoked", "admin", "", "", "admin")

	// The history says the same, with the actor.
	phone.token = ""
	phone.mustLogin("alice", "demo")
	resp, body = phone.do("GET", "/api/history", nil)
	expect(t, resp, body, 200, "")
	seen := map[string]map[string]any{}
	for _, e := range body["events"].([]any) {
		seen[e.(map[string]any)["type"].(string)] = e.(map[string]any)
	}
	if a, _ := seen["revoked"]["actor"].(map[string]any); a["device"] != "Edge on macOS" || a["session_id"] != macID {
		t.Fatalf("revoked event %v", seen["revoked"])
	}
	if seen["admin"]["admin"] != "admin" || seen["limit"]["actor"].(map[string]any)["device"] != "Edge on macOS" {
		t.Fatalf("events %v", seen)
	}
}

// TestNotMeEndsWithSecurity: "this wasn't me" signs the device in again
// and every other device out as a security response, by this device.
func TestNotMeEndsWithSecurity(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, appConfig{MaxSessions: 1})
	owner, thief := ts.device(uaLinuxChrome, true), ts.device(uaWinFirefox, false)
	owner.mustLogin("bob", "demo")
	thief.mustLogin("bob", "demo")
	form := url.Values{"password": {"demo"}}
	req, _ := http.NewRequest("POST", ts.srv.URL+"/not-me", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", uaLinuxChrome)
	req.AddCookie(&http.Cookie{Name: "__Host-session", Value: owner.token})
	c := *ts.srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("not-me: %d", resp.StatusCode)
	}
	var fresh string
	for _, ck := range resp.Cookies() {
		if ck.Name == "__Host-session" {
			fresh = ck.Value
		}
	}
	owner.token = fresh
	_, me := owner.do("GET", "/api/me", nil)
	checkEnding(t, thief, "revoked", "security", me["session_id"].(string), "Chrome on Linux", "")
}

// TestAdminAPIRefusals: unknown users and an empty list are errors.
func TestAdminAPIRefusals(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, appConfig{})
	adm := ts.device("Adm", false)
	adm.mustLogin("admin", "admin")
	resp, body := adm.do("POST", "/api/admin/logout", map[string]any{"users": []string{"alice", "mallory"}})
	expect(t, resp, body, 404, "unknown_user")
	if u := body["unknown"].([]any); len(u) != 1 || u[0] != "mallory" {
		t.Fatalf("%v", body)
	}
	resp, body = adm.do("POST", "/api/admin/logout", map[string]any{"users": []string{}})
	expect(t, resp, body, 400, "bad_request")
}

// TestFailurePagesAreStyled: every refusal a browser can meet is a page of
// the demo's own, under its stylesheet, without inline styles the CSP
// would block.
func TestFailurePagesAreStyled(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, appConfig{})
	a := ts.device("A", false)
	a.mustLogin("alice", "demo")
	html := func(method, path string, hdr map[string]string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(method, ts.srv.URL+path, nil)
		req.Header.Set("Accept", "text/html")
		req.AddCookie(&http.Cookie{Name: "__Host-session", Value: a.token})
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := ts.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	styled := func(what, body string, wants ...string) {
		t.Helper()
		if !strings.Contains(body, `href="/static/style.css"`) || strings.Contains(body, "style=") {
			t.Fatalf("%s: not the demo's styled page:\n%s", what, body)
		}
		for _, w := range wants {
			if !strings.Contains(body, w) {
				t.Fatalf("%s lacks %q:\n%s", what, w, body)
			}
		}
	}
	code, body, _ := html("GET", "/no/such/page", nil)
	if code != 404 {
		t.Fatalf("404: %d", code)
	}
	styled("404", body, "Page not found")
	code, body, h := html("DELETE", "/devices", nil)
	if code != 405 || h.Get("Allow") == "" {
		t.Fatalf("405: %d %v", code, h)
	}
	styled("405", body, "Not allowed")
	code, body, _ = html("POST", "/logout", map[string]string{"Sec-Fetch-Site": "cross-site"})
	if code != 403 {
		t.Fatalf("CSRF: %d", code)
	}
	styled("CSRF", body, "Request refused")
	resp, jb := a.do("POST", "/api/logout", nil) // JSON clients get JSON...
	expect(t, resp, jb, 200, "")
	req, _ := http.NewRequest("POST", ts.srv.URL+"/api/logout", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	r2, err := ts.srv.Client().Do(req) // ...a cross-site one included
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != 403 || r2.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("CSRF JSON: %d %v", r2.StatusCode, r2.Header)
	}
	code, body, _ = html("GET", "/api/me", nil) // signed out: the sign-in page
	if code != 401 {
		t.Fatalf("401: %d", code)
	}
	styled("401", body, `action="/login"`)

	ts.app.mini.Close()
	code, body, h = html("GET", "/devices", nil)
	if code != 503 || h.Get("Retry-After") == "" {
		t.Fatalf("503: %d", code)
	}
	styled("503", body, "<title>Please try again", "unavailable")
}

// TestCookieWarning: over plain HTTP from a host other than loopback the
// Secure cookie would be dropped; the sign-in page says so.
func TestCookieWarning(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		host     string
		insecure bool
		proto    string
		warn     bool
	}{
		{host: "demo.example:8080", warn: true},
		{host: "192.168.1.20:8080", warn: true},
		{host: "demo.example:8080", proto: "https"},
		{host: "demo.example:8080", insecure: true},
		{host: "localhost:8080"},
		{host: "app.localhost:8080"},
		{host: "127.0.0.1:8080"},
		{host: "[::1]:8080"},
	} {
		ts := newTestServer(t, appConfig{Insecure: tc.insecure})
		req, _ := http.NewRequest("GET", ts.srv.URL+"/login", nil)
		req.Host = tc.host
		if tc.proto != "" {
			req.Header.Set("X-Forwarded-Proto", tc.proto)
		}
		resp, err := ts.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := strings.Contains(string(b), `id="cookie-warning"`); got != tc.warn {
			t.Errorf("%+v: warning %v", tc, got)
		}
	}
}

// TestHelpExitsZero: -h prints the usage, says how to expose the demo, and
// is not an error; the default address is loopback.
func TestHelpExitsZero(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run([]string{"-h"}, &out); err != nil {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"127.0.0.1:8080", "-addr :8080", "-insecure-cookies", "HTTPS"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("usage lacks %q:\n%s", want, out.String())
		}
	}
	if err := run([]string{"-no-such-flag"}, io.Discard); err == nil {
		t.Fatal("a bad flag is not an error")
	}
}

// TestRequestDeadline: a Redis that accepts connections and never answers
// fails a request at the request's deadline, not after go-redis's own
// timeouts and retries.
func TestRequestDeadline(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go io.Copy(io.Discard, c) // read, never reply
		}
	}()
	a, err := newApp(appConfig{RedisURL: "redis://" + ln.Addr().String() + "?max_retries=-1", RequestTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	tok, err := a.engine.NewToken("alice")
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req, _ := http.NewRequest("GET", "/api/me", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	start := time.Now()
	a.handler().ServeHTTP(rec, req)
	took := time.Since(start)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
	}
	if took > 2*time.Second {
		t.Fatalf("the request took %v, its deadline is 300ms", took)
	}
	t.Logf("stalled Redis: 503 after %v", took)
}
