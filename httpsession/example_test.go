package httpsession_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap"
	"github.com/sessioncap/sessioncap/httpsession"
)

// Example signs a user in on two devices under a cap of one and shows what
// the first device is told: why, when, and which device, by name.
func Example() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	clock := func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) } // a fixed clock, for the output
	engine, _ := sessioncap.New(redis.NewClient(&redis.Options{Addr: mr.Addr()}), sessioncap.Config{MaxSessions: 1, Now: clock})
	sess := httpsession.New(engine, httpsession.Options{})

	mux := http.NewServeMux()
	mux.Handle("POST /login", sess.Load(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Check the password first; then:
		if _, err := sess.Login(w, r, "alice", nil); err != nil {
			httpsession.DefaultErrorHandler(w, r, err)
		}
	})))
	mux.Handle("GET /me", sess.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := httpsession.FromContext(r.Context())
		s.Values["visits"] += "I" // saved before the response is sent
		fmt.Fprintf(w, "hello %s, visits %s", s.UserID, s.Values["visits"])
	})))

	signIn := func(ua, ip string) *http.Cookie {
		req := httptest.NewRequest("POST", "/login", nil)
		req.Header.Set("User-Agent", ua)
		req.RemoteAddr = ip + ":1234"
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec.Result().Cookies()[0]
	}
	me := func(c *http.Cookie) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/me", nil)
		req.AddCookie(c)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec
	}

	laptop := signIn("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36", "192.0.2.9")
	fmt.Println(laptop.Name, laptop.HttpOnly, laptop.Secure, laptop.SameSite == http.SameSiteLaxMode)
	for range 2 {
		rec := me(laptop)
		fmt.Println(rec.Code, rec.Body)
	}
	signIn("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1", "198.51.100.2")
	rec := me(laptop)
	var f httpsession.Failure
	_ = json.Unmarshal(rec.Body.Bytes(), &f)
	fmt.Println(rec.Code, f.Error, f.Reason, f.At.Format(time.RFC3339), f.By.Name, f.By.IP)
	fmt.Println(f.Message)
	// Output:
	// __Host-session true true true
	// 200 hello alice, visits I
	// 200 hello alice, visits II
	// 401 evicted limit 2026-01-02T03:04:05Z Safari on iPhone 198.51.100.2
	// You were signed out because your account signed in on another device (Safari on iPhone, 198.51.100.2) at 2026-01-02T03:04:05Z.
}

// Example_routes is the middleware as an app wires it: a sign-in route that
// sets the cookie, and a route that needs a live session.
func Example_routes() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	engine, _ := sessioncap.New(redis.NewClient(&redis.Options{Addr: mr.Addr()}), sessioncap.Config{})

	sess := httpsession.New(engine, httpsession.Options{}) // OWASP defaults
	mux := http.NewServeMux()
	mux.Handle("POST /login", sess.Load(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// check the password first, then:
		sess.Login(w, r, r.FormValue("user"), nil)
	})))
	mux.Handle("GET /account", sess.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := httpsession.FromContext(r.Context()) // the live *sessioncap.Session
		s.Values["theme"] = "dark"                // saved before the response is sent
		fmt.Fprintln(w, "signed in as", s.UserID)
	})))

	login := httptest.NewRecorder()
	mux.ServeHTTP(login, httptest.NewRequest("POST", "/login?user=alice", nil))
	account := httptest.NewRequest("GET", "/account", nil)
	account.AddCookie(login.Result().Cookies()[0])
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, account)
	fmt.Print(rec.Code, " ", rec.Body)
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/account", nil))
	fmt.Println(rec.Code)
	// Output:
	// 200 signed in as alice
	// 401
}
