package httpsession_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap"
	"github.com/sessioncap/sessioncap/httpsession"
	"github.com/sessioncap/sessioncap/internal/redistest"
)

// report counts the tests that ran on each backend: go test shows a passing
// package as one "ok" line, so TestMain writes a summary to a file (see
// redistest.Report.Finish).
var report = redistest.NewReport("httpsession", redistest.BackendMiniredis)

func TestMain(m *testing.M) { os.Exit(report.Finish(m.Run())) }

// opCounter counts engine calls by op, to prove one Validate per request
// and no Save when nothing changed.
type opCounter struct {
	mu sync.Mutex
	n  map[sessioncap.Op]int
}

func (c *opCounter) Observe(o sessioncap.Observation) {
	if o.Outcome == sessioncap.OutcomeScriptRetry {
		return // a cache miss inside a call, not a call
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[sessioncap.Op]int{}
	}
	c.n[o.Op]++
}

func (c *opCounter) get(op sessioncap.Op) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[op]
}

type fixture struct {
	mini   *miniredis.Miniredis
	engine *sessioncap.Engine
	m      *httpsession.Manager
	ops    *opCounter
	now    atomic.Int64 // unix ms
}

func newFixture(t *testing.T, cfg sessioncap.Config, opt httpsession.Options) *fixture {
	t.Helper()
	report.Use(t, redistest.BackendMiniredis)
	f := &fixture{mini: miniredis.RunT(t), ops: &opCounter{}}
	f.now.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli())
	client := redis.NewClient(&redis.Options{Addr: f.mini.Addr(), MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	cfg.Now = func() time.Time { return time.UnixMilli(f.now.Load()) }
	cfg.Observer = f.ops
	e, err := sessioncap.New(client, cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.engine = e
	f.m = httpsession.New(e, opt)
	return f
}

func (f *fixture) login(t *testing.T, user, ip string) *sessioncap.LoginResult {
	t.Helper()
	res, err := f.engine.Login(context.Background(), user, sessioncap.Meta{IP: ip, UserAgent: "agent-" + ip})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// whoami answers with the session's user and counter value.
var whoami = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	s := httpsession.FromContext(r.Context())
	if s == nil {
		io.WriteString(w, "anonymous")
		return
	}
	io.WriteString(w, s.UserID+":"+s.Values["n"])
})

func do(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func withCookie(r *http.Request, name, tok string) *http.Request {
	r.AddCookie(&http.Cookie{Name: name, Value: tok})
	return r
}

func decodeFailure(t *testing.T, rec *httptest.ResponseRecorder) httpsession.Failure {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q, body %s", ct, rec.Body)
	}
	var f httpsession.Failure
	if err := json.Unmarshal(rec.Body.Bytes(), &f); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	return f
}

func TestLoginCookieAttributes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sessioncap.Config{}, httpsession.Options{})
	h := f.m.Load(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := f.m.Login(w, r, "alice", map[string]string{"n": "0"}); err != nil {
			t.Error(err)
		}
		io.WriteString(w, "welcome")
	}))
	req := httptest.NewRequest("POST", "https://example.test/login", nil)
	req.Header.Set("User-Agent", "TestBrowser/1")
	rec := do(h, req)
	if rec.Code != 200 || rec.Body.String() != "welcome" {
		t.Fatalf("%d %q", rec.Code, rec.Body)
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies %v", cookies)
	}
	c := cookies[0]
	if c.Name != "__Host-session" || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode ||
		c.Path != "/" || c.Domain != "" || !c.Expires.IsZero() || c.MaxAge != 0 {
		t.Fatalf("cookie attributes %+v", c)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("Cache-Control %q", cc)
	}
	s, err := f.engine.Validate(context.Background(), c.Value)
	if err != nil || s.UserID != "alice" || s.UserAgent != "TestBrowser/1" || s.IP != "192.0.2.1" {
		t.Fatalf("%+v %v", s, err)
	}
	// The cookie authenticates the next request, with exactly one Validate.
	before := f.ops.get(sessioncap.OpValidate)
	rec = do(f.m.Require(whoami), withCookie(httptest.NewRequest("GET", "/", nil), c.Name, c.Value))
	if rec.Body.String() != "alice:0" {
		t.Fatalf("%d %q", rec.Code, rec.Body)
	}
	if n := f.ops.get(sessioncap.OpValidate) - before; n != 1 {
		t.Fatalf("%d Validate calls, want 1", n)
	}
	if rec.Header().Get("Set-Cookie") != "" {
		t.Fatal("plain request set a cookie")
	}
}

