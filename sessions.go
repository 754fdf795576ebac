package sessioncap

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// DefaultSessionsPage is the page size SessionsPage uses for a limit of 0,
// and the size of the pages Sessions reads.
const DefaultSessionsPage = 100

// MaxSessionsPage is the largest limit SessionsPage accepts: one page is
// one script call, and its length bounds that call's work.
const MaxSessionsPage = 1000

// SessionPage is one page of a user's live sessions, newest first.
type SessionPage struct {
	// Sessions are this page's sessions, newest first.
	Sessions []Session
	// Next is the cursor of the following page, or "" after the last.
	Next string
}

// Sessions lists the user's live sessions, newest first, with their
// metadata (never their tokens). It reads pages of DefaultSessionsPage
// (one round trip each) until the last; SessionsPage reads one. Listing
// also drops expired sessions from the user's index, so the index heals
// without keyspace notifications.
func (e *Engine) Sessions(ctx context.Context, userID string) (list []Session, err error) {
	ctx, call := e.begin(ctx, OpSessions)
	defer func() { call.end(err, 0) }()
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	cursor := ""
	// A user holds at most SessionCeiling sessions; sign-ins racing the
	// listing can add pages, so it stops after twice what the ceiling needs.
	for range 2*e.cfg.SessionCeiling/DefaultSessionsPage + 2 {
		page, err := e.sessionsPage(ctx, userID, cursor, DefaultSessionsPage)
		if err != nil {
			return nil, err
		}
		// A page resumes strictly before the previous one's last entry
		// in sign-in order, so no session is listed twice.
		list = append(list, page.Sessions...)
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	return list, nil
}

// SessionsPage returns one page of at most limit (0 means
// DefaultSessionsPage, at most MaxSessionsPage) of the user's live
// sessions, newest first, in one round trip. Pass "" for the first page and
// the returned Next for each following one. A session that ends between
// two pages does not upset the paging: the next page resumes where it was.
// A malformed cursor is ErrInvalidInput.
func (e *Engine) SessionsPage(ctx context.Context, userID, cursor string, limit int) (page SessionPage, err error) {
	ctx, call := e.begin(ctx, OpSessions)
	defer func() { call.end(err, 0) }()
	if err := checkUserID(userID); err != nil {
		return SessionPage{}, err
	}
	if limit < 0 || limit > MaxSessionsPage {
		return SessionPage{}, fmt.Errorf("%w: page limit %d outside 0..%d", ErrInvalidInput, limit, MaxSessionsPage)
	}
	if limit == 0 {
		limit = DefaultSessionsPage
	}
	return e.sessionsPage(ctx, userID, cursor, limit)
}

// sessionsPage runs sessions.lua for one page. A cursor is the public ID
// of the previous page's last session and its sign-in number: the script
// resumes before that place in the sign-in order, whether or not the
// session is still there.
func (e *Engine) sessionsPage(ctx context.Context, userID, cursor string, limit int) (SessionPage, error) {
	after := ""
	if cursor != "" {
		id, seq, ok := strings.Cut(cursor, ".")
		sid, err := parsePublicID(id)
		if !ok || err != nil || len(seq) != seqLen || strings.Trim(seq, "0123456789") != "" {
			return SessionPage{}, fmt.Errorf("%w: malformed sessions cursor", ErrInvalidInput)
		}
		after = seq + string(sid[:])
	}
	k := e.keysOf(userID)
	reply, err := e.run(ctx, OpSessions, scriptSessions, k,
		e.args(e.nowMS(ctx), k, after, strconv.Itoa(limit)))
	if err != nil {
		return SessionPage{}, err
	}
	if status(reply) != statusOK {
		return SessionPage{}, unavailable(string(OpSessions), fmt.Errorf("unexpected status %d", status(reply)))
	}
	next, err := replyString(string(OpSessions), reply, 1)
	if err != nil {
		return SessionPage{}, err
	}
	list, err := e.parseList(string(OpSessions), append(reply[:1:1], reply[2:]...), k)
	if err != nil {
		return SessionPage{}, err
	}
	page := SessionPage{Sessions: list}
	if next != "" {
		if len(next) != lEntryLen {
			return SessionPage{}, unavailable(string(OpSessions), errBadRecord)
		}
		page.Next = publicID([sidLen]byte([]byte(next[seqLen:]))) + "." + next[:seqLen]
	}
	return page, nil
}

// parseList reads {status, sid, record, sid, record, ...}.
func (e *Engine) parseList(op string, reply []any, k userKeys) ([]Session, error) {
	if (len(reply)-1)%2 != 0 {
		return nil, unavailable(op, fmt.Errorf("odd session list reply"))
	}
	out := make([]Session, 0, (len(reply)-1)/2)
	for i := 1; i < len(reply); i += 2 {
		sid, err := replyString(op, reply, i)
		if err != nil {
			return nil, err
		}
		rec, err := replyString(op, reply, i+1)
		if err != nil {
			return nil, err
		}
		if len(sid) != sidLen {
			return nil, unavailable(op, errBadRecord)
		}
		s, err := e.session(rec, [sidLen]byte([]byte(sid)), k)
		if err != nil {
			// A record that cannot be read counts as gone, as in the
			// scripts: it does not hide the user's other sessions.
			continue
		}
		out = append(out, *s)
	}
	return out, nil
}
