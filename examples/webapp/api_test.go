package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sessioncap/sessioncap"
	"github.com/sessioncap/sessioncap/internal/redistest"
)

// report counts the tests that ran on each backend: go test shows a passing
// package as one "ok" line, so TestMain writes a summary to a file (see
// redistest.Report.Finish).
var report = redistest.NewReport("webapp", redistest.BackendMiniredis, redistest.BackendRedis,
	redistest.BackendCluster, redistest.BackendSentinel, redistest.BackendChromium)

func TestMain(m *testing.M) {
	report.Installed(redistest.BackendChromium, findBrowser() != "")
	os.Exit(report.Finish(m.Run()))
}

// testServer runs the demo app on miniredis behind httptest.
type testServer struct {
	t   *testing.T
	app *app
	srv *httptest.Server
}

func newTestServer(t *testing.T, cfg appConfig) *testServer {
	t.Helper()
	if cfg.RedisURL == "" {
		report.Use(t, redistest.BackendMiniredis)
	}
	a, err := newApp(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.handler())
	t.Cleanup(func() { srv.Close(); a.Close() })
	return &testServer{t: t, app: a, srv: srv}
}

// client is one device: a user agent, and a token sent as bearer or as the
// cookie.
type client struct {
	ts     *testServer
	ua     string
	token  string
	cookie bool
}

func (ts *testServer) device(ua string, cookie bool) *client {
	return &client{ts: ts, ua: ua, cookie: cookie}
}

func (c *client) do(method, path string, body any) (*http.Response, map[string]any) {
	c.ts.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, c.ts.srv.URL+path, rd)
	req.Header.Set("User-Agent", c.ua)
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		if c.cookie {
			req.AddCookie(&http.Cookie{Name: "__Host-session", Value: c.token})
		} else {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
	}
	resp, err := c.ts.srv.Client().Do(req)
	if err != nil {
		c.ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	raw, _ := io.ReadAll(resp.Body)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out); err != nil {
			c.ts.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	} else {
		out["raw"] = string(raw)
	}
	return resp, out
}

func (c *client) login(user, password string) (*http.Response, map[string]any) {
	c.ts.t.Helper()
	resp, body := c.do("POST", "/api/login", map[string]string{"user": user, "password": password})
	if resp.StatusCode == 200 {
		c.token = body["token"].(string)
	}
	return resp, body
}

func (c *client) mustLogin(user, password string) string {
	c.ts.t.Helper()
	resp, body := c.login(user, password)
	if resp.StatusCode != 200 {
		c.ts.t.Fatalf("login %s: %d %v", user, resp.StatusCode, body)
	}
	return body["session_id"].(string)
}

// events opens the device's Server-Sent Events stream. next waits up to
// 10 s for a line that starts with prefix and returns it; lines is closed
// when the server ends the stream. The stream is closed when the test ends.
func (c *client) events() (next func(prefix string) string, lines <-chan string) {
	t := c.ts.t
	t.Helper()
	req, _ := http.NewRequest("GET", c.ts.srv.URL+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.ts.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %v", resp.StatusCode, resp.Header)
	}
	ch := make(chan string, 64)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			select {
			case ch <- sc.Text():
			case <-done:
				return
			}
		}
	}()
	next = func(prefix string) string {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case l, ok := <-ch:
				if !ok {
					t.Fatalf("stream closed before %q", prefix)
				}
				if strings.HasPrefix(l, prefix) {
					return l
				}
			case <-deadline:
				t.Fatalf("no %q within 10s", prefix)
			}
		}
	}
	return next, ch
}

func expect(t *testing.T, resp *http.Response, body map[string]any, status int, errCode string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %v", resp.StatusCode, status, body)
	}
	if errCode != "" && body["error"] != errCode {
		t.Fatalf("error %v, want %q: %v", body["error"], errCode, body)
	}
}