func TestInsecureCookieForLocalDev(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sessioncap.Config{}, httpsession.Options{Insecure: true, Persistent: true})
	h := f.m.Load(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.m.Login(w, r, "alice", nil)
	}))
	c := do(h, httptest.NewRequest("POST", "/", nil)).Result().Cookies()[0]
	if c.Name != "session" || c.Secure || !c.HttpOnly || c.Expires.IsZero() {
		t.Fatalf("%+v", c)
	}
}

func TestBearer(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sessioncap.Config{}, httpsession.Options{})
	res := f.login(t, "bob", "10.0.0.1")
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", "Bearer "+res.Token)
	// A stale cookie does not matter when a bearer token is sent.
	withCookie(req, f.m.CookieName(), "stale")
	if rec := do(f.m.Require(whoami), req); rec.Code != 200 || rec.Body.String() != "bob:" {
		t.Fatalf("%d %q", rec.Code, rec.Body)
	}

	f2 := newFixture(t, sessioncap.Config{}, httpsession.Options{NoBearer: true})
	req = httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", "Bearer "+res.Token)
	if rec := do(f2.m.Require(whoami), req); rec.Code != 401 {
		t.Fatalf("NoBearer: %d", rec.Code)
	}
}

func TestFailures(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sessioncap.Config{HistoryLimit: 10}, httpsession.Options{})
	ctx := context.Background()
	name := f.m.CookieName()

	t.Run("missing", func(t *testing.T) {
		rec := do(f.m.Require(whoami), httptest.NewRequest("GET", "/", nil))
		if rec.Code != 401 || decodeFailure(t, rec).Error != httpsession.KindMissing {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
	})
	t.Run("invalid clears the cookie", func(t *testing.T) {
		rec := do(f.m.Require(whoami), withCookie(httptest.NewRequest("GET", "/", nil), name, "nonsense"))
		if rec.Code != 401 || decodeFailure(t, rec).Error != httpsession.KindInvalid {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		c := rec.Result().Cookies()
		if len(c) != 1 || c[0].MaxAge != -1 || c[0].Name != name {
			t.Fatalf("cookie not cleared: %v", c)
		}
	})
	t.Run("bearer gets WWW-Authenticate", func(t *testing.T) {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Authorization", "Bearer nonsense")
		rec := do(f.m.Require(whoami), req)
		if rec.Code != 401 || !strings.Contains(rec.Header().Get("WWW-Authenticate"), "invalid_token") {
			t.Fatalf("%d %v", rec.Code, rec.Header())
		}
		if len(rec.Result().Cookies()) != 0 {
			t.Fatal("bearer failure touched cookies")
		}
	})
	t.Run("expired", func(t *testing.T) {
		res := f.login(t, "erin", "1.1.1.1")
		f.now.Add((sessioncap.DefaultIdleTimeout + time.Minute).Milliseconds())
		rec := do(f.m.Require(whoami), withCookie(httptest.NewRequest("GET", "/", nil), name, res.Token))
		if rec.Code != 401 || decodeFailure(t, rec).Error != httpsession.KindExpired {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		if len(rec.Result().Cookies()) != 0 {
			t.Fatal("an expired cookie is kept: it may be a request racing a Rotate")
		}
	})
	t.Run("evicted JSON names the new device", func(t *testing.T) {
		old := f.login(t, "carol", "1.1.1.1")
		f.now.Add(1000)
		fresh := f.login(t, "carol", "2.2.2.2")
		rec := do(f.m.Require(whoami), withCookie(httptest.NewRequest("GET", "/", nil), name, old.Token))
		got := decodeFailure(t, rec)
		if rec.Code != 401 || got.Error != httpsession.KindEvicted || got.ReplacedBy == nil ||
			got.ReplacedBy.SessionID != fresh.SessionID || got.ReplacedBy.IP != "2.2.2.2" ||
			got.ReplacedBy.UserAgent != "agent-2.2.2.2" || got.At == nil || got.Reason != "limit" {
			t.Fatalf("%d %+v", rec.Code, got)
		}
		if len(rec.Result().Cookies()) != 0 {
			t.Fatal("an evicted cookie is kept so the device keeps learning why")
		}
	})
	t.Run("evicted HTML for browsers", func(t *testing.T) {
		old := f.login(t, "dave", "1.1.1.1")
		f.login(t, "dave", "3.3.3.3")
		req := withCookie(httptest.NewRequest("GET", "/", nil), name, old.Token)
		req.Header.Set("Accept", "text/html,application/xhtml+xml")
		rec := do(f.m.Require(whoami), req)
		if rec.Code != 401 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") ||
			!strings.Contains(rec.Body.String(), "3.3.3.3") {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
	})
	t.Run("revoked", func(t *testing.T) {
		res := f.login(t, "frank", "1.1.1.1")
		if err := f.engine.Revoke(ctx, "frank", res.SessionID); err != nil {
			t.Fatal(err)
		}
		rec := do(f.m.Require(whoami), withCookie(httptest.NewRequest("GET", "/", nil), name, res.Token))
		if got := decodeFailure(t, rec); rec.Code != 401 || got.Error != httpsession.KindRevoked || got.Reason != "revoked" {
			t.Fatalf("%d %+v", rec.Code, got)
		}
	})
	t.Run("Load passes with the reason", func(t *testing.T) {
		old := f.login(t, "gina", "1.1.1.1")
		f.login(t, "gina", "4.4.4.4")
		var got error
		h := f.m.Load(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got = httpsession.ErrFromContext(r.Context())
			whoami(w, r)
		}))
		rec := do(h, withCookie(httptest.NewRequest("GET", "/", nil), name, old.Token))
		var ev *sessioncap.EvictedError
		if rec.Code != 200 || rec.Body.String() != "anonymous" || !errors.As(got, &ev) || ev.By.IP != "4.4.4.4" {
			t.Fatalf("%d %q %v", rec.Code, rec.Body, got)
		}
	})
	t.Run("custom handler", func(t *testing.T) {
		called := false
		m := httpsession.New(f.engine, httpsession.Options{OnMissing: func(w http.ResponseWriter, r *http.Request, err error) {
			called = errors.Is(err, httpsession.ErrNoToken)
			http.Redirect(w, r, "/login", http.StatusSeeOther)
		}})
		rec := do(m.Require(whoami), httptest.NewRequest("GET", "/", nil))
		if !called || rec.Code != http.StatusSeeOther {
			t.Fatalf("%v %d", called, rec.Code)
		}
	})
}

// TestUnavailableIs503 checks that a dead Redis never reads as signed out
// or, worse, as signed in: both Require and Load answer 503.
func TestUnavailableIs503(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sessioncap.Config{}, httpsession.Options{})
	res := f.login(t, "alice", "1.1.1.1")
	f.mini.Close()
	for name, h := range map[string]http.Handler{"require": f.m.Require(whoami), "load": f.m.Load(whoami)} {
		rec := do(h, withCookie(httptest.NewRequest("GET", "/", nil), f.m.CookieName(), res.Token))
		if rec.Code != 503 || decodeFailure(t, rec).Error != httpsession.KindUnavailable || rec.Header().Get("Retry-After") == "" {
			t.Fatalf("%s: %d %s", name, rec.Code, rec.Body)
		}
		if len(rec.Result().Cookies()) != 0 {
			t.Fatalf("%s: an outage must not clear the cookie", name)
		}
	}

	// A dead address, never listened on, behaves the same.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer client.Close()
	e, _ := sessioncap.New(client, sessioncap.Config{})
	m := httpsession.New(e, httpsession.Options{})
	rec := do(m.Require(whoami), withCookie(httptest.NewRequest("GET", "/", nil), m.CookieName(), res.Token))
	if rec.Code != 503 {
		t.Fatalf("dead address: %d %s", rec.Code, rec.Body)
	}
}

