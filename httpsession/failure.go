package httpsession

import (
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/sessioncap/sessioncap"
)

// FailureKind names a failure in a small fixed set, the "error" field of the
// default JSON body.
type FailureKind string

// The failure kinds.
const (
	KindMissing     FailureKind = "unauthenticated" // no token in the request
	KindInvalid     FailureKind = "invalid"         // malformed token
	KindExpired     FailureKind = "expired"         // timed out or unknown
	KindEvicted     FailureKind = "evicted"         // replaced by a newer sign-in
	KindRevoked     FailureKind = "revoked"         // logged out or revoked
	KindUnavailable FailureKind = "unavailable"     // Redis could not be reached
	KindError       FailureKind = "error"           // anything else
)

// Kind classifies an error from the engine or the middleware, on top of
// sessioncap.OutcomeOf so that responses and metrics agree. Of the invalid
// inputs only a bad token is the client's to fix by signing in again; a bad
// user ID or oversized values are the app's bug, hence KindError.
func Kind(err error) FailureKind {
	if errors.Is(err, ErrNoToken) {
		return KindMissing
	}
	switch sessioncap.OutcomeOf(err) {
	case sessioncap.OutcomeRedisError:
		return KindUnavailable
	case sessioncap.OutcomeEvicted:
		return KindEvicted
	case sessioncap.OutcomeRevoked:
		return KindRevoked
	case sessioncap.OutcomeExpired:
		return KindExpired
	case sessioncap.OutcomeInvalid:
		if errors.Is(err, sessioncap.ErrInvalidToken) {
			return KindInvalid
		}
	}
	return KindError
}

// Device is a session as shown to a user: enough to recognise it, never its
// token.
type Device struct {
	SessionID string `json:"session_id"`
	// Name is the device as a person reads it ("Safari on iPhone"), from
	// sessioncap.DeviceName of UserAgent; messages use it, never UserAgent.
	Name      string `json:"device"`
	IP        string `json:"ip"`
	UserAgent string `json:"user_agent"`
}

// deviceOf converts the engine's Device, naming it.
func deviceOf(d sessioncap.Device) *Device {
	return &Device{SessionID: d.SessionID, Name: d.Name(), IP: d.IP, UserAgent: d.UserAgent}
}

// Failure is the body of the default failure responses, and what an app can
// send over its own channels (an SSE stream, say) to explain a sign-out the
// same way.
type Failure struct {
	Error FailureKind `json:"error"`
	// Message is a sentence for the user: for an ended session it says
	// why, when and who acted, naming devices by Device.Name.
	Message string `json:"message"`
	// Reason is the engine's reason for an ended session ("limit",
	// "replaced", "logout", "logout-others", "logout-everywhere", "admin",
	// "revoked", "security", "password-change", ...): sessioncap.Reason.
	Reason string `json:"reason,omitempty"`
	// At is when the session ended, in UTC.
	At *time.Time `json:"at,omitempty"`
	// ReplacedBy is the sign-in that evicted or replaced this session, the
	// same device as By; kept for clients written before By covered
	// evictions.
	ReplacedBy *Device `json:"replaced_by,omitempty"`
	// By is the session that ended this one, for every kind of ending:
	// the new sign-in of an eviction, the device that chose "sign out
	// other devices", revoked this one from a devices page or reported
	// "this wasn't me". For a session's own logout it is that session
	// (the message then names nobody). Nil when no session acted.
	By *Device `json:"by,omitempty"`
	// Admin names who acted when it was not one of the user's sessions:
	// an administrator or the app, as it named itself
	// (sessioncap.Actor.Admin).
	Admin string `json:"admin,omitempty"`
}

// Status returns the HTTP status for the failure: 503 while Redis is
// unavailable (a client must retry, not sign in again), 500 for unexpected
// errors, 401 otherwise.
func (f Failure) Status() int {
	switch f.Error {
	case KindUnavailable:
		return http.StatusServiceUnavailable
	case KindError:
		return http.StatusInternalServerError
	}
	return http.StatusUnauthorized
}

// Title is a short heading for the failure, the title and heading of the
// default HTML page: "Please try again" while Redis is unavailable,
// "Session expired", "You were signed out", and so on.
func (f Failure) Title() string {
	switch f.Error {
	case KindMissing:
		return "Please sign in"
	case KindInvalid:
		return "Please sign in again"
	case KindExpired:
		return "Session expired"
	case KindEvicted:
		return "Your account signed in on another device"
	case KindRevoked:
		return "You were signed out"
	case KindUnavailable:
		return "Please try again"
	}
	return "Something went wrong"
}

