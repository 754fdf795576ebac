package sessioncap

import (
	"context"
	"fmt"
	"time"
)

// Event is one entry of a user's history, and what Subscribe delivers.
type Event struct {
	UserID string
	// Type is what happened: ReasonLogin, ReasonLimit (an eviction),
	// ReasonLogout, ReasonLogoutOthers, ReasonLogoutEverywhere, ReasonAdmin,
	// ReasonRevoked, ReasonRotated or ReasonExpired.
	Type Reason
	// At is when it happened; for an expiry, when the session really
	// expired, which may be before the engine noticed.
	At time.Time
	// SessionID is the public ID of the session the event is about.
	SessionID string
	// By is the public ID of the session that caused it: the new sign-in
	// for an eviction, the acting device for LogoutOthers and
	// LogoutEverywhere. Empty otherwise.
	By string
	// IP and UserAgent are those of the session the event is about.
	IP        string
	UserAgent string
}

// parseEvent decodes a history entry or a published message.
func parseEvent(userID, e string) (Event, error) {
	if len(e) < histMeta {
		return Event{}, errBadRecord
	}
	reason, ok := codeReasons[e[0]]
	if !ok {
		return Event{}, errBadRecord
	}
	at, err := parseMS(e[histAt:histSID])
	if err != nil {
		return Event{}, err
	}
	ip, ua, _, err := decodeMeta(e[histMeta:])
	if err != nil {
		return Event{}, err
	}
	return Event{
		UserID:    userID,
		Type:      reason,
		At:        fromMS(at),
		SessionID: publicID([sidLen]byte([]byte(e[histSID:histBy]))),
		By:        publicID([sidLen]byte([]byte(e[histBy:histMeta]))),
		IP:        ip,
		UserAgent: ua,
	}, nil
}

// History returns up to limit of the user's history records, newest first,
// skipping the newest offset ones (for paging). It is empty when
// Config.HistoryLimit is 0. One round trip.
func (e *Engine) History(ctx context.Context, userID string, offset, limit int) (events []Event, err error) {
	ctx, call := e.begin(ctx, OpHistory)
	defer func() { call.end(err, 0) }()
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	if offset < 0 || limit < 1 || limit > 10000 {
		return nil, fmt.Errorf("%w: history offset %d, limit %d (1 to 10000)", ErrInvalidInput, offset, limit)
	}
	k := e.keysOf(userID)
	raw, err := e.rdb.LRange(ctx, k.hist, int64(offset), int64(offset+limit-1)).Result()
	if err != nil {
		e.afterError(err)
		return nil, unavailable(string(OpHistory), err)
	}
	events = make([]Event, 0, len(raw))
	for _, r := range raw {
		ev, err := parseEvent(userID, r)
		if err != nil {
			return nil, unavailable(string(OpHistory), err)
		}
		events = append(events, ev)
	}
	return events, nil
}