func TestSaveAtEnd(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sessioncap.Config{}, httpsession.Options{})
	res := f.login(t, "alice", "1.1.1.1")
	name := f.m.CookieName()
	incr := f.m.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := httpsession.FromContext(r.Context())
		s.Values["n"] += "x"
		w.Header().Set("X-Handler", "yes")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "ok")
	}))
	for i := 0; i < 2; i++ {
		rec := do(incr, withCookie(httptest.NewRequest("POST", "/", nil), name, res.Token))
		if rec.Code != http.StatusAccepted || rec.Body.String() != "ok" || rec.Header().Get("X-Handler") != "yes" {
			t.Fatalf("%d %q", rec.Code, rec.Body)
		}
	}
	if f.ops.get(sessioncap.OpSave) != 2 {
		t.Fatalf("saves %d", f.ops.get(sessioncap.OpSave))
	}
	rec := do(f.m.Require(whoami), withCookie(httptest.NewRequest("GET", "/", nil), name, res.Token))
	if rec.Body.String() != "alice:xx" {
		t.Fatalf("%q", rec.Body)
	}
	if f.ops.get(sessioncap.OpSave) != 2 {
		t.Fatal("a request that changed nothing saved")
	}
}

// TestFailedSaveBecomesErrorResponse: a session revoked while its request
// runs must not come back, and the handler's 200 must not go out as if its
// change had been stored.
func TestFailedSaveBecomesErrorResponse(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sessioncap.Config{}, httpsession.Options{})
	res := f.login(t, "alice", "1.1.1.1")
	h := f.m.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := httpsession.FromContext(r.Context())
		if err := f.engine.Revoke(r.Context(), "alice", s.ID); err != nil {
			t.Error(err)
		}
		s.Values["cart"] = "1"
		w.Header().Set("X-Handler", "yes")
		io.WriteString(w, "saved your cart")
	}))
	rec := do(h, withCookie(httptest.NewRequest("POST", "/", nil), f.m.CookieName(), res.Token))
	if rec.Code != 401 || strings.Contains(rec.Body.String(), "cart") || rec.Header().Get("X-Handler") != "" {
		t.Fatalf("%d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	if got := decodeFailure(t, rec); got.Error != httpsession.KindRevoked {
		t.Fatalf("%+v", got)
	}
}

