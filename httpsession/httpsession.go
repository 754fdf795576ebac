// Package httpsession is net/http middleware for sessioncap: it finds the
// request's token in a cookie or an Authorization: Bearer header, validates it
// with one Engine.Validate call, puts the session in the request context and
// saves changed session values once, before the response goes out.
//
// It lives in its own package so that the engine stays usable from any
// transport (gRPC, WebSocket servers, job workers) without pulling in cookie
// policy, and so that apps with their own HTTP stack can ignore it.
//
// A request's session is read with FromContext; Login, Rotate, Logout and
// LogoutOthers on the Manager change it and set or clear the cookie. Every
// failure (no token, a malformed one, an expired, evicted or revoked
// session, Redis unavailable) goes to a handler of its own, each
// replaceable; the defaults answer 401 (503 for Redis) with a JSON or HTML
// body chosen by the Accept header, and a signed-out device is told why,
// when and who acted: the acting device by name and IP, or the
// administrator (see Describe).
package httpsession

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/sessioncap/sessioncap"
)

// DefaultCookieName is the cookie's name without the __Host- prefix, which
// is added whenever the cookie is Secure.
const DefaultCookieName = "session"

// DefaultBufferLimit is how much of a response body is held back, waiting
// for the session to be saved, before the middleware saves early and starts
// streaming.
const DefaultBufferLimit = 1 << 20

// ErrorHandler answers a request whose session could not be used. err is
// the engine's error, so errors.As reaches *sessioncap.EvictedError and
// *sessioncap.RevokedError.
type ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)

// Options configures a Manager. The zero value gives the OWASP-style
// defaults documented on each field.
type Options struct {
	// CookieName is the session cookie's name. Default "session", sent as
	// "__Host-session" when the cookie is Secure: the prefix makes the
	// browser refuse the cookie unless it is Secure, has Path=/ and no
	// Domain, so a sibling subdomain or a plain-HTTP page cannot plant or
	// overwrite it.
	CookieName string

	// Insecure drops the Secure attribute and the __Host- prefix, for local
	// development over plain HTTP (http://localhost). Never set it in
	// production: the token would then travel in clear text.
	Insecure bool

	// SameSite defaults to http.SameSiteLaxMode: the cookie is not sent on
	// cross-site subrequests or POSTs, which stops classic CSRF, but it is
	// sent on top-level links, so following a link into the app keeps the
	// user signed in.
	SameSite http.SameSite

	// Persistent gives the cookie an Expires equal to the session's
	// absolute timeout, so it survives a browser restart. Default false: a
	// browser session cookie, which OWASP prefers for sessions.
	Persistent bool

	// NoBearer ignores the Authorization header, for apps that serve only
	// browsers. Default false: "Authorization: Bearer <token>" is read, and
	// wins over the cookie when both are present.
	NoBearer bool

	// ClientIP extracts the client's address for the session metadata.
	// Default: the host part of r.RemoteAddr. Behind a reverse proxy, parse
	// the proxy's header here, trusting only the proxies you run.
	ClientIP func(r *http.Request) string

	// BufferLimit bounds how much response body is buffered before the
	// session is saved and the response starts streaming. Default
	// DefaultBufferLimit. A save failure after that can no longer change the
	// response; it is logged instead.
	BufferLimit int

	// The failure handlers. Each defaults to DefaultErrorHandler (linking
	// Stylesheet when set), which picks the status (401, or 503 for
	// OnUnavailable, 500 for OnError) and a JSON or HTML body from the
	// Accept header.
	OnMissing     ErrorHandler // Require found no token: err is ErrNoToken
	OnInvalid     ErrorHandler // the token is malformed (ErrInvalidToken)
	OnExpired     ErrorHandler // ErrExpired: timed out, unknown, or wrong secret
	OnEvicted     ErrorHandler // *sessioncap.EvictedError
	OnRevoked     ErrorHandler // *sessioncap.RevokedError
	OnUnavailable ErrorHandler // sessioncap.ErrUnavailable: never treated as signed out
	OnError       ErrorHandler // anything else, such as values too large to save

	// Stylesheet is the URL of a stylesheet the default HTML failure pages
	// link (<link rel="stylesheet">), such as "/static/app.css", so they
	// match the app's look under a Content-Security-Policy that allows
	// only its own styles. The pages carry no inline style either way;
	// without a stylesheet they are plain semantic HTML that reads well
	// unstyled. Their body has the classes "sessioncap-failure" and
	// "sessioncap-<kind>" ("sessioncap-evicted", see FailureKind) to style
	// them by. Default: none. Only the default handlers, and
	// Manager.WriteFailure, use it.
	Stylesheet string

	// Logger receives the errors that can no longer reach the client (a save
	// that failed after streaming began). Default: discard.
	Logger *slog.Logger
}

