package main

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sessioncap/sessioncap"
	"github.com/sessioncap/sessioncap/httpsession"
)

var funcs = template.FuncMap{
	// when is the server's rendering of a time, in UTC; app.js replaces it
	// with the browser's local time (every <time datetime> element).
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
	"label": func(t string) string {
		if l, ok := eventLabels[sessioncap.Reason(t)]; ok {
			return l
		}
		return t
	},
}

// eventLabels are the history entries as a user would say them.
var eventLabels = map[sessioncap.Reason]string{
	sessioncap.EventLogin:             "signed in",
	sessioncap.ReasonEvicted:          "signed out: device limit",
	sessioncap.ReasonReplaced:         "signed out in place of a new sign-in",
	sessioncap.ReasonLogout:           "signed out",
	sessioncap.ReasonLogoutOthers:     "signed out by another device",
	sessioncap.ReasonLogoutEverywhere: "signed out everywhere",
	sessioncap.ReasonAdmin:            "signed out by an admin",
	sessioncap.ReasonRevoked:          "signed out from another device",
	sessioncap.ReasonSecurity:         "signed out: “this wasn't me”",
	sessioncap.ReasonPasswordChange:   "signed out: password changed",
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
	tmplError   = page("error.html")
)

// flashes are the fixed messages a redirect may ask for, by key, so no
// request text is ever reflected into a page. Lead is shown before the
// devices the action ended (named from the history, see endedBy), Tail
// after them; Plain when there are none to name.
var flashes = map[string]flash{
	"bye":  {Plain: "You are signed out."},
	"gone": {Plain: "That device was already signed out."},
	"signed-in": {Lead: "Signing in here signed out:",
		Tail: "The account allows only a limited number of devices at once; each was told this device signed it out."},
	"replaced": {Lead: "Signed in here in place of:", Tail: "That device was told this one took its place.", Plain: "Signed in."},
	"revoked":  {Lead: "Signed out:", Tail: "It was told this device signed it out.", Plain: "That device is signed out."},
	"others": {Lead: "Signed out your other devices:", Tail: "Each was told this device signed it out.",
		Plain: "Your other devices are signed out."},
	"everywhere": {Lead: "Signed this device in again, and signed out every other device of your account:",
		Tail:  "Each was told this device reported a sign-in that was not yours. If you did not sign in elsewhere, change your password.",
		Plain: "This device signed in again; no other device was signed in. If you did not sign in elsewhere, change your password."},
}

type flash struct{ Lead, Tail, Plain string }

// notice is a flash that names the devices the action ended.
type notice struct {
	Lead, Tail string
	Devices    []*httpsession.Device
	At         time.Time
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
	Notice    *notice
	Error     string
	Banner    *endingView
	Backend   string
	// CookieWarning: the browser will drop the Secure cookie (requests.go).
	CookieWarning bool

	// The error page.
	Heading, Text string
	Status        int

	LoginUser string
	Limit     int
	Full      []sessionJSON // live sessions when a sign-in hit the cap
	Ticket    string        // the chooser's ticket (chooser.go)

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
	if f, ok := flashes[r.URL.Query().Get("msg")]; ok && d.Flash == "" && d.Notice == nil {
		d.Flash = f.Plain
	}
	d.Backend = a.backend
	d.CookieWarning = d.User == "" && a.cookieWillDrop(r)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// Pages show session data: never cache them.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := t.ExecuteTemplate(w, "layout", d); err != nil {
		a.log.Error("template", "error", err.Error())
	}
}

// pageError shows an engine failure on a page: Redis being down gets the
// 503 page, a session failure the sign-in page with its banner.
func (a *app) pageError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, sessioncap.ErrNotFound):
		a.problem(w, r, http.StatusNotFound, "not_found", "No such device", "No live session has that ID.")
	case errors.Is(err, sessioncap.ErrInvalidSessionID):
		a.problem(w, r, http.StatusBadRequest, "bad_request", "No such device", "That is not a session ID.")
	default:
		a.failure(w, r, err)
	}
}

// signedIn returns the request's session, or renders the sign-in page
// (with the reason this device was signed out, if any) and returns nil.
func (a *app) signedIn(w http.ResponseWriter, r *http.Request) *sessioncap.Session {
	if s := httpsession.FromContext(r.Context()); s != nil {
		return s
	}
	a.renderSignIn(w, r, http.StatusUnauthorized)
	return nil
}

// renderSignIn shows the sign-in form; on a device whose session ended,
// with the banner that says why and the account's name filled in.
func (a *app) renderSignIn(w http.ResponseWriter, r *http.Request, status int) {
	b := bannerFor(httpsession.ErrFromContext(r.Context()))
	d := pageData{Title: "Sign in", Banner: b}
	if b != nil {
		d.LoginUser = b.User
	}
	a.render(w, r, tmplLogin, status, d)
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
	a.renderSignIn(w, r, http.StatusOK)
}