// Describe turns err into a Failure. For an ended session the message says
// why, when (RFC 3339, UTC) and who acted: the acting device by its name
// and IP ("Chrome on Linux (192.0.2.9)"), or the administrator as the app
// named them. Messages never include the error's text for unexpected
// errors, which may describe internals.
func Describe(err error) Failure {
	f := Failure{Error: Kind(err)}
	var ev *sessioncap.EvictedError
	var rv *sessioncap.RevokedError
	var ending *sessioncap.Ending
	switch {
	case errors.As(err, &ev):
		ending = &ev.Ending
	case errors.As(err, &rv):
		ending = &rv.Ending
	}
	if ending != nil {
		if !ending.At.IsZero() {
			at := ending.At.UTC()
			f.At = &at
		}
		f.Reason = string(ending.Reason)
		if ending.By.SessionID != "" {
			f.By = deviceOf(ending.By)
			if f.Error == KindEvicted {
				f.ReplacedBy = deviceOf(ending.By)
			}
		}
		f.Admin = ending.Admin
	}
	switch f.Error {
	case KindMissing:
		f.Message = "Not signed in."
	case KindInvalid:
		f.Message = "The session token is not valid. Please sign in again."
	case KindExpired:
		f.Message = "The session has expired. Please sign in again."
	case KindEvicted, KindRevoked:
		f.Message = endedMessage(f, ending)
	case KindUnavailable:
		f.Message = "The session store is unavailable. Please try again shortly."
	default:
		f.Message = "Something went wrong with the session."
	}
	return f
}

// endedMessage is the sentence for an ended session: why, who acted and
// when, each part left out (with its words) when unknown. ending is nil
// for a bare ErrEvicted or ErrRevoked.
func endedMessage(f Failure, ending *sessioncap.Ending) string {
	var (
		at     string // " at 2026-01-02T03:04:05Z"
		device string // "Safari on iPhone (198.51.100.2)"
		admin  = printable(f.Admin)
	)
	if f.At != nil {
		at = " at " + f.At.Format(time.RFC3339)
	}
	// A session that ended itself (its own logout) names nobody.
	if f.By != nil && (ending == nil || f.By.SessionID != ending.SessionID) {
		device = deviceLabel(f.By)
	}
	// who is " from <device>", " by <admin>", or both.
	who := ""
	if device != "" {
		who += " from " + device
	}
	if admin != "" {
		who += " by " + admin
	}
	const out = "This device was signed out"
	switch r := sessioncap.Reason(f.Reason); {
	case r == sessioncap.ReasonReplaced:
		msg := "You were signed out because your account signed in on another device"
		if device != "" {
			msg += " (" + deviceList(f.By) + ")"
		}
		return msg + at + " and that sign-in chose to sign this device out to stay within the account's device limit."
	case f.Error == KindEvicted: // ReasonEvicted, or a bare ErrEvicted
		msg := "You were signed out because your account signed in on another device"
		if device != "" {
			msg += " (" + deviceList(f.By) + ")"
		}
		return msg + at + "."
	case r == sessioncap.ReasonLogout:
		return out + who + at + "."
	case r == sessioncap.ReasonLogoutOthers:
		switch {
		case device != "":
			return out + who + at + ": that device chose to sign out all other devices."
		case admin == "":
			return out + at + ": another of your devices chose to sign out all other devices."
		}
	case r == sessioncap.ReasonLogoutEverywhere:
		switch {
		case device != "":
			return out + who + at + ": signing out on that device signs out all of the account's devices."
		case admin == "":
			return out + at + ": signing out on another of your devices signs out all of them."
		}
	case r == sessioncap.ReasonAdmin:
		if who == "" {
			who = " by an administrator"
		}
		return out + who + at + "."
	case r == sessioncap.ReasonRevoked:
		if who == "" {
			return out + at + ": its session was revoked."
		}
		return out + who + at + "."
	case r == sessioncap.ReasonSecurity:
		msg := out
		if admin != "" {
			msg += " by " + admin
		}
		msg += at + " as a security measure"
		if device != "" {
			msg += ": someone using " + device + " reported a sign-in they did not recognise"
		}
		return msg + "."
	case r == sessioncap.ReasonPasswordChange:
		msg := out + at + " after the account's password was changed"
		switch {
		case device != "" && admin != "":
			msg += " by " + admin + " on " + device
		case device != "":
			msg += " on " + device
		case admin != "":
			msg += " by " + admin
		}
		return msg + "."
	case r == sessioncap.ReasonExpired:
		return out + at + " because its session expired."
	case r == sessioncap.ReasonRotated:
		return out + at + " because its session was renewed with a new key."
	}
	return out + who + at + "."
}

