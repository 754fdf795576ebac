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

// MaxHistoryPage is the largest limit History accepts: one page is one
// LRANGE, and a bounded page keeps one call from holding Redis for long.
const MaxHistoryPage = 10000

// History returns up to limit (at most MaxHistoryPage) of the user's history
// records, newest first, skipping the newest offset ones (for paging). It
// reads what is stored, whatever this engine's Config.HistoryLimit: an
// engine with history off writes none, but still reads the records another
// engine on the same keys wrote. One round trip.
func (e *Engine) History(ctx context.Context, userID string, offset, limit int) (events []Event, err error) {
	ctx, call := e.begin(ctx, OpHistory)
	defer func() { call.end(err, 0) }()
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	if offset < 0 || limit < 1 || limit > MaxHistoryPage {
		return nil, fmt.Errorf("%w: history offset %d, limit %d (1 to %d)", ErrInvalidInput, offset, limit, MaxHistoryPage)
	}
	k := keysFor(e.cfg.KeyPrefix, userDigest(userID))
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