func TestAPILoginMeAndEviction(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, appConfig{})
	phone := ts.device("Phone/1", false)
	resp, body := phone.login("alice", "wrong")
	expect(t, resp, body, 401, "bad_credentials")
	resp, body = phone.login("nobody", "demo")
	expect(t, resp, body, 401, "bad_credentials")

	resp, body = phone.login("alice", "demo")
	expect(t, resp, body, 200, "")
	first := body["session_id"].(string)
	if ev := body["evicted"].([]any); len(ev) != 0 {
		t.Fatalf("evicted %v", ev)
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-session" {
			cookie = c
		}
	}
	if cookie == nil || cookie.Value != body["token"] || !cookie.HttpOnly || !cookie.Secure || cookie.SameSite != http.SameSiteLaxMode {
		t.Fatalf("login cookie %+v", cookie)
	}

	resp, body = phone.do("GET", "/api/me", nil)
	expect(t, resp, body, 200, "")
	if body["user"] != "alice" || body["session_id"] != first {
		t.Fatalf("me %v", body)
	}
	// The same token as a cookie works the same.
	asCookie := &client{ts: ts, ua: "Phone/1", token: phone.token, cookie: true}
	resp, body = asCookie.do("GET", "/api/me", nil)
	expect(t, resp, body, 200, "")

	laptop := ts.device("Laptop/2", true)
	resp, body = laptop.login("alice", "demo")
	expect(t, resp, body, 200, "")
	second := body["session_id"].(string)
	if ev := body["evicted"].([]any); len(ev) != 1 || ev[0] != first {
		t.Fatalf("evicted %v, want [%s]", ev, first)
	}

	resp, body = phone.do("GET", "/api/me", nil)
	expect(t, resp, body, 401, "evicted")
	rb, _ := body["replaced_by"].(map[string]any)
	if rb["session_id"] != second || rb["user_agent"] != "Laptop/2" || rb["ip"] != "127.0.0.1" || body["at"] == nil {
		t.Fatalf("evicted body %v", body)
	}
	if _, err := time.Parse(time.RFC3339Nano, body["at"].(string)); err != nil {
		t.Fatal(err)
	}
}

func TestAPIFailureKinds(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, appConfig{MaxSessions: 2})
	anon := ts.device("x", false)
	resp, body := anon.do("GET", "/api/me", nil)
	expect(t, resp, body, 401, "unauthenticated")
	anon.token = "garbage"
	resp, body = anon.do("GET", "/api/me", nil)
	expect(t, resp, body, 401, "invalid")

	a := ts.device("A/1", false)
	a.mustLogin("bob", "demo")
	// A well-formed token whose secret is wrong reads as expired: the
	// engine deliberately does not tell "wrong secret" from "timed out".
	forged := &client{ts: ts, ua: "F", token: flipLast(a.token)}
	resp, body = forged.do("GET", "/api/me", nil)
	expect(t, resp, body, 401, "expired")

	b := ts.device("B/1", false)
	b.mustLogin("bob", "demo")
	_, me := a.do("GET", "/api/me", nil)
	resp, body = b.do("POST", "/api/sessions/"+me["session_id"].(string)+"/revoke", nil)
	expect(t, resp, body, 200, "")
	resp, body = a.do("GET", "/api/me", nil)
	expect(t, resp, body, 401, "revoked")
	if body["reason"] != "revoked" {
		t.Fatalf("%v", body)
	}
	resp, body = b.do("POST", "/api/sessions/not-an-id/revoke", nil)
	expect(t, resp, body, 400, "bad_request")

	// Redis down is a 503, never a pass and never "signed out".
	ts.app.mini.Close()
	resp, body = b.do("GET", "/api/me", nil)
	expect(t, resp, body, 503, "unavailable")
	resp, body = ts.device("C", false).do("POST", "/api/login", map[string]string{"user": "bob", "password": "demo"})
	expect(t, resp, body, 503, "unavailable")
}

// flipLast changes one bit of the token's secret. It edits the next to
// last character: the last one also carries two padding bits, which the
// strict decoder checks, so changing it can make the token malformed
// ("invalid") instead of merely wrong ("expired") in one case of sixteen.
func flipLast(tok string) string {
	i := len(tok) - 2
	repl := byte('A')
	if tok[i] == 'A' {
		repl = 'B'
	}
	return tok[:i] + string(repl) + tok[i+1:]
}

