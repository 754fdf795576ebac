package main

import (
	"errors"
	"html/template"
	"net/http"
	"time"

	"github.com/sessioncap/sessioncap"
	"github.com/sessioncap/sessioncap/httpsession"
)

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"short": func(id string) string { return id[:min(8, len(id))] },
	"label": func(t string) string {
		if l, ok := eventLabels[sessioncap.Reason(t)]; ok {
			return l
		}
		return t
	},
}

// eventLabels are the history entries as a user would say them.
var eventLabels = map[sessioncap.Reason]string{
	sessioncap.ReasonLogin:            "signed in",
	sessioncap.ReasonLimit:            "evicted",
	sessioncap.ReasonLogout:           "signed out",
	sessioncap.ReasonLogoutOthers:     "signed out by another device",
	sessioncap.ReasonLogoutEverywhere: "signed out everywhere",
	sessioncap.ReasonAdmin:            "signed out by an admin",
	sessioncap.ReasonRevoked:          "revoked",
	sessioncap.ReasonRotated:          "token renewed",
	sessioncap.ReasonExpired:          "expired",
}

func page(name string) *template.Template {
	return template.Must(template.New(name).Funcs(funcs).ParseFS(assets,
		"templates/layout.html", "templates/banner.html", "templates/"+name))
}

var (
	tmplLogin   = page("login.html")
	tmplDevices = page("devices.html")
	tmplAdmin   = page("admin.html")
)

// flashes are the fixed messages a redirect may ask for, by key, so no
// request text is ever reflected into a page.
var flashes = map[string]string{
	"bye":        "You are signed out.",
	"revoked":    "That device is signed out.",
	"others":     "All your other devices are signed out.",
	"everywhere": "Every session of your account was signed out and this device signed in again. If you did not sign in elsewhere, change your password.",
	"admin":      "The selected users are signed out.",
}

// banner explains why this device has no session.
type banner struct {
	Kind    httpsession.FailureKind
	Title   string
	Message string
	At      time.Time
	Device  string // the device that replaced or ended this one
	IP      string
	UA      string
	ByID    string
	NotMe   bool // offer "this wasn't me: sign out everywhere"
}

func bannerFor(err error) *banner {
	if err == nil {
		return nil
	}
	f := httpsession.Describe(err)
	b := &banner{Kind: f.Error, Message: f.Message}
	if f.At != nil {
		b.At = *f.At
	}
	d := f.ReplacedBy
	if d == nil {
		d = f.By
	}
	if d != nil {
		b.Device, b.IP, b.UA, b.ByID = deviceName(d.UserAgent), d.IP, d.UserAgent, d.SessionID
	}
	switch f.Error {
	case httpsession.KindEvicted:
		b.Title = "Your account signed in on another device"
		b.Message = "This device was signed out because the account allows only a limited number of devices at once."
		b.NotMe = true
	case httpsession.KindRevoked:
		if f.Reason == string(sessioncap.ReasonLogout) {
			return nil // the user signed out here; nothing to explain
		}
		b.Title = "This device was signed out"
	case httpsession.KindExpired:
		b.Title = "Your session expired"
	default:
		return nil
	}
	return b
}

type adminRow struct {
	Name     string
	Admin    bool
	Perm     string
	Sessions int
	Allowed  bool
}

// pageData is everything the templates read.
type pageData struct {
	Title     string
	User      string
	Admin     bool
	SessionID string
	Flash     string
	Error     string
	Banner    *banner
	Backend   string

	LoginUser string
	Limit     int
	Full      []sessionJSON // live sessions when a sign-in hit the cap

	Sessions []sessionJSON
	History  []eventJSON

	Accounts []adminRow
	Perm     string
}

func (a *app) render(w http.ResponseWriter, r *http.Request, t *template.Template, status int, d pageData) {
	if s := httpsession.FromContext(r.Context()); s != nil {
		d.User, d.SessionID = s.UserID, s.ID
		d.Admin = a.accounts[s.UserID] != nil && a.accounts[s.UserID].admin
	}
	if d.Flash == "" {
		d.Flash = flashes[r.URL.Query().Get("msg")]
	}
	d.Backend = a.backend
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// Pages show session data: never cache them.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := t.ExecuteTemplate(w, "layout", d); err != nil {
		a.log.Error("template", "error", err.Error())
	}
}