// ErrNoToken is what OnMissing receives: the request carried neither the
// session cookie nor a bearer token.
var ErrNoToken = errors.New("httpsession: no session token")

// Manager holds the middleware's configuration. It is safe for concurrent
// use; build one per Engine with New.
type Manager struct {
	engine *sessioncap.Engine
	opt    Options
	cookie string
}

// New returns a Manager for engine with opt's defaults filled in.
func New(engine *sessioncap.Engine, opt Options) *Manager {
	if opt.CookieName == "" {
		opt.CookieName = DefaultCookieName
	}
	if opt.SameSite == 0 {
		opt.SameSite = http.SameSiteLaxMode
	}
	if opt.ClientIP == nil {
		opt.ClientIP = remoteHost
	}
	if opt.BufferLimit <= 0 {
		opt.BufferLimit = DefaultBufferLimit
	}
	def := DefaultErrorHandler
	if sheet := opt.Stylesheet; sheet != "" {
		def = func(w http.ResponseWriter, r *http.Request, err error) {
			writeFailure(w, r, Describe(err), sheet)
		}
	}
	for _, h := range []*ErrorHandler{&opt.OnMissing, &opt.OnInvalid, &opt.OnExpired, &opt.OnEvicted,
		&opt.OnRevoked, &opt.OnUnavailable, &opt.OnError} {
		if *h == nil {
			*h = def
		}
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	name := opt.CookieName
	if !opt.Insecure && !strings.HasPrefix(name, "__Host-") {
		name = "__Host-" + name
	}
	return &Manager{engine: engine, opt: opt, cookie: name}
}

// Engine returns the engine the Manager validates against.
func (m *Manager) Engine() *sessioncap.Engine { return m.engine }

// CookieName returns the cookie's name as sent, prefix included.
func (m *Manager) CookieName() string { return m.cookie }

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// state is the per-request session state the context carries. It is a
// pointer so that Login, Rotate and Logout inside the handler are seen by
// the middleware when it commits.
type state struct {
	session  *sessioncap.Session
	token    string
	bearer   bool              // the token came from the Authorization header
	snapshot map[string]string // Values as loaded, to save only on change
	err      error             // why the request has no session (Load only)
	cookie   *http.Cookie      // a Set-Cookie to send with the response
}

type ctxKey struct{}

func stateOf(ctx context.Context) *state {
	s, _ := ctx.Value(ctxKey{}).(*state)
	return s
}

// FromContext returns the request's session, or nil when it has none. Change
// its Values freely; the middleware saves them once, before the response.
func FromContext(ctx context.Context) *sessioncap.Session {
	if s := stateOf(ctx); s != nil {
		return s.session
	}
	return nil
}

// ErrFromContext returns why a request passed through Load has no session:
// nil when it has one or carried no token at all, otherwise the engine's
// error (an *EvictedError, say), so a page can explain the sign-out.
func ErrFromContext(ctx context.Context) error {
	if s := stateOf(ctx); s != nil {
		return s.err
	}
	return nil
}

// tokenOf finds the request's token: the bearer header first, since a client
// that sends one means it, then the cookie.
func (m *Manager) tokenOf(r *http.Request) (token string, bearer bool) {
	if !m.opt.NoBearer {
		if h := r.Header.Get("Authorization"); h != "" {
			scheme, tok, ok := strings.Cut(h, " ")
			if ok && strings.EqualFold(scheme, "Bearer") {
				return strings.TrimSpace(tok), true
			}
		}
	}
	if c, err := r.Cookie(m.cookie); err == nil {
		return c.Value, false
	}
	return "", false
}

// Require serves next only for requests with a live session; every other
// request goes to the matching failure handler.
func (m *Manager) Require(next http.Handler) http.Handler {
	return m.handle(next, true)
}

// Load serves next whether or not the request has a live session: without
// one, FromContext is nil and ErrFromContext says why (for sign-in pages and
// eviction banners). Redis being unavailable is still answered by
// OnUnavailable, never passed on as "signed out".
func (m *Manager) Load(next http.Handler) http.Handler {
	return m.handle(next, false)
}

func (m *Manager) handle(next http.Handler, required bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := &state{}
		tok, bearer := m.tokenOf(r)
		st.token, st.bearer = tok, bearer
		ctx := context.WithValue(r.Context(), ctxKey{}, st)
		r = r.WithContext(ctx)
		if tok == "" {
			if required {
				m.opt.OnMissing(w, r, ErrNoToken)
				return
			}
		} else {
			sess, err := m.engine.Validate(ctx, tok)
			switch {
			case err == nil:
				st.session = sess
				st.snapshot = maps.Clone(sess.Values)
			case errors.Is(err, sessioncap.ErrUnavailable) || required:
				m.fail(w, r, st, err)
				return
			default:
				st.err = err
				st.token = ""
				m.clearDeadCookie(st, err)
			}
		}
		sw := &responseWriter{rw: w, m: m, r: r, st: st, header: make(http.Header)}
		next.ServeHTTP(sw, r)
		sw.finish()
	})
}

