package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap"
	"github.com/sessioncap/sessioncap/extra/sessioncapprom"
	"github.com/sessioncap/sessioncap/httpsession"
)

//go:embed templates static
var assets embed.FS

// Permissions of the admin console, after django-single-session: "logout"
// may sign out ordinary users, "logout_all" may sign out admins too.
const (
	permLogout    = "logout"
	permLogoutAll = "logout_all"
)

// account is a demo user. Passwords are compared as SHA-256 digests in
// constant time; a real app would use a password hash such as argon2id.
type account struct {
	name   string
	digest [32]byte
	admin  bool
	perm   string // "", permLogout or permLogoutAll
}

func demoAccounts() map[string]*account {
	mk := func(name, pw string, admin bool, perm string) *account {
		return &account{name: name, digest: sha256.Sum256([]byte(pw)), admin: admin, perm: perm}
	}
	return map[string]*account{
		"alice": mk("alice", "demo", false, ""),
		"bob":   mk("bob", "demo", false, ""),
		"carol": mk("carol", "demo", false, ""),
		"admin": mk("admin", "admin", true, permLogout),
		"root":  mk("root", "root", true, permLogoutAll),
	}
}

// appConfig is what the flags set.
type appConfig struct {
	RedisURL        string // empty: in-process miniredis
	MaxSessions     int
	Overflow        sessioncap.Overflow
	IdleTimeout     time.Duration
	AbsoluteTimeout time.Duration
	Insecure        bool
	Logger          *slog.Logger
	// RequestTimeout is each request's deadline (deadline.go); 0 means
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
	// Tracer and Instrument are hooks for tracing: Tracer goes into
	// Config.Tracer, Instrument is given the Redis client first (redisotel).
	Tracer     sessioncap.Tracer
	Instrument func(redis.UniversalClient) error
	// StreamsPerSession and StreamsPerUser cap open /api/events streams
	// (streams.go); 0 means 4 and 16.
	StreamsPerSession, StreamsPerUser int
}

// app is the demo: an engine, the middleware and the handlers.
type app struct {
	cfg      appConfig
	engine   *sessioncap.Engine
	sess     *httpsession.Manager
	metrics  *sessioncapprom.Collector
	client   redis.UniversalClient
	mini     *miniredis.Miniredis
	accounts map[string]*account
	log      *slog.Logger
	backend  string
	registry *prometheus.Registry
	streams  streamCaps // open /api/events streams, capped
	ticket   [32]byte   // HMAC key of the reject chooser's tickets (chooser.go)
}

func newApp(cfg appConfig) (*app, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &app{cfg: cfg, accounts: demoAccounts(), log: cfg.Logger, metrics: sessioncapprom.NewCollector()}
	events := sessioncap.EventsPubSub
	if cfg.RedisURL == "" {
		m, err := miniredis.Run()
		if err != nil {
			return nil, err
		}
		a.mini = m
		a.client = redis.NewClient(&redis.Options{Addr: m.Addr(), ContextTimeoutEnabled: true})
		a.backend = "in-process miniredis at " + m.Addr() + " (sessions are lost on exit)"
	} else {
		t, err := parseRedisURL(cfg.RedisURL)
		if err != nil {
			return nil, err
		}
		a.client = t.client()
		events = t.events
		a.backend = t.kind + " " + strings.Join(t.addrs, ",")
	}
	if cfg.Instrument != nil {
		if err := cfg.Instrument(a.client); err != nil {
			a.Close()
			return nil, err
		}
	}
	e, err := sessioncap.New(a.client, sessioncap.Config{
		MaxSessions:     cfg.MaxSessions,
		Overflow:        cfg.Overflow,
		IdleTimeout:     cfg.IdleTimeout,
		AbsoluteTimeout: cfg.AbsoluteTimeout,
		HistoryLimit:    50,
		Events:          events,
		Limiter:         sessioncap.LimitFunc(a.limit),
		Logger:          cfg.Logger,
		Observer:        a.metrics,
		Tracer:          cfg.Tracer,
	})
	if err != nil {
		a.Close()
		return nil, err
	}
	a.engine = e
	if _, err := rand.Read(a.ticket[:]); err != nil {
		a.Close()
		return nil, err
	}
	a.sess = httpsession.New(e, httpsession.Options{
		Insecure: cfg.Insecure,
		Logger:   cfg.Logger,
		// Every failure gets the demo's own page or JSON (endings.go).
		OnMissing: a.failure, OnInvalid: a.failure, OnExpired: a.failure, OnEvicted: a.failure,
		OnRevoked: a.failure, OnUnavailable: a.failure, OnError: a.failure,
	})
	a.registry = prometheus.NewRegistry()
	a.registry.MustRegister(a.metrics, collectors.NewGoCollector())
	return a, nil
}