func TestAPIRejectIs409(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, appConfig{MaxSessions: 1, Overflow: sessioncap.RejectNew})
	a := ts.device("A/1", false)
	first := a.mustLogin("carol", "demo")
	b := ts.device("B/1", false)
	resp, body := b.login("carol", "demo")
	expect(t, resp, body, 409, "limit")
	list := body["sessions"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["session_id"] != first || body["limit"].(float64) != 1 {
		t.Fatalf("409 body %v", body)
	}
	resp, body = b.do("POST", "/api/login", map[string]string{"user": "carol", "password": "wrong", "replace": first})
	expect(t, resp, body, 401, "bad_credentials")
	resp, body = b.do("POST", "/api/login", map[string]string{"user": "carol", "password": "demo", "replace": first})
	expect(t, resp, body, 200, "")
	second := body["session_id"].(string)
	if ev := body["evicted_devices"].([]any); len(ev) != 1 || ev[0].(map[string]any)["session_id"] != first ||
		ev[0].(map[string]any)["device"] != "A" {
		t.Fatalf("evicted_devices %v", body)
	}
	// The replaced device hears that the account signed in elsewhere, and
	// which device chose to sign it out.
	resp, body = a.do("GET", "/api/me", nil)
	expect(t, resp, body, 401, "evicted")
	by, _ := body["by"].(map[string]any)
	if body["reason"] != "replaced" || by["session_id"] != second || by["device"] != "B" || body["at"] == nil {
		t.Fatalf("replaced body %v", body)
	}
	// The older name of the field still works.
	c := ts.device("C/1", false)
	resp, body = c.do("POST", "/api/login", map[string]string{"user": "carol", "password": "demo", "revoke": second})
	expect(t, resp, body, 200, "")
}

func TestAPILogoutOthersRotateHistory(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, appConfig{MaxSessions: 3})
	a, b, c := ts.device("A/1", true), ts.device("B/1", false), ts.device("C/1", false)
	a.mustLogin("alice", "demo")
	b.mustLogin("alice", "demo")
	c.mustLogin("alice", "demo")

	resp, body := a.do("GET", "/api/sessions", nil)
	expect(t, resp, body, 200, "")
	if n := len(body["sessions"].([]any)); n != 3 {
		t.Fatalf("%d sessions", n)
	}
	resp, body = a.do("POST", "/api/logout-others", nil)
	expect(t, resp, body, 200, "")
	if n := len(body["ended"].([]any)); n != 2 {
		t.Fatalf("ended %v", body)
	}
	resp, body = b.do("GET", "/api/me", nil)
	expect(t, resp, body, 401, "revoked")
	if body["reason"] != "logout-others" {
		t.Fatalf("%v", body)
	}

	old := a.token
	resp, body = a.do("POST", "/api/rotate", nil)
	expect(t, resp, body, 200, "")
	a.token = body["token"].(string)
	if a.token == old {
		t.Fatal("rotate kept the token")
	}
	resp, body = a.do("GET", "/api/me", nil)
	expect(t, resp, body, 200, "")
	resp, body = (&client{ts: ts, ua: "A/1", token: old, cookie: true}).do("GET", "/api/me", nil)
	if resp.StatusCode != 401 {
		t.Fatalf("old token after rotate: %d %v", resp.StatusCode, body)
	}

	resp, body = a.do("GET", "/api/history", nil)
	expect(t, resp, body, 200, "")
	types := map[string]bool{}
	for _, e := range body["events"].([]any) {
		types[e.(map[string]any)["type"].(string)] = true
	}
	for _, want := range []string{"login", "logout-others", "rotated"} {
		if !types[want] {
			t.Fatalf("history lacks %q: %v", want, types)
		}
	}

	resp, body = a.do("POST", "/api/logout", nil)
	expect(t, resp, body, 200, "")
	cleared := false
	for _, ck := range resp.Cookies() {
		cleared = cleared || (ck.Name == "__Host-session" && ck.MaxAge < 0)
	}
	if !cleared {
		t.Fatal("logout did not clear the cookie")
	}
	resp, body = a.do("GET", "/api/me", nil)
	expect(t, resp, body, 401, "revoked")
}

