package httpsession_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap"
	"github.com/sessioncap/sessioncap/httpsession"
)

// Example signs a user in on two devices under a cap of one and shows what
// the first device is told.
func Example() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	engine, _ := sessioncap.New(redis.NewClient(&redis.Options{Addr: mr.Addr()}), sessioncap.Config{MaxSessions: 1})
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

	signIn := func(ua string) *http.Cookie {
		req := httptest.NewRequest("POST", "/login", nil)
		req.Header.Set("User-Agent", ua)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec.Result().Cookies()[0]
	}
	me := func(c *http.Cookie) string {
		req := httptest.NewRequest("GET", "/me", nil)
		req.AddCookie(c)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return fmt.Sprintf("%d %s", rec.Code, strings.TrimSpace(rec.Body.String()))
	}

	laptop := signIn("Laptop")
	fmt.Println(laptop.Name, laptop.HttpOnly, laptop.Secure, laptop.SameSite == http.SameSiteLaxMode)
	fmt.Println(me(laptop))
	fmt.Println(me(laptop))
	signIn("Phone")
	out := me(laptop)
	fmt.Println(out[:3], strings.Contains(out, `"error":"evicted"`), strings.Contains(out, `"user_agent":"Phone"`))
	// Output:
	// __Host-session true true true
	// 200 hello alice, visits I
	// 200 hello alice, visits II
	// 401 true true
}
