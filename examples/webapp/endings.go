package main

import (
	"errors"
	"net/http"

	"github.com/sessioncap/sessioncap"
	"github.com/sessioncap/sessioncap/httpsession"
)

// viewDevice is a device as people and API clients see it: its name first
// ("Firefox on Windows"), with the IP; the raw user agent and the public
// session ID stay in the JSON for programs, and out of the pages' text.
func viewDevice(d sessioncap.Device) *httpsession.Device {
	if d.SessionID == "" {
		return nil
	}
	return &httpsession.Device{SessionID: d.SessionID, Name: d.Name(), IP: d.IP, UserAgent: d.UserAgent}
}

// endingView says why this device has no session: the body of every 401
// and 503 the demo sends (JSON for programs, the sign-in page's banner for
// people) and what the live banner shows. The text is the demo's own,
// built from the engine's Ending fields, so it names the acting device and
// the reason in every flow whatever wording httpsession.Describe uses.
type endingView struct {
	// Failure carries httpsession's fields and JSON names (error, message,
	// reason, at, by, replaced_by, admin); the message is the demo's own.
	httpsession.Failure
	Title string `json:"title"`
	// User is the account the ended session belonged to, to prefill the
	// sign-in form. It comes from the tombstone the ended token points at,
	// so it tells the token's holder nothing they did not know.
	User string `json:"user,omitempty"`
	// NotMe offers "this wasn't me: sign out everywhere": another of the
	// account's devices ended this one, which the owner may not have done.
	NotMe bool `json:"not_me,omitempty"`
}

// describe builds the endingView of an error from the middleware or the
// engine.
func describe(err error) *endingView {
	v := &endingView{Failure: httpsession.Failure{Error: httpsession.Kind(err)}}
	var ending *sessioncap.Ending
	var ev *sessioncap.EvictedError
	var rv *sessioncap.RevokedError
	switch {
	case errors.As(err, &ev):
		ending = &ev.Ending
	case errors.As(err, &rv):
		ending = &rv.Ending
	}
	who := "Another device"
	if ending != nil {
		v.Reason, v.User, v.Admin = string(ending.Reason), ending.UserID, ending.Admin
		if !ending.At.IsZero() {
			at := ending.At.UTC()
			v.At = &at
		}
		v.By = viewDevice(ending.By)
		if v.By != nil {
			who = v.By.Name + " (" + v.By.IP + ")"
		}
	}
	admin := "An administrator"
	if v.Admin != "" {
		admin += " (" + v.Admin + ")"
	}
	switch v.Error {
	case httpsession.KindEvicted:
		v.ReplacedBy = v.By
		v.Title = "Your account signed in on another device"
		if v.Reason == string(sessioncap.ReasonReplaced) {
			v.Message = who + " signed in to your account while it was at its device limit, and chose to sign this device out in its place."
		} else {
			v.Message = who + " signed in to your account, which allows only a limited number of devices at once, so this device was signed out."
		}
	case httpsession.KindRevoked:
		switch sessioncap.Reason(v.Reason) {
		case sessioncap.ReasonLogout:
			v.Title, v.Message = "You are signed out", "You signed out on this device."
		case sessioncap.ReasonLogoutOthers:
			v.Title, v.Message = "Signed out from another device", who+" chose “Sign out all other devices”."
		case sessioncap.ReasonLogoutEverywhere:
			v.Title, v.Message = "Signed out everywhere", who+" signed out, and signing out there signs out every device of this account."
		case sessioncap.ReasonAdmin:
			v.Title, v.Message = "Signed out by an administrator", admin+" signed this account out of every device."
		case sessioncap.ReasonSecurity:
			v.Title = "Signed out for your account's security"
			v.Message = who + " reported a sign-in that was not the account owner's (“This wasn't me”) and signed out every other device of the account."
		case sessioncap.ReasonPasswordChange:
			v.Title, v.Message = "Your password was changed", "The account's password was changed on "+lowerFirst(who)+", which signs out every other device."
		default: // ReasonRevoked
			switch {
			case v.By != nil:
				v.Title, v.Message = "Signed out from another device", who+" signed this device out from its “Your devices” page."
			case v.Admin != "":
				v.Title, v.Message = "Signed out by an administrator", admin+" signed this device out."
			default:
				v.Title, v.Message = "This device was signed out", "This device was signed out."
			}
		}
	case httpsession.KindExpired:
		v.Title, v.Message = "Your session expired", "The session has expired. Please sign in again."
	case httpsession.KindMissing:
		v.Title, v.Message = "Please sign in", "Not signed in."
	case httpsession.KindInvalid:
		v.Title, v.Message = "Please sign in", "The session token is not valid. Please sign in again."
	case httpsession.KindUnavailable:
		v.Title, v.Message = "Please try again", "The session store is unavailable. Please try again in a moment."
	default:
		v.Title, v.Message = "Something went wrong", "Something went wrong with the session."
	}
	switch sessioncap.Reason(v.Reason) {
	case sessioncap.ReasonSecurity, sessioncap.ReasonPasswordChange, sessioncap.ReasonLogout:
	default:
		v.NotMe = v.By != nil
	}
	return v
}