func TestRotateAndLogout(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sessioncap.Config{MaxSessions: 3}, httpsession.Options{})
	ctx := context.Background()
	res := f.login(t, "alice", "1.1.1.1")
	other := f.login(t, "alice", "2.2.2.2")
	name := f.m.CookieName()

	var fresh string
	rec := do(f.m.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var err error
		if fresh, err = f.m.Rotate(w, r); err != nil {
			t.Error(err)
		}
	})), withCookie(httptest.NewRequest("POST", "/", nil), name, res.Token))
	c := rec.Result().Cookies()
	if rec.Code != 200 || len(c) != 1 || c[0].Value != fresh || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("%d %v", rec.Code, c)
	}
	if _, err := f.engine.Validate(ctx, res.Token); err == nil {
		t.Fatal("old token still works after Rotate")
	}

	var ended []string
	do(f.m.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ended, _ = f.m.LogoutOthers(r)
	})), withCookie(httptest.NewRequest("POST", "/", nil), name, fresh))
	if len(ended) != 1 || ended[0] != other.SessionID {
		t.Fatalf("ended %v", ended)
	}

	rec = do(f.m.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := f.m.Logout(w, r); err != nil {
			t.Error(err)
		}
	})), withCookie(httptest.NewRequest("POST", "/", nil), name, fresh))
	c = rec.Result().Cookies()
	if len(c) != 1 || c[0].MaxAge != -1 || c[0].Value != "" {
		t.Fatalf("logout cookie %v", c)
	}
	if _, err := f.engine.Validate(ctx, fresh); !errors.Is(err, sessioncap.ErrRevoked) {
		t.Fatalf("after logout: %v", err)
	}
}

