package sessioncap

import "fmt"

// Actor says who ended a session when it was not the session's own doing,
// so the ended device, its history and live events can name them.
type Actor struct {
	// Session is the acting session, one of the same user's devices: the
	// one whose devices page revoked another, or that reported "this wasn't
	// me". Its public ID, IP and user agent are recorded with the ending.
	// Take it from Validate (or httpsession.FromContext). A session of
	// another user is refused with ErrInvalidInput: an administrator acts
	// under Admin, and their own device is none of the user's business.
	Session *Session
	// Admin names an administrator, or the app acting for itself, as the
	// ended device should read it ("support", "password reset"); at most
	// 256 bytes.
	Admin string
}

// EndOptions says why sessions are ended and who ended them, for
// RevokeWith and LogoutAllWith. The zero value is the plain call's
// behaviour.
type EndOptions struct {
	// Reason is recorded in the tombstone, history and events. Allowed:
	// for RevokeWith, ReasonRevoked (the default), ReasonLogout (the
	// session's own device ended it), ReasonAdmin, ReasonSecurity and
	// ReasonPasswordChange; for LogoutAllWith, ReasonAdmin (the default),
	// ReasonSecurity, ReasonPasswordChange and ReasonRevoked. Others are
	// ErrInvalidInput.
	Reason Reason
	// By is who acted. Zero: nobody is named.
	By Actor
}

const maxAdminLen = 256

var (
	revokeReasons    = []Reason{ReasonRevoked, ReasonLogout, ReasonAdmin, ReasonSecurity, ReasonPasswordChange}
	logoutAllReasons = []Reason{ReasonAdmin, ReasonSecurity, ReasonPasswordChange, ReasonRevoked}
	// othersReasons serve LogoutOthersWith and Login's Meta.SignOutOthers:
	// both end every other session of the user, by one of its sessions.
	othersReasons = []Reason{ReasonLogoutOthers, ReasonSecurity, ReasonPasswordChange}
)

// code returns the record code of o.Reason (def when empty), if allowed.
func (o EndOptions) code(def Reason, allowed []Reason) (byte, error) {
	r := o.Reason
	if r == "" {
		r = def
	}
	for _, a := range allowed {
		if a == r {
			return reasonCodes[r], nil
		}
	}
	return 0, fmt.Errorf("%w: reason %q is not one of %v here", ErrInvalidInput, r, allowed)
}

// check refuses an actor that cannot act on userID's sessions.
func (a Actor) check(userID string) error {
	if len(a.Admin) > maxAdminLen {
		return fmt.Errorf("%w: Actor.Admin is %d bytes, at most %d", ErrInvalidInput, len(a.Admin), maxAdminLen)
	}
	if a.Session != nil && (a.Session.UserID != userID || a.Session.sid == zeroSID) {
		return fmt.Errorf("%w: Actor.Session is not a session of this user from Validate", ErrInvalidInput)
	}
	return nil
}

// tail is what follows the time in a tombstone tail: the acting session's
// ID (or zeros) and encodeActor's bytes. Without an acting session, the
// ended user's ID stands in the meta, so the tombstone still says whose
// session it was.
func (a Actor) tail(userID string) string {
	if a.Session == nil {
		return string(zeroSID[:]) + encodeActor("", "", userID, a.Admin)
	}
	s := a.Session
	return string(s.sid[:]) + encodeActor(clip(s.IP, maxIPLen), clip(s.UserAgent, maxUALen), userID, a.Admin)
}