func TestAPIAdminPermissions(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, appConfig{MaxSessions: 1})
	bob := ts.device("Bob/1", false)
	bob.mustLogin("bob", "demo")
	adm := ts.device("Admin/1", false)
	adm.mustLogin("admin", "admin")
	// Admins are unlimited: more sign-ins evict nothing.
	for i := 0; i < 3; i++ {
		_, body := ts.device("Admin/extra", false).login("admin", "admin")
		if n := len(body["evicted"].([]any)); n != 0 {
			t.Fatalf("admin sign-in evicted %d", n)
		}
	}
	root := ts.device("Root/1", false)
	root.mustLogin("root", "root")

	resp, body := bob.do("POST", "/api/admin/logout", map[string]any{"users": []string{"alice"}})
	expect(t, resp, body, 403, "forbidden")

	resp, body = adm.do("POST", "/api/admin/logout", map[string]any{"users": []string{"bob", "root"}})
	expect(t, resp, body, 403, "forbidden")
	if f := body["forbidden"].([]any); len(f) != 1 || f[0] != "root" {
		t.Fatalf("%v", body)
	}
	resp, body = bob.do("GET", "/api/me", nil)
	expect(t, resp, body, 200, "") // all or nothing: bob was not signed out

	resp, body = adm.do("POST", "/api/admin/logout", map[string]any{"users": []string{"bob"}})
	expect(t, resp, body, 200, "")
	if body["ended"].(float64) != 1 {
		t.Fatalf("%v", body)
	}
	resp, body = bob.do("GET", "/api/me", nil)
	expect(t, resp, body, 401, "revoked")
	if body["reason"] != "admin" {
		t.Fatalf("%v", body)
	}

	resp, body = root.do("POST", "/api/admin/logout", map[string]any{"users": []string{"admin"}})
	expect(t, resp, body, 200, "")
	if body["ended"].(float64) != 4 {
		t.Fatalf("%v", body)
	}
	resp, body = adm.do("GET", "/api/me", nil)
	expect(t, resp, body, 401, "revoked")
}

func TestCrossOriginPostRefused(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, appConfig{})
	a := ts.device("A/1", true)
	a.mustLogin("alice", "demo")
	req, _ := http.NewRequest("POST", ts.srv.URL+"/api/logout", nil)
	req.AddCookie(&http.Cookie{Name: "__Host-session", Value: a.token})
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := ts.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site POST: %d", resp.StatusCode)
	}
	resp, body := a.do("GET", "/api/me", nil)
	expect(t, resp, body, 200, "")
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, appConfig{})
	a := ts.device("A/1", false)
	a.mustLogin("alice", "demo")
	ts.device("B/1", false).mustLogin("alice", "demo")
	a.do("GET", "/api/me", nil)
	resp, body := a.do("GET", "/metrics", nil)
	if resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	raw := body["raw"].(string)
	for _, want := range []string{"sessioncap_logins_total 2", "sessioncap_evictions_total 1",
		`sessioncap_validations_total{outcome="evicted"} 1`, "sessioncap_rejections_total 0",
		"sessioncap_script_retries_total", "sessioncap_redis_errors_total 0"} {
		if !strings.Contains(raw, want) {
			t.Fatalf("metrics lack %q:\n%s", want, raw)
		}
	}
}

// TestEventsStream reads the SSE stream of one session and checks that an
// eviction of that session ends it with an "ended" event.
func TestEventsStream(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, appConfig{})
	a := ts.device("A/1", false)
	a.mustLogin("alice", "demo")
	next, lines := a.events()
	next("event: ready")
	start := time.Now()
	ts.device("B/1", false).mustLogin("alice", "demo")
	next("event: ended")
	t.Logf("ended event after %v", time.Since(start))
	for range lines {
	} // the server closes the stream after "ended"
}