// TestStreamingFlush runs a real server so that http.ResponseController has
// a real connection under the wrapper: the first event must reach the
// client while the handler is still running, and deadlines must reach the
// server's writer through Unwrap.
func TestStreamingFlush(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sessioncap.Config{}, httpsession.Options{})
	res := f.login(t, "alice", "1.1.1.1")
	release := make(chan struct{})
	handlerErr := make(chan error, 1)
	srv := httptest.NewServer(f.m.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			handlerErr <- err
			return
		}
		httpsession.FromContext(r.Context()).Values["streamed"] = "1"
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		if err := rc.Flush(); err != nil {
			handlerErr <- err
			return
		}
		// Changed after the response started: saved when the handler ends.
		httpsession.FromContext(r.Context()).Values["after"] = "1"
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		io.WriteString(w, "data: second\n\n")
		handlerErr <- nil
	})))
	defer srv.Close()

	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Authorization", "Bearer "+res.Token)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("headers %v", resp.Header)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("%q %v", line, err)
	}
	// The save happened before the first byte went out.
	s, err := f.engine.Validate(context.Background(), res.Token)
	if err != nil || s.Values["streamed"] != "1" {
		t.Fatalf("%+v %v", s, err)
	}
	close(release)
	if err := <-handlerErr; err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	srv.Close() // waits for the handler and its final save
	s, err = f.engine.Validate(context.Background(), res.Token)
	if err != nil || s.Values["after"] != "1" {
		t.Fatalf("late change lost: %+v %v", s, err)
	}
}

func TestLargeBodyStreamsPastBufferLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sessioncap.Config{}, httpsession.Options{BufferLimit: 10})
	res := f.login(t, "alice", "1.1.1.1")
	body := strings.Repeat("abcdefgh", 100)
	rec := do(f.m.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 100; i++ {
			io.WriteString(w, "abcdefgh")
		}
	})), withCookie(httptest.NewRequest("GET", "/", nil), f.m.CookieName(), res.Token))
	if rec.Code != 200 || rec.Body.String() != body || !rec.Flushed && rec.Body.Len() != len(body) {
		t.Fatalf("%d %d", rec.Code, rec.Body.Len())
	}
}

func TestUnwrap(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sessioncap.Config{}, httpsession.Options{})
	res := f.login(t, "alice", "1.1.1.1")
	var inner http.ResponseWriter
	rec := httptest.NewRecorder()
	f.m.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			t.Fatal("no Unwrap")
		}
		inner = u.Unwrap()
		if _, ok := w.(http.Flusher); !ok {
			t.Fatal("not a Flusher")
		}
	})).ServeHTTP(rec, withCookie(httptest.NewRequest("GET", "/", nil), f.m.CookieName(), res.Token))
	if inner != rec {
		t.Fatal("Unwrap does not return the server's writer")
	}
}

// TestDescribeBareSentinels: an app may hand the handlers a bare sentinel
// (a wrapped ErrEvicted without the rich type); that must not panic.
func TestDescribeBareSentinels(t *testing.T) {
	t.Parallel()
	for _, err := range []error{sessioncap.ErrEvicted, sessioncap.ErrRevoked, sessioncap.ErrExpired,
		sessioncap.ErrInvalidToken, sessioncap.ErrUnavailable, httpsession.ErrNoToken, errors.New("other")} {
		f := httpsession.Describe(err)
		if f.Message == "" || f.Status() < 400 {
			t.Fatalf("%v: %+v", err, f)
		}
		rec := httptest.NewRecorder()
		httpsession.DefaultErrorHandler(rec, httptest.NewRequest("GET", "/", nil), err)
		if rec.Code != f.Status() {
			t.Fatalf("%v: %d", err, rec.Code)
		}
	}
	if httpsession.Describe(errors.New("x")).Status() != 500 || httpsession.Describe(sessioncap.ErrUnavailable).Status() != 503 {
		t.Fatal("status mapping")
	}
}
