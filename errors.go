package sessioncap

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Match them with errors.Is; the richer error types below
// (EvictedError, RevokedError, LimitError) match their sentinel too, so a
// caller that only needs the category never has to use errors.As.
var (
	// ErrInvalidToken reports a token that is empty, oversized or not of
	// sessioncap's format. It is returned before any Redis call.
	ErrInvalidToken = errors.New("sessioncap: invalid token")

	// ErrInvalidUserID reports an empty or oversized user ID. It is returned
	// before any Redis call.
	ErrInvalidUserID = errors.New("sessioncap: invalid user ID")

	// ErrInvalidSessionID reports a public session ID that is not a UUID.
	ErrInvalidSessionID = errors.New("sessioncap: invalid session ID")

	// ErrInvalidInput reports metadata or values that are too large or
	// otherwise unusable (see the limits in Meta).
	ErrInvalidInput = errors.New("sessioncap: invalid input")

	// ErrExpired reports a token whose session does not exist: it expired
	// (idle or absolute timeout), was never issued, or its secret is wrong.
	// The three are deliberately indistinguishable to the caller.
	ErrExpired = errors.New("sessioncap: session not found or expired")

	// ErrEvicted reports a session that was signed out because the same user
	// signed in elsewhere and the cap was reached. The error is an
	// *EvictedError that says when and by which device.
	ErrEvicted = errors.New("sessioncap: session evicted")

	// ErrRevoked reports a session that was ended on purpose: a logout on
	// this or another device, an admin logout, or a revocation by ID. The
	// error is a *RevokedError.
	ErrRevoked = errors.New("sessioncap: session revoked")

	// ErrLimitReached is returned by Login under the RejectNew overflow
	// policy when the user already holds their maximum number of sessions.
	// The error is a *LimitError that lists the live sessions.
	ErrLimitReached = errors.New("sessioncap: session limit reached")

	// ErrNotFound is returned by Revoke when the user has no live session
	// with that ID.
	ErrNotFound = errors.New("sessioncap: no such session")

	// ErrConflict is returned by Update when the session's values kept
	// changing under it for every attempt.
	ErrConflict = errors.New("sessioncap: concurrent update conflict")

	// ErrUnavailable wraps every failure to talk to Redis: connection
	// refused, timeouts, cluster errors, unparseable replies. The underlying
	// cause stays reachable with errors.Is / errors.As.
	ErrUnavailable = errors.New("sessioncap: redis unavailable")

	// ErrInvalidConfig is returned by New for a Config that makes no sense.
	ErrInvalidConfig = errors.New("sessioncap: invalid config")

	// ErrNotReplicated is returned by an ending (Logout, LogoutOthers,
	// LogoutAll, Revoke) when Config.WaitReplicas is set and fewer replicas than
	// that acknowledged the write within Config.WaitTimeout. The ending did
	// happen on the primary; what is not guaranteed is that it survives a
	// failover in the next moment. Retrying is safe.
	ErrNotReplicated = errors.New("sessioncap: ending not acknowledged by enough replicas")

	// ErrSessionCeiling is returned by Login when the user already holds
	// Config.SessionCeiling live sessions: the hard bound that holds even
	// for Unlimited. Nothing was created or ended.
	ErrSessionCeiling = errors.New("sessioncap: session ceiling reached")

	// ErrLimiter is returned by Login when Config.Limiter fails; the error
	// also matches the Limiter's own. No session was created.
	ErrLimiter = errors.New("sessioncap: limiter failed")
)

// Reason says why a session ended. The values are stable: they reach
// users in JSON (httpsession's Failure.Reason) and are stored in history.
type Reason string

// The reasons a session can end. They appear in EvictedError, RevokedError
// and, with EventLogin, as the Type of history Events.
const (
	// ReasonEvicted is an eviction: the user signed in elsewhere and the
	// cap was reached. Its value stays "limit", as apps already read it in
	// JSON and stored history.
	ReasonEvicted          Reason = "limit"
	ReasonLogout           Reason = "logout"            // the session itself logged out
	ReasonLogoutOthers     Reason = "logout-others"     // another device of the user chose "sign out all other devices"
	ReasonLogoutEverywhere Reason = "logout-everywhere" // another device logged out and Config.LogoutEverywhere is on
	ReasonAdmin            Reason = "admin"             // LogoutAll, usually from an admin
	ReasonRevoked          Reason = "revoked"           // Revoke by public session ID
	ReasonExpired          Reason = "expired"           // idle or absolute timeout (history only)
	ReasonRotated          Reason = "rotated"           // token rotated (history only)

	// ReasonReplaced: at a full cap under RejectNew, a new sign-in chose
	// this session to sign out in its place (Meta.Replace); By is the new
	// sign-in. An *EvictedError, since the account signed in elsewhere.
	ReasonReplaced Reason = "replaced"
	// ReasonSecurity: ended as a security response, such as "this wasn't
	// me: sign out everywhere" (Meta.SignOutOthers, LogoutOthersWith,
	// LogoutAllWith, RevokeWith).
	ReasonSecurity Reason = "security"
	// ReasonPasswordChange: ended because the account's password changed.
	ReasonPasswordChange Reason = "password-change"

	// ReasonLimit is the old name of ReasonEvicted.
	//
	// Deprecated: use ReasonEvicted; a full cap evicts, it does not refuse.
	ReasonLimit = ReasonEvicted

	// ReasonLogin is the old name of EventLogin.
	//
	// Deprecated: use EventLogin; a sign-in is an event, not a reason a
	// session ended.
	ReasonLogin = EventLogin
)