func lowerFirst(s string) string {
	if s != "" && s[0] >= 'A' && s[0] <= 'Z' {
		return string(s[0]+'a'-'A') + s[1:]
	}
	return s
}

// status is the HTTP status of a failure: 503 while Redis is unavailable
// (retry, do not sign in again), 500 for the unexpected, 401 otherwise.
func (v *endingView) status() int {
	switch v.Error {
	case httpsession.KindUnavailable:
		return http.StatusServiceUnavailable
	case httpsession.KindError:
		return http.StatusInternalServerError
	}
	return http.StatusUnauthorized
}

// bannerFor is the banner a page shows a device without a session: why
// it was signed out, or nothing when there is nothing to explain.
func bannerFor(err error) *endingView {
	if err == nil {
		return nil
	}
	v := describe(err)
	switch v.Error {
	case httpsession.KindEvicted, httpsession.KindExpired:
		return v
	case httpsession.KindRevoked:
		if v.Reason == string(sessioncap.ReasonLogout) {
			return nil // the user signed out here; nothing to explain
		}
		return v
	}
	return nil
}

// failure answers a request whose session is unusable, for the middleware
// (every httpsession.Options handler) and the handlers alike: the
// endingView as JSON for programs; for browsers, the sign-in page with the
// banner, or a styled error page for 503 and 500. Both come from the
// demo's own templates and stylesheet, so the Content-Security-Policy
// lets them render as designed.
func (a *app) failure(w http.ResponseWriter, r *http.Request, err error) {
	v := describe(err)
	if v.Error == httpsession.KindError {
		a.log.Error("request failed", "path", r.URL.Path, "error", err.Error())
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if v.Error == httpsession.KindUnavailable {
		h.Set("Retry-After", "1")
	}
	if !httpsession.WantsHTML(r) {
		writeJSON(w, v.status(), v)
		return
	}
	switch v.Error {
	case httpsession.KindUnavailable, httpsession.KindError:
		a.errorPage(w, r, v.status(), v.Title, v.Message)
	default:
		a.render(w, r, tmplLogin, v.status(), pageData{Title: "Sign in", Banner: bannerFor(err), LoginUser: v.User})
	}
}

// errorPage renders a styled page for a request the demo refuses.
func (a *app) errorPage(w http.ResponseWriter, r *http.Request, status int, heading, text string) {
	a.render(w, r, tmplError, status, pageData{Title: heading, Heading: heading, Text: text, Status: status})
}

// problem answers with a JSON error for programs, or the styled error page
// for browsers.
func (a *app) problem(w http.ResponseWriter, r *http.Request, status int, code, heading, text string) {
	if httpsession.WantsHTML(r) {
		a.errorPage(w, r, status, heading, text)
		return
	}
	jsonError(w, status, code, text)
}

// csrfDenied answers a state-changing request from another origin, which
// http.CrossOriginProtection refuses.
func (a *app) csrfDenied(w http.ResponseWriter, r *http.Request) {
	a.problem(w, r, http.StatusForbidden, "cross_origin", "Request refused",
		"This request came from another site, so it was refused. Go back to the page, reload it, and try again.")
}

// statusRecorder keeps the status a handler chose, and nothing it wrote.
type statusRecorder struct {
	h    http.Header
	code int
}

func (s *statusRecorder) Header() http.Header         { return s.h }
func (s *statusRecorder) Write(p []byte) (int, error) { return len(p), nil }
func (s *statusRecorder) WriteHeader(code int)        { s.code = code }

// styledMisses serves mux, with the demo's own pages for the requests no
// route matches (404) or matches by path but not by method (405), instead
// of the mux's plain text.
func (a *app) styledMisses(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{h: http.Header{}, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		switch rec.code {
		case http.StatusNotFound:
			a.problem(w, r, http.StatusNotFound, "not_found", "Page not found", "There is no page at this address.")
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", rec.h.Get("Allow"))
			a.problem(w, r, http.StatusMethodNotAllowed, "method_not_allowed", "Not allowed",
				"This address does not take that kind of request.")
		default: // a redirect the mux made (a cleaned path, a trailing slash)
			for k, v := range rec.h {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.code)
		}
	})
}
