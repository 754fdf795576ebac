package sessioncap

import (
	"time"
)

// Session is a live session. It never holds the token.
type Session struct {
	ID         string // public session ID (UUID)
	UserID     string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time // when it ends if not used again: min(last seen + idle, absolute)
	AbsoluteAt time.Time // when it ends however active
	IP         string
	UserAgent  string
	// Values are the app's data. Change them and call Engine.Save.
	Values map[string]string

	keys      userKeys
	sid       [sidLen]byte
	prefixLen int
	valuesRaw string
}

// session builds a Session from a live record.
func (e *Engine) session(rec string, sid [sidLen]byte, k userKeys) (*Session, error) {
	s := new(Session)
	if err := e.fillSession(s, rec, sid, publicID(sid), k); err != nil {
		return nil, err
	}
	return s, nil
}

// expiry is when a session last seen at last, with absolute expiry abs,
// written under idle timeout idle (0: none), stops being valid, in ms:
// expiry(r) in lib.lua.
func expiry(last, abs, idle int64) int64 {
	if idle > 0 {
		return min(abs, last+idle)
	}
	return abs
}

// fillSession is session into a given Session, with the public ID already
// formatted, so Validate can allocate the Session with its call.
func (e *Engine) fillSession(s *Session, rec string, sid [sidLen]byte, id string, k userKeys) error {
	p, err := parseRecord(rec)
	if err != nil {
		return err
	}
	if !p.live {
		return errBadRecord
	}
	exp := expiry(p.last, p.abs, p.idle)
	*s = Session{
		ID:         id,
		UserID:     p.userID,
		CreatedAt:  fromMS(p.created),
		LastSeenAt: fromMS(p.last),
		ExpiresAt:  fromMS(exp),
		AbsoluteAt: fromMS(p.abs),
		IP:         p.ip,
		UserAgent:  p.ua,
		Values:     p.values,
		keys:       k,
		sid:        sid,
		prefixLen:  p.prefixLen,
		valuesRaw:  p.valuesRaw,
	}
	return nil
}