// Device identifies a session in a human-friendly way: what a user needs to
// recognise "that was me" or "that wasn't me".
type Device struct {
	SessionID string // public session ID
	IP        string
	UserAgent string
}

// Ending describes how a session ended. It is embedded in EvictedError and
// RevokedError.
type Ending struct {
	UserID    string    // the user whose session ended
	SessionID string    // public ID of the session that ended
	At        time.Time // when it ended
	Reason    Reason    // why
	// By is the session that acted: the new sign-in for an eviction or a
	// replacement, the device that chose "sign out others", logged out
	// under LogoutEverywhere, revoked this one from a devices page, or
	// reported "this wasn't me". Zero when no session of the user acted.
	By Device
	// Admin names who acted when it was not one of the user's sessions:
	// an administrator or the app itself, as the app named them
	// (Actor.Admin). Empty otherwise.
	Admin string
}

// EvictedError is returned by Validate (and any call that needs a live
// session) for a session evicted by a newer sign-in of the same user.
type EvictedError struct{ Ending }

// Error says when the session was evicted and, when known, from which
// device the sign-in came, so a log line explains itself.
func (e *EvictedError) Error() string {
	msg := fmt.Sprintf("sessioncap: session evicted at %s", e.At.UTC().Format(time.RFC3339))
	if e.By.SessionID != "" {
		msg += fmt.Sprintf(" by a sign-in from %s (%s)", e.By.IP, e.By.UserAgent)
	}
	return msg
}

// Is makes errors.Is(err, ErrEvicted) true.
func (e *EvictedError) Is(target error) bool { return target == ErrEvicted }

// RevokedError is returned for a session that was logged out or revoked.
type RevokedError struct{ Ending }

// Error says why and when the session was ended.
func (e *RevokedError) Error() string {
	return fmt.Sprintf("sessioncap: session revoked (%s) at %s", e.Reason, e.At.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrRevoked) true.
func (e *RevokedError) Is(target error) bool { return target == ErrRevoked }

// LimitError is returned by Login under RejectNew. Sessions lists the live
// sessions, newest first, so the app can offer "sign out one of these".
type LimitError struct {
	UserID   string
	Limit    int
	Sessions []Session
}

// Error says how many sessions the user holds against what limit.
func (e *LimitError) Error() string {
	return fmt.Sprintf("sessioncap: session limit reached (%d of %d)", len(e.Sessions), e.Limit)
}

// Is makes errors.Is(err, ErrLimitReached) true.
func (e *LimitError) Is(target error) bool { return target == ErrLimitReached }

// unavailable wraps a Redis failure so that it matches both ErrUnavailable
// and the original cause.
type unavailableError struct {
	op    string
	cause error
}

func (e *unavailableError) Error() string {
	return "sessioncap: " + e.op + ": redis unavailable: " + e.cause.Error()
}
func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.cause} }

func unavailable(op string, err error) error { return &unavailableError{op: op, cause: err} }

// endingError turns a tombstone into the error Validate returns.
func endingError(p parsed, sid [sidLen]byte) error {
	e := Ending{
		UserID:    p.userID,
		SessionID: publicID(sid),
		At:        fromMS(p.at),
		Reason:    codeReasons[p.code],
	}
	if p.bySID != zeroSID {
		e.By = Device{SessionID: publicID(p.bySID), IP: p.ip, UserAgent: p.ua}
	}
	e.Admin = p.admin
	if p.code == codeEvicted || p.code == codeReplaced {
		return &EvictedError{e}
	}
	return &RevokedError{e}
}

// limiterError wraps a Limiter failure so that it matches both ErrLimiter
// and the Limiter's own error.
type limiterError struct{ cause error }

func (e *limiterError) Error() string   { return "sessioncap: limiter failed: " + e.cause.Error() }
func (e *limiterError) Unwrap() []error { return []error{ErrLimiter, e.cause} }