// afterLogin is where a sign-in lands: the devices page, told which
// devices the sign-in ended (their IDs; the page names them from the
// history, so nothing in the URL is shown as it is).
func afterLogin(msg string, res *sessioncap.LoginResult) string {
	if len(res.Evicted) == 0 && msg != "everywhere" {
		return "/devices"
	}
	return endedURL(msg, res.Evicted)
}

// maxNamed bounds how many ended devices a flash names.
const maxNamed = 16

func endedURL(msg string, ids []string) string {
	q := url.Values{"msg": {msg}}
	for _, id := range ids[:min(len(ids), maxNamed)] {
		q.Add("ended", id)
	}
	return "/devices?" + q.Encode()
}

func (a *app) pageLoginPost(w http.ResponseWriter, r *http.Request) {
	user, pw := r.PostFormValue("user"), r.PostFormValue("password")
	if replace := r.PostFormValue("replace"); replace != "" {
		a.pageChooserPost(w, r, user, pw, replace)
		return
	}
	res, err := a.login(w, r, user, pw, "")
	var limit *sessioncap.LimitError
	switch {
	case errors.Is(err, errLoginFailed):
		a.render(w, r, tmplLogin, http.StatusUnauthorized, pageData{Title: "Sign in", LoginUser: user,
			Error: "Wrong user name or password."})
	case errors.As(err, &limit):
		a.renderChooser(w, r, user, limit.Limit, limit.Sessions, http.StatusConflict, "")
	case err != nil:
		a.pageError(w, r, err)
	default:
		http.Redirect(w, r, afterLogin("signed-in", res), http.StatusSeeOther)
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
	events, err := a.engine.History(r.Context(), s.UserID, 0, 50)
	if err != nil {
		a.pageError(w, r, err)
		return
	}
	hist := make([]eventJSON, 0, len(events))
	for _, e := range events {
		hist = append(hist, eventToJSON(e))
	}
	d := pageData{Title: "Your devices", Sessions: listJSON(list, s.ID), History: hist[:min(len(hist), 20)]}
	q := r.URL.Query()
	if f, ok := flashes[q.Get("msg")]; ok && f.Lead != "" {
		d.Notice = endedBy(s, events, q["ended"], f.Lead, f.Tail)
	}
	a.render(w, r, tmplDevices, http.StatusOK, d)
}

// endedBy names the devices with the given IDs that the history says s
// ended: what the acting device is told it did. An ID that is not such an
// ending (a stale or edited URL) is left out.
func endedBy(s *sessioncap.Session, events []sessioncap.Event, ids []string, lead, tail string) *notice {
	n := &notice{Lead: lead, Tail: tail}
	for _, id := range ids[:min(len(ids), maxNamed)] {
		for _, e := range events {
			if e.SessionID == id && e.By == s.ID && endsSession(e.Type) {
				n.Devices = append(n.Devices, &httpsession.Device{SessionID: e.SessionID, Name: e.DeviceName(), IP: e.IP, UserAgent: e.UserAgent})
				if e.At.After(n.At) {
					n.At = e.At
				}
				break
			}
		}
	}
	if len(n.Devices) == 0 {
		return nil
	}
	return n
}

// pageRevoke signs one of the user's other devices out from the devices
// page, naming this session as the actor, so the ended device reads "Chrome
// on Linux signed this device out from its devices page".
func (a *app) pageRevoke(w http.ResponseWriter, r *http.Request) {
	s := a.signedIn(w, r)
	if s == nil {
		return
	}
	id := r.PathValue("id")
	err := a.engine.RevokeWith(r.Context(), s.UserID, id, sessioncap.EndOptions{
		Reason: sessioncap.ReasonRevoked, By: sessioncap.Actor{Session: s},
	})
	switch {
	case errors.Is(err, sessioncap.ErrNotFound), errors.Is(err, sessioncap.ErrInvalidSessionID):
		http.Redirect(w, r, "/devices?msg=gone", http.StatusSeeOther)
	case err != nil:
		a.pageError(w, r, err)
	default:
		http.Redirect(w, r, endedURL("revoked", []string{id}), http.StatusSeeOther)
	}
}

func (a *app) pageLogoutOthers(w http.ResponseWriter, r *http.Request) {
	if a.signedIn(w, r) == nil {
		return
	}
	ended, err := a.sess.LogoutOthers(r)
	if err != nil {
		a.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, endedURL("others", ended), http.StatusSeeOther)
}

func (a *app) pageLogout(w http.ResponseWriter, r *http.Request) {
	err := a.sess.Logout(w, r)
	if httpsession.Kind(err) == httpsession.KindUnavailable {
		a.failure(w, r, err)
		return
	}
	http.Redirect(w, r, "/login?msg=bye", http.StatusSeeOther)
}

// pageNotMe is "this wasn't me: sign out everywhere" on a device another
// of the account's devices signed out (an eviction, a replacement, a
// revoke, "sign out all other devices").
//
// The user ID comes from the ended token's tombstone, never from the form,
// and the action also needs the account's password. Without that, anyone
// holding an ended token (a thief whose stolen session was just replaced
// by the owner's sign-in) could sign the owner out of every device again
// and again. With it, the action grants nothing the password did not
// already grant. It is one atomic Login with Meta.SignOutOthers: this
// device signs in, and every other session ends with ReasonSecurity, by
// this sign-in, so each of them is told what happened and from where.
func (a *app) pageNotMe(w http.ResponseWriter, r *http.Request) {
	cause := httpsession.ErrFromContext(r.Context())
	if cause == nil || !describe(cause).NotMe {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	ended := describe(cause)
	acc := a.checkPassword(ended.User, r.PostFormValue("password"))
	if acc == nil {
		a.log.Warn("not-me: wrong password", "user", ended.User)
		a.render(w, r, tmplLogin, http.StatusUnauthorized, pageData{Title: "Sign in", Banner: bannerFor(cause),
			LoginUser: ended.User, Error: "Wrong password: nothing was signed out."})
		return
	}
	res, err := a.loginWith(w, r, acc, sessioncap.Meta{SignOutOthers: sessioncap.ReasonSecurity})
	if err != nil {
		a.pageError(w, r, err)
		return
	}
	a.log.Warn("not-me: signed out everywhere", "user", acc.name, "sessions", len(res.Evicted), "reported", ended.Reason)
	http.Redirect(w, r, afterLogin("everywhere", res), http.StatusSeeOther)
}

// adminActor returns the signed-in admin, or answers 401 (the sign-in
// page) or 403 (a page that says admins only, without the form).
func (a *app) adminActor(w http.ResponseWriter, r *http.Request) *account {
	s := a.signedIn(w, r)
	if s == nil {
		return nil
	}
	acc := a.accounts[s.UserID]
	if acc == nil || !acc.admin {
		a.errorPage(w, r, http.StatusForbidden, "Admins only",
			"The admin console is for administrators, and "+s.UserID+" is not one.")
		return nil
	}
	return acc
}

func (a *app) renderAdmin(w http.ResponseWriter, r *http.Request, actor *account, status int, errMsg, flash string) {
	d := pageData{Title: "Admin", Perm: actor.perm, Error: errMsg, Flash: flash}
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
	actor := a.adminActor(w, r)
	if actor == nil {
		return
	}
	flash := ""
	if q := r.URL.Query(); q.Get("msg") == "admin" {
		var names []string
		for _, u := range q["user"] {
			if a.accounts[u] != nil { // only account names, never other request text
				names = append(names, u)
			}
		}
		n, _ := strconv.Atoi(q.Get("n"))
		if len(names) > 0 {
			flash = "Signed out " + strings.Join(names, ", ") + ": " + plural(n, "session") + " ended. Each device was told an administrator (" + actor.name + ") signed it out."
		}
	}
	a.renderAdmin(w, r, actor, http.StatusOK, "", flash)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

func (a *app) pageAdminLogout(w http.ResponseWriter, r *http.Request) {
	actor := a.adminActor(w, r)
	if actor == nil {
		return
	}
	if err := r.ParseForm(); err != nil {
		a.renderAdmin(w, r, actor, http.StatusBadRequest, "Bad form.", "")
		return
	}
	users := r.PostForm["user"]
	if len(users) == 0 {
		a.renderAdmin(w, r, actor, http.StatusBadRequest, "Select at least one user to sign out: nothing was signed out.", "")
		return
	}
	n, unknown, forbidden, err := a.adminLogout(r.Context(), actor, users)
	switch {
	case len(unknown) > 0:
		a.renderAdmin(w, r, actor, http.StatusBadRequest, "No such user: nothing was signed out.", "")
	case len(forbidden) > 0:
		a.renderAdmin(w, r, actor, http.StatusForbidden, "Signing out admins needs the logout_all permission: nothing was signed out.", "")
	case err != nil:
		a.pageError(w, r, err)
	default:
		q := url.Values{"msg": {"admin"}, "n": {strconv.Itoa(n)}, "user": users}
		http.Redirect(w, r, "/admin?"+q.Encode(), http.StatusSeeOther)
	}
}