// deviceLabel names a device in a sentence: "Safari on iPhone
// (198.51.100.2)", or "an unknown device (198.51.100.2)".
func deviceLabel(d *Device) string {
	name := d.Name
	if name == "" || name == unknownDevice {
		name = "an unknown device"
	}
	if ip := printable(d.IP); ip != "" {
		return name + " (" + ip + ")"
	}
	return name
}

// deviceList names a device inside parentheses: "Safari on iPhone,
// 198.51.100.2".
func deviceList(d *Device) string {
	name := d.Name
	if name == "" || name == unknownDevice {
		name = "unknown device"
	}
	if ip := printable(d.IP); ip != "" {
		return name + ", " + ip
	}
	return name
}

// unknownDevice is what sessioncap.DeviceName calls a device it cannot
// place; a sentence says "an unknown device" instead.
var unknownDevice = sessioncap.DeviceName("")

// printable drops what does not belong in a sentence: invalid UTF-8 and
// control characters, from an IP an app's ClientIP took from a header, or
// an admin name.
func printable(s string) string {
	s = strings.ToValidUTF8(s, "")
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, s))
}

// WantsHTML reports whether the client prefers an HTML page to JSON: a
// browser navigation sends text/html in Accept; fetch, curl and API clients
// do not.
func WantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// DefaultErrorHandler answers with Describe(err): a JSON body, or a small
// HTML page for browsers, with the status from Failure.Status. It never
// caches, and asks clients to retry after a second while Redis is down.
// The page has no inline style or script, so a strict
// Content-Security-Policy (default-src 'none'; style-src 'self') leaves it
// intact: it is plain semantic HTML that reads well with the browser's own
// styles. A Manager whose Options.Stylesheet is set uses a default handler
// that also links that stylesheet.
func DefaultErrorHandler(w http.ResponseWriter, r *http.Request, err error) {
	WriteFailure(w, r, Describe(err))
}

// WriteFailure sends f as JSON or HTML (by the Accept header), for apps
// whose own handlers want the default look for some failures. The HTML
// page links no stylesheet; Manager.WriteFailure links Options.Stylesheet.
func WriteFailure(w http.ResponseWriter, r *http.Request, f Failure) {
	writeFailure(w, r, f, "")
}

// WriteFailure is the package's WriteFailure with the HTML page linking
// Options.Stylesheet, when set.
func (m *Manager) WriteFailure(w http.ResponseWriter, r *http.Request, f Failure) {
	writeFailure(w, r, f, m.opt.Stylesheet)
}

func writeFailure(w http.ResponseWriter, r *http.Request, f Failure, stylesheet string) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if f.Error == KindUnavailable {
		h.Set("Retry-After", "1")
	}
	if WantsHTML(r) {
		h.Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(f.Status())
		_ = failurePage.Execute(w, failurePageData{Failure: f, Stylesheet: stylesheet})
		return
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(f.Status())
	_ = json.NewEncoder(w).Encode(f)
}

// failurePageData is what the HTML failure page renders.
type failurePageData struct {
	Failure
	Stylesheet string
}

// failurePage has no style attribute, <style> element or script, so that a
// strict Content-Security-Policy does not block any of it. The body's
// classes let an app's stylesheet (Options.Stylesheet) style it:
// "sessioncap-failure" and "sessioncap-<kind>" (sessioncap-evicted, ...).
var failurePage = template.Must(template.New("failure").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{{.Title}}</title>
{{- with .Stylesheet}}
<link rel="stylesheet" href="{{.}}">
{{- end}}
</head>
<body class="sessioncap-failure sessioncap-{{.Error}}">
<main>
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
{{- if eq .Error "unavailable"}}
<p><a href="">Try again</a></p>
{{- else}}
<p><a href="/">Continue</a></p>
{{- end}}
</main>
</body>
</html>
`))
