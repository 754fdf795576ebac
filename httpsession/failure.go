package httpsession

import (
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"strings"
	"time"

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
	IP        string `json:"ip"`
	UserAgent string `json:"user_agent"`
}

// Failure is the body of the default failure responses, and what an app can
// send over its own channels (an SSE stream, say) to explain a sign-out the
// same way.
type Failure struct {
	Error   FailureKind `json:"error"`
	Message string      `json:"message"`
	// Reason is the engine's reason for an ended session ("limit",
	// "logout", "admin", ...).
	Reason string `json:"reason,omitempty"`
	// At is when the session ended.
	At *time.Time `json:"at,omitempty"`
	// ReplacedBy is the sign-in that evicted this session.
	ReplacedBy *Device `json:"replaced_by,omitempty"`
	// By is the device that ended this session in any other way (a "sign
	// out other devices" elsewhere).
	By *Device `json:"by,omitempty"`
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

// Describe turns err into a Failure. Messages never include the error's
// text for unexpected errors, which may describe internals.
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
		at := ending.At.UTC()
		f.At = &at
		f.Reason = string(ending.Reason)
		if ending.By.SessionID != "" {
			d := &Device{SessionID: ending.By.SessionID, IP: ending.By.IP, UserAgent: ending.By.UserAgent}
			if f.Error == KindEvicted {
				f.ReplacedBy = d
			} else {
				f.By = d
			}
		}
	}
	switch f.Error {
	case KindMissing:
		f.Message = "Not signed in."
	case KindInvalid:
		f.Message = "The session token is not valid."
	case KindExpired:
		f.Message = "The session has expired. Please sign in again."
	case KindEvicted:
		f.Message = "You were signed out because your account signed in on another device"
		if f.ReplacedBy != nil {
			f.Message += " (" + f.ReplacedBy.IP + ", " + f.ReplacedBy.UserAgent + ")"
		}
		if f.At != nil { // nil for the bare ErrEvicted sentinel
			f.Message += " at " + f.At.Format(time.RFC3339)
		}
		f.Message += "."
	case KindRevoked:
		f.Message = revokedMessage(sessioncap.Reason(f.Reason))
	case KindUnavailable:
		f.Message = "The session store is unavailable. Please try again shortly."
	default:
		f.Message = "Something went wrong with the session."
	}
	return f
}

func revokedMessage(r sessioncap.Reason) string {
	switch r {
	case sessioncap.ReasonLogout:
		return "This session was signed out."
	case sessioncap.ReasonLogoutOthers:
		return "Another of your devices signed this one out."
	case sessioncap.ReasonLogoutEverywhere:
		return "Signing out on another device signed this one out too."
	case sessioncap.ReasonAdmin:
		return "An administrator signed this account out."
	}
	return "This session was revoked."
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
func DefaultErrorHandler(w http.ResponseWriter, r *http.Request, err error) {
	WriteFailure(w, r, Describe(err))
}

// WriteFailure sends f as JSON or HTML (by the Accept header), for apps
// whose own handlers want the default look for some failures.
func WriteFailure(w http.ResponseWriter, r *http.Request, f Failure) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if f.Error == KindUnavailable {
		h.Set("Retry-After", "1")
	}
	if WantsHTML(r) {
		h.Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(f.Status())
		_ = failurePage.Execute(w, f)
		return
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(f.Status())
	_ = json.NewEncoder(w).Encode(f)
}

var failurePage = template.Must(template.New("failure").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Signed out</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem">
<h1>{{if eq .Error "unavailable"}}Please try again{{else}}You are signed out{{end}}</h1>
<p>{{.Message}}</p>
{{if .ReplacedBy}}<p>New sign-in: {{.ReplacedBy.IP}} · {{.ReplacedBy.UserAgent}}</p>{{end}}
<p><a href="/">Continue</a></p>
</body></html>
`))