// limit is the Limiter: admins are never capped, so an operator signed in
// on several consoles does not sign themselves out.
func (a *app) limit(_ context.Context, user string) (int, error) {
	if acc := a.accounts[user]; acc != nil && acc.admin {
		return sessioncap.Unlimited, nil
	}
	return 0, nil // Config.MaxSessions
}

// Close releases the Redis client and the embedded server.
func (a *app) Close() {
	if a.client != nil {
		a.client.Close()
	}
	if a.mini != nil {
		a.mini.Close()
	}
}

// checkPassword returns the account when user and password match. The
// digest comparison is constant-time, and an unknown user costs the same.
func (a *app) checkPassword(user, password string) *account {
	d := sha256.Sum256([]byte(password))
	acc := a.accounts[user]
	want := [32]byte{}
	if acc != nil {
		want = acc.digest
	}
	if subtle.ConstantTimeCompare(d[:], want[:]) != 1 || acc == nil {
		return nil
	}
	return acc
}

// mayLogOut says whether actor may sign target out from the admin console.
func (a *app) mayLogOut(actor *account, target string) bool {
	if actor == nil || !actor.admin || actor.perm == "" {
		return false
	}
	t := a.accounts[target]
	if t != nil && t.admin {
		return actor.perm == permLogoutAll
	}
	return true
}

// accountNames lists the demo accounts in a stable order.
func (a *app) accountNames() []string {
	names := make([]string, 0, len(a.accounts))
	for n := range a.accounts {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// adminLogout signs out users on behalf of actor: all or nothing, so an
// unknown or refused name does not leave the others half done. The ended
// devices are told which administrator acted (Actor.Admin).
func (a *app) adminLogout(ctx context.Context, actor *account, users []string) (n int, unknown, forbidden []string, err error) {
	for _, u := range users {
		switch {
		case a.accounts[u] == nil:
			unknown = append(unknown, u)
		case !a.mayLogOut(actor, u):
			forbidden = append(forbidden, u)
		}
	}
	if len(unknown) > 0 || len(forbidden) > 0 || len(users) == 0 {
		return 0, unknown, forbidden, nil
	}
	n, err = a.engine.LogoutAllWith(ctx, sessioncap.EndOptions{
		Reason: sessioncap.ReasonAdmin,
		By:     sessioncap.Actor{Admin: actor.name},
	}, users...)
	if err == nil {
		a.log.Info("admin logout", "actor", actor.name, "users", users, "sessions", n)
	}
	return n, nil, nil, err
}

// handler builds the routes. Cross-origin protection covers every
// state-changing request; see the README for the CSRF reasoning.
func (a *app) handler() http.Handler {
	mux := http.NewServeMux()
	load, require := a.sess.Load, a.sess.Require

	static, _ := fs.Sub(assets, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{}))

	// Pages.
	mux.Handle("GET /{$}", load(http.HandlerFunc(a.pageHome)))
	mux.Handle("GET /login", load(http.HandlerFunc(a.pageLogin)))
	mux.Handle("POST /login", load(http.HandlerFunc(a.pageLoginPost)))
	mux.Handle("GET /devices", load(http.HandlerFunc(a.pageDevices)))
	mux.Handle("POST /devices/{id}/revoke", load(http.HandlerFunc(a.pageRevoke)))
	mux.Handle("POST /devices/logout-others", load(http.HandlerFunc(a.pageLogoutOthers)))
	mux.Handle("POST /logout", load(http.HandlerFunc(a.pageLogout)))
	mux.Handle("POST /not-me", load(http.HandlerFunc(a.pageNotMe)))
	mux.Handle("GET /admin", load(http.HandlerFunc(a.pageAdmin)))
	mux.Handle("POST /admin/logout", load(http.HandlerFunc(a.pageAdminLogout)))

	// JSON API: the same for cookie and bearer clients.
	mux.Handle("POST /api/login", load(http.HandlerFunc(a.apiLogin)))
	mux.Handle("GET /api/me", require(http.HandlerFunc(a.apiMe)))
	mux.Handle("GET /api/sessions", require(http.HandlerFunc(a.apiSessions)))
	mux.Handle("POST /api/sessions/{id}/revoke", require(http.HandlerFunc(a.apiRevoke)))
	mux.Handle("POST /api/logout", require(http.HandlerFunc(a.apiLogout)))
	mux.Handle("POST /api/logout-others", require(http.HandlerFunc(a.apiLogoutOthers)))
	mux.Handle("POST /api/rotate", require(http.HandlerFunc(a.apiRotate)))
	mux.Handle("POST /api/admin/logout", require(http.HandlerFunc(a.apiAdminLogout)))
	mux.Handle("GET /api/history", require(http.HandlerFunc(a.apiHistory)))
	mux.Handle("GET /api/events", require(http.HandlerFunc(a.apiEvents)))

	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(a.csrfDenied))
	return securityHeaders(withDeadline(a.cfg.RequestTimeout, csrf.Handler(a.styledMisses(mux))))
}