// clearDeadCookie drops a cookie that is not a token at all. Every other
// dead cookie is kept. An evicted or revoked session's tombstone still tells
// the device why it was signed out (until TombstoneTTL), and the "that
// wasn't me" flow needs it to learn whose account it was. An expired one is
// kept because "expired" also covers a token just replaced by Rotate: a
// request still in flight with the old token would otherwise answer with a
// Set-Cookie that deletes the new one.
func (m *Manager) clearDeadCookie(st *state, err error) {
	if st.bearer {
		return
	}
	if errors.Is(err, sessioncap.ErrInvalidToken) {
		st.cookie = m.expiredCookie()
	}
}

// fail answers with the failure handler for err.
func (m *Manager) fail(w http.ResponseWriter, r *http.Request, st *state, err error) {
	m.clearDeadCookie(st, err)
	if st.cookie != nil {
		http.SetCookie(w, st.cookie)
		w.Header().Set("Cache-Control", "no-store")
		st.cookie = nil
	}
	if st.bearer && Kind(err) != KindUnavailable && Kind(err) != KindError {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	m.handlerFor(err)(w, r, err)
}

func (m *Manager) handlerFor(err error) ErrorHandler {
	switch Kind(err) {
	case KindMissing:
		return m.opt.OnMissing
	case KindInvalid:
		return m.opt.OnInvalid
	case KindExpired:
		return m.opt.OnExpired
	case KindEvicted:
		return m.opt.OnEvicted
	case KindRevoked:
		return m.opt.OnRevoked
	case KindUnavailable:
		return m.opt.OnUnavailable
	}
	return m.opt.OnError
}

// commitSession saves changed values; it runs once per request, before the
// first byte of the response leaves.
func (m *Manager) commitSession(ctx context.Context, st *state) error {
	if st.session == nil || maps.Equal(st.session.Values, st.snapshot) {
		return nil
	}
	if err := m.engine.Save(ctx, st.session); err != nil {
		return err
	}
	st.snapshot = maps.Clone(st.session.Values)
	return nil
}

func (m *Manager) sessionCookie(token string, sess *sessioncap.Session) *http.Cookie {
	c := &http.Cookie{
		Name:     m.cookie,
		Value:    token,
		Path:     "/",
		HttpOnly: true,
		Secure:   !m.opt.Insecure,
		SameSite: m.opt.SameSite,
	}
	if m.opt.Persistent && sess != nil {
		c.Expires = sess.AbsoluteAt
	}
	return c
}

func (m *Manager) expiredCookie() *http.Cookie {
	c := m.sessionCookie("", nil)
	c.MaxAge = -1
	return c
}

// setCookie queues a Set-Cookie for the response, or sets it at once when w
// is not under the middleware.
func (m *Manager) setCookie(w http.ResponseWriter, st *state, c *http.Cookie) {
	if st != nil {
		st.cookie = c
		return
	}
	http.SetCookie(w, c)
	w.Header().Set("Cache-Control", "no-store")
}

// Login signs userID in with sessioncap.Engine.Login, records the client's
// IP and User-Agent, sets the session cookie and makes the new session the
// request's session. A live session the request already had is ended
// first, and only that one (even under Config.LogoutEverywhere), so
// signing in again on the same device neither evicts another device nor
// signs the others out: the same user's old session is replaced in the
// same atomic step as the sign-in (Meta.Replace), so it never counts
// against the cap, and the result's Evicted and EvictedDevices leave it
// out, as it was this device; another user's is revoked first, recorded
// as its own logout. Under RejectNew a full cap returns the
// *sessioncap.LimitError.
func (m *Manager) Login(w http.ResponseWriter, r *http.Request, userID string, values map[string]string) (*sessioncap.LoginResult, error) {
	ctx := r.Context()
	st := stateOf(ctx)
	meta := sessioncap.Meta{
		IP:        m.opt.ClientIP(r),
		UserAgent: r.UserAgent(),
		Values:    values,
	}
	if st != nil && st.session != nil {
		old := st.session
		if old.UserID == userID {
			meta.Replace = old.ID
		} else {
			err := m.engine.RevokeWith(ctx, old.UserID, old.ID, sessioncap.EndOptions{
				Reason: sessioncap.ReasonLogout,
				By:     sessioncap.Actor{Session: old},
			})
			if errors.Is(err, sessioncap.ErrUnavailable) {
				return nil, err
			}
			// ErrNotFound: it ended meanwhile. ErrNotReplicated: it ended
			// on the primary. Either way this device is out of it.
			st.session, st.token, st.snapshot = nil, "", nil
		}
	}
	res, err := m.engine.Login(ctx, userID, meta)
	if err != nil {
		return nil, err
	}
	if meta.Replace != "" {
		dropEvicted(res, meta.Replace)
	}
	if st != nil {
		st.session, st.token, st.err = res.Session, res.Token, nil
		st.snapshot = maps.Clone(res.Session.Values)
	}
	m.setCookie(w, st, m.sessionCookie(res.Token, res.Session))
	return res, nil
}

// dropEvicted removes this device's own replaced session from what the
// sign-in reports it ended.
func dropEvicted(res *sessioncap.LoginResult, id string) {
	for i, e := range res.Evicted {
		if e == id {
			res.Evicted = slices.Delete(res.Evicted, i, i+1)
			if i < len(res.EvictedDevices) {
				res.EvictedDevices = slices.Delete(res.EvictedDevices, i, i+1)
			}
			if len(res.Evicted) == 0 {
				res.Evicted, res.EvictedDevices = nil, nil
			}
			return
		}
	}
}

// Rotate gives the request's session a new token and kills the old one (call
// it on a privilege change or re-authentication), resends the cookie when
// the request used one, and returns the new token for bearer clients.
func (m *Manager) Rotate(w http.ResponseWriter, r *http.Request) (string, error) {
	st := stateOf(r.Context())
	if st == nil || st.session == nil {
		return "", ErrNoToken
	}
	tok, err := m.engine.Rotate(r.Context(), st.token)
	if err != nil {
		return "", err
	}
	st.token = tok
	if !st.bearer {
		m.setCookie(w, st, m.sessionCookie(tok, st.session))
	}
	return tok, nil
}

// Logout ends the request's session and clears the cookie. The cookie is
// cleared even when the engine call fails, since the device wants out.
func (m *Manager) Logout(w http.ResponseWriter, r *http.Request) error {
	st := stateOf(r.Context())
	if st == nil {
		return ErrNoToken
	}
	var err error
	if st.token != "" {
		err = m.engine.Logout(r.Context(), st.token)
	} else {
		err = ErrNoToken
	}
	st.session, st.token, st.snapshot = nil, "", nil
	m.setCookie(w, st, m.expiredCookie())
	return err
}

// LogoutOthers ends every other session of the request's user ("sign out
// all other devices") and returns their public IDs.
func (m *Manager) LogoutOthers(r *http.Request) ([]string, error) {
	st := stateOf(r.Context())
	if st == nil || st.session == nil {
		return nil, ErrNoToken
	}
	return m.engine.LogoutOthers(r.Context(), st.token)
}