// pageError shows an engine failure on a page; Redis being down gets the
// middleware's 503 page.
func (a *app) pageError(w http.ResponseWriter, r *http.Request, err error) {
	k := httpsession.Kind(err)
	if k == httpsession.KindError || k == httpsession.KindUnavailable {
		a.engineError(w, r, err)
		return
	}
	a.render(w, r, tmplLogin, http.StatusUnauthorized, pageData{Title: "Sign in", Banner: bannerFor(err)})
}

// signedIn returns the request's session, or renders the sign-in page
// (with the reason this device was signed out, if any) and returns nil.
func (a *app) signedIn(w http.ResponseWriter, r *http.Request) *sessioncap.Session {
	if s := httpsession.FromContext(r.Context()); s != nil {
		return s
	}
	a.render(w, r, tmplLogin, http.StatusUnauthorized, pageData{
		Title: "Sign in", Banner: bannerFor(httpsession.ErrFromContext(r.Context())),
	})
	return nil
}

func (a *app) pageHome(w http.ResponseWriter, r *http.Request) {
	if httpsession.FromContext(r.Context()) != nil {
		http.Redirect(w, r, "/devices", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (a *app) pageLogin(w http.ResponseWriter, r *http.Request) {
	if httpsession.FromContext(r.Context()) != nil {
		http.Redirect(w, r, "/devices", http.StatusSeeOther)
		return
	}
	a.render(w, r, tmplLogin, http.StatusOK, pageData{
		Title: "Sign in", Banner: bannerFor(httpsession.ErrFromContext(r.Context())),
	})
}

func (a *app) pageLoginPost(w http.ResponseWriter, r *http.Request) {
	user, pw := r.PostFormValue("user"), r.PostFormValue("password")
	_, err := a.login(w, r, user, pw, r.PostFormValue("revoke"))
	var limit *sessioncap.LimitError
	switch {
	case errors.Is(err, errLoginFailed):
		a.render(w, r, tmplLogin, http.StatusUnauthorized, pageData{Title: "Sign in", LoginUser: user,
			Error: "Wrong user name or password."})
	case errors.As(err, &limit):
		a.render(w, r, tmplLogin, http.StatusConflict, pageData{Title: "Sign in", LoginUser: user,
			Limit: limit.Limit, Full: listJSON(limit.Sessions, "")})
	case err != nil:
		a.pageError(w, r, err)
	default:
		http.Redirect(w, r, "/devices", http.StatusSeeOther)
	}
}

func (a *app) pageDevices(w http.ResponseWriter, r *http.Request) {
	s := a.signedIn(w, r)
	if s == nil {
		return
	}
	list, err := a.engine.Sessions(r.Context(), s.UserID)
	if err != nil {
		a.pageError(w, r, err)
		return
	}
	events, err := a.engine.History(r.Context(), s.UserID, 0, 20)
	if err != nil {
		a.pageError(w, r, err)
		return
	}
	hist := make([]eventJSON, 0, len(events))
	for _, e := range events {
		hist = append(hist, eventToJSON(e))
	}
	a.render(w, r, tmplDevices, http.StatusOK, pageData{Title: "Your devices", Sessions: listJSON(list, s.ID), History: hist})
}

func (a *app) pageRevoke(w http.ResponseWriter, r *http.Request) {
	s := a.signedIn(w, r)
	if s == nil {
		return
	}
	err := a.engine.Revoke(r.Context(), s.UserID, r.PathValue("id"))
	if err != nil && !errors.Is(err, sessioncap.ErrNotFound) && !errors.Is(err, sessioncap.ErrInvalidSessionID) {
		a.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, "/devices?msg=revoked", http.StatusSeeOther)
}

func (a *app) pageLogoutOthers(w http.ResponseWriter, r *http.Request) {
	if a.signedIn(w, r) == nil {
		return
	}
	if _, err := a.sess.LogoutOthers(r); err != nil {
		a.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, "/devices?msg=others", http.StatusSeeOther)
}

func (a *app) pageLogout(w http.ResponseWriter, r *http.Request) {
	err := a.sess.Logout(w, r)
	if httpsession.Kind(err) == httpsession.KindUnavailable {
		a.engineError(w, r, err)
		return
	}
	http.Redirect(w, r, "/login?msg=bye", http.StatusSeeOther)
}

// pageNotMe is "this wasn't me: sign out everywhere" on an evicted device.
//
// The user ID comes from the evicted token's tombstone (the EvictedError),
// never from the form, and the action also needs the account's password.
// Without that, anyone holding an evicted token (a thief whose stolen
// session was just replaced by the owner's sign-in) could sign the owner
// out of every device again and again. With it, the action grants nothing
// the password did not already grant, since signing in elsewhere evicts
// anyway. The fresh session is created after LogoutAll, so it survives.
func (a *app) pageNotMe(w http.ResponseWriter, r *http.Request) {
	cause := httpsession.ErrFromContext(r.Context())
	var ev *sessioncap.EvictedError
	if !errors.As(cause, &ev) {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	acc := a.checkPassword(ev.UserID, r.PostFormValue("password"))
	if acc == nil {
		a.log.Warn("not-me: wrong password", "user", ev.UserID)
		a.render(w, r, tmplLogin, http.StatusUnauthorized, pageData{Title: "Sign in", Banner: bannerFor(cause),
			Error: "Wrong password: nothing was signed out."})
		return
	}
	n, err := a.engine.LogoutAll(r.Context(), ev.UserID)
	if err != nil {
		a.pageError(w, r, err)
		return
	}
	a.log.Warn("not-me: signed out everywhere", "user", ev.UserID, "sessions", n, "evicted_by", ev.By.SessionID)
	if _, err := a.sess.Login(w, r, acc.name, loginValues(acc)); err != nil {
		a.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, "/devices?msg=everywhere", http.StatusSeeOther)
}

func (a *app) adminActor(w http.ResponseWriter, r *http.Request) *account {
	s := a.signedIn(w, r)
	if s == nil {
		return nil
	}
	acc := a.accounts[s.UserID]
	if acc == nil || !acc.admin {
		a.render(w, r, tmplAdmin, http.StatusForbidden, pageData{Title: "Admin", Error: "Admins only."})
		return nil
	}
	return acc
}

func (a *app) renderAdmin(w http.ResponseWriter, r *http.Request, actor *account, status int, errMsg string) {
	d := pageData{Title: "Admin", Perm: actor.perm, Error: errMsg}
	for _, name := range a.accountNames() {
		list, err := a.engine.Sessions(r.Context(), name)
		if err != nil {
			a.pageError(w, r, err)
			return
		}
		acc := a.accounts[name]
		d.Accounts = append(d.Accounts, adminRow{Name: name, Admin: acc.admin, Perm: acc.perm,
			Sessions: len(list), Allowed: a.mayLogOut(actor, name)})
	}
	a.render(w, r, tmplAdmin, status, d)
}

func (a *app) pageAdmin(w http.ResponseWriter, r *http.Request) {
	if actor := a.adminActor(w, r); actor != nil {
		a.renderAdmin(w, r, actor, http.StatusOK, "")
	}
}

func (a *app) pageAdminLogout(w http.ResponseWriter, r *http.Request) {
	actor := a.adminActor(w, r)
	if actor == nil {
		return
	}
	if err := r.ParseForm(); err != nil {
		a.renderAdmin(w, r, actor, http.StatusBadRequest, "Bad form.")
		return
	}
	_, forbidden, err := a.adminLogout(r.Context(), actor, r.PostForm["user"])
	switch {
	case len(forbidden) > 0:
		a.renderAdmin(w, r, actor, http.StatusForbidden, "Signing out admins needs the logout_all permission.")
	case err != nil:
		a.pageError(w, r, err)
	default:
		http.Redirect(w, r, "/admin?msg=admin", http.StatusSeeOther)
	}
}