// securityHeaders sets the headers every response wants: no framing
// (clickjacking of the revoke buttons), scripts only from this origin, no
// MIME sniffing, and no Referer to other sites.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// loginMeta is what the app stores in a new session's values.
func loginValues(acc *account) map[string]string {
	if acc.admin {
		return map[string]string{"role": "admin"}
	}
	return map[string]string{"role": "user"}
}

// errLoginFailed covers unknown users and wrong passwords alike.
var errLoginFailed = errors.New("wrong user name or password")

// login checks the password and signs in. With replace (the public ID of
// a session the user chose at a full cap under -overflow reject) the
// sign-in ends that session in the same atomic step (Meta.Replace), so the
// ended device hears "replaced", by this sign-in, and no other sign-in can
// take the freed slot in between.
func (a *app) login(w http.ResponseWriter, r *http.Request, user, password, replace string) (*sessioncap.LoginResult, error) {
	acc := a.checkPassword(user, password)
	if acc == nil {
		a.log.Info("login failed", "user", user)
		return nil, errLoginFailed
	}
	if replace != "" {
		return a.loginWith(w, r, acc, sessioncap.Meta{Replace: replace})
	}
	return a.sess.Login(w, r, user, loginValues(acc))
}

// loginWith signs acc in with Meta options httpsession.Manager.Login does
// not take (Replace, SignOutOthers), and sets the session cookie the way
// the Manager does. A live session the request already had is ended first
// as a sign-out of its own, as the Manager's Login does.
func (a *app) loginWith(w http.ResponseWriter, r *http.Request, acc *account, meta sessioncap.Meta) (*sessioncap.LoginResult, error) {
	if s := httpsession.FromContext(r.Context()); s != nil {
		err := a.engine.RevokeWith(r.Context(), s.UserID, s.ID, sessioncap.EndOptions{Reason: sessioncap.ReasonLogout})
		if err != nil && !errors.Is(err, sessioncap.ErrNotFound) {
			return nil, err
		}
	}
	meta.IP, meta.UserAgent, meta.Values = clientIP(r), r.UserAgent(), loginValues(acc)
	res, err := a.engine.Login(r.Context(), acc.name, meta)
	if err != nil {
		return nil, err
	}
	http.SetCookie(w, &http.Cookie{
		Name: a.sess.CookieName(), Value: res.Token, Path: "/",
		HttpOnly: true, Secure: !a.cfg.Insecure, SameSite: http.SameSiteLaxMode,
	})
	w.Header().Set("Cache-Control", "no-store")
	return res, nil
}

// clientIP is the address httpsession records by default: the peer's.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// sessionJSON is a session as the API and pages show it.
type sessionJSON struct {
	SessionID  string    `json:"session_id"`
	User       string    `json:"user"`
	Device     string    `json:"device"`
	IP         string    `json:"ip"`
	UserAgent  string    `json:"user_agent"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	Current    bool      `json:"current"`
}

func toJSON(s *sessioncap.Session, current string) sessionJSON {
	return sessionJSON{
		SessionID: s.ID, User: s.UserID, Device: s.DeviceName(), IP: s.IP, UserAgent: s.UserAgent,
		CreatedAt: s.CreatedAt.UTC(), LastSeenAt: s.LastSeenAt.UTC(), ExpiresAt: s.ExpiresAt.UTC(),
		Current: s.ID == current,
	}
}

func listJSON(list []sessioncap.Session, current string) []sessionJSON {
	out := make([]sessionJSON, 0, len(list))
	for i := range list {
		out = append(out, toJSON(&list[i], current))
	}
	return out
}