func TestPagesFlow(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, appConfig{})
	noRedirect := *ts.srv.Client()
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	post := func(path, ua, token string, form url.Values) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", ts.srv.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("User-Agent", ua)
		if token != "" {
			req.AddCookie(&http.Cookie{Name: "__Host-session", Value: token})
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	get := func(path, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", ts.srv.URL+path, nil)
		req.Header.Set("Accept", "text/html")
		if token != "" {
			req.AddCookie(&http.Cookie{Name: "__Host-session", Value: token})
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	cookieOf := func(resp *http.Response) string {
		for _, c := range resp.Cookies() {
			if c.Name == "__Host-session" {
				return c.Value
			}
		}
		t.Fatalf("no cookie: %d", resp.StatusCode)
		return ""
	}

	if code, body := get("/login", ""); code != 200 || !strings.Contains(body, "Sign in") {
		t.Fatalf("%d", code)
	}
	if resp := post("/login", "A", "", url.Values{"user": {"alice"}, "password": {"nope"}}); resp.StatusCode != 401 {
		t.Fatalf("bad password: %d", resp.StatusCode)
	}
	resp := post("/login", "Mozilla/5.0 (X11; Linux x86_64) Chrome/120 DeviceA", "", url.Values{"user": {"alice"}, "password": {"demo"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/devices" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	tokA := cookieOf(resp)
	code, body := get("/devices", tokA)
	if code != 200 || !strings.Contains(body, "this device") || !strings.Contains(body, "Chrome on Linux") {
		t.Fatalf("%d %s", code, body)
	}
	tokB := cookieOf(post("/login", "Mozilla/5.0 (Windows NT 10.0) Firefox/130 DeviceB", "", url.Values{"user": {"alice"}, "password": {"demo"}}))
	code, body = get("/devices", tokA)
	if code != 401 || !strings.Contains(body, "signed in on another device") || !strings.Contains(body, "Firefox on Windows") ||
		!strings.Contains(body, `action="/not-me"`) {
		t.Fatalf("%d %s", code, body)
	}
	// "This wasn't me" needs the password.
	if resp := post("/not-me", "A", tokA, url.Values{"password": {"wrong"}}); resp.StatusCode != 401 {
		t.Fatalf("not-me wrong password: %d", resp.StatusCode)
	}
	if code, _ := get("/devices", tokB); code != 200 {
		t.Fatal("a failed not-me signed B out")
	}
	resp = post("/not-me", "Mozilla/5.0 (X11; Linux x86_64) Chrome/120 DeviceA", tokA, url.Values{"password": {"demo"}})
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc.Path != "/devices" || loc.Query().Get("msg") != "everywhere" {
		t.Fatalf("not-me: %d %v", resp.StatusCode, resp.Header)
	}
	tokA2 := cookieOf(resp)
	// A is told which devices it signed out.
	if code, body := get(loc.String(), tokA2); code != 200 || !strings.Contains(body, "signed out every other device") ||
		!strings.Contains(body, "Firefox on Windows") {
		t.Fatalf("fresh session after not-me: %d %s", code, body)
	}
	// B is told it was a security response, from A's device.
	if code, body := get("/devices", tokB); code != 401 || !strings.Contains(body, "for your account&#39;s security") ||
		!strings.Contains(body, "Chrome on Linux") || !strings.Contains(body, `data-reason="security"`) ||
		strings.Contains(body, `action="/not-me"`) {
		t.Fatalf("B after not-me: %d %s", code, body)
	}
	// A not-me without an evicted cookie does nothing.
	if resp := post("/not-me", "A", "", url.Values{"password": {"demo"}}); resp.StatusCode != http.StatusSeeOther ||
		resp.Header.Get("Location") != "/login" {
		t.Fatalf("%d", resp.StatusCode)
	}

	// Admin page: admin may not select root.
	tokAdm := cookieOf(post("/login", "Adm", "", url.Values{"user": {"admin"}, "password": {"admin"}}))
	code, body = get("/admin", tokAdm)
	if code != 200 || !strings.Contains(body, `value="root" aria-label="select root" disabled`) ||
		strings.Contains(body, `value="alice" aria-label="select alice" disabled`) {
		t.Fatalf("%d %s", code, body)
	}
	if resp := post("/admin/logout", "Adm", tokAdm, url.Values{"user": {"root"}}); resp.StatusCode != 403 {
		t.Fatalf("admin logging out root: %d", resp.StatusCode)
	}
	// Nothing selected is an error, not a success.
	if resp := post("/admin/logout", "Adm", tokAdm, url.Values{}); resp.StatusCode != 400 {
		t.Fatalf("admin logging out nobody: %d", resp.StatusCode)
	}
	if resp := post("/admin/logout", "Adm", tokAdm, url.Values{"user": {"nobody"}}); resp.StatusCode != 400 {
		t.Fatalf("admin logging out an unknown user: %d", resp.StatusCode)
	}
	// A non-admin gets a 403 page, without the form.
	if code, body := get("/admin", tokA2); code != 403 || strings.Contains(body, `action="/admin/logout"`) ||
		!strings.Contains(body, "Admins only") {
		t.Fatalf("non-admin at /admin: %d %s", code, body)
	}
	resp = post("/admin/logout", "Adm", tokAdm, url.Values{"user": {"alice"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("admin logging out alice: %d", resp.StatusCode)
	}
	if code, body := get(resp.Header.Get("Location"), tokAdm); code != 200 || !strings.Contains(body, "Signed out alice: 1 session ended") {
		t.Fatalf("admin after logging out alice: %d %s", code, body)
	}
	if code, body := get("/devices", tokA2); code != 401 || !strings.Contains(body, "An administrator (admin) signed this account out") ||
		!strings.Contains(body, `value="alice"`) {
		t.Fatalf("alice after the admin logout: %d %s", code, body)
	}
	if code, _ := get("/admin", tokA2); code != 401 {
		t.Fatalf("%d", code)
	}
}

// TestRejectPage: under -overflow reject the sign-in page lists the live
// sessions and lets the user sign one out in its place, password
// confirmed; a wrong password stays on the chooser, and it can be left.
func TestRejectPage(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, appConfig{Overflow: sessioncap.RejectNew})
	laptop := ts.device("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:131.0) Gecko/20100101 Firefox/131.0", false)
	first := laptop.mustLogin("bob", "demo")
	client := *ts.srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	post := func(form url.Values) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", ts.srv.URL+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := post(url.Values{"user": {"bob"}, "password": {"demo"}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, `value="`+first+`"`) || !strings.Contains(body, "Too many devices") ||
		!strings.Contains(body, "Firefox on Windows") || !strings.Contains(body, `id="cancel"`) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	ticket := regexp.MustCompile(`name="ticket" value="([^"]+)"`).FindStringSubmatch(body)
	if ticket == nil {
		t.Fatal("no ticket in the chooser")
	}
	// A wrong password stays on the chooser, says so, and signs nothing out.
	resp, body = post(url.Values{"user": {"bob"}, "password": {"wrong"}, "replace": {first}, "ticket": {ticket[1]}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Too many devices") ||
		!strings.Contains(body, "Wrong password: no device was signed out") || !strings.Contains(body, `value="`+first+`"`) {
		t.Fatalf("wrong password: %d %s", resp.StatusCode, body)
	}
	if resp, body := laptop.do("GET", "/api/me", nil); resp.StatusCode != 200 {
		t.Fatalf("a wrong password signed the laptop out: %v", body)
	}
	// Without the ticket nobody is shown the list.
	resp, body = post(url.Values{"user": {"bob"}, "password": {"wrong"}, "replace": {first}, "ticket": {"1.x"}})
	if resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, first) || !strings.Contains(body, "expired") {
		t.Fatalf("no ticket: %d %s", resp.StatusCode, body)
	}
	resp, _ = post(url.Values{"user": {"bob"}, "password": {"demo"}, "replace": {first}, "ticket": {ticket[1]}})
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc.Query().Get("msg") != "replaced" || loc.Query().Get("ended") != first {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	list, err := ts.app.engine.Sessions(t.Context(), "bob")
	if err != nil || len(list) != 1 || list[0].ID == first {
		t.Fatalf("%v %v", list, err)
	}
	resp, me := laptop.do("GET", "/api/me", nil)
	expect(t, resp, me, 401, "evicted")
	if me["reason"] != "replaced" || me["by"].(map[string]any)["device"] != "Chrome on Linux" {
		t.Fatalf("%v", me)
	}
}
