package sessioncap

import (
	"context"
	"fmt"
)

// Sessions lists the user's live sessions, newest first, with their
// metadata (never their tokens). Listing also drops expired sessions from
// the user's index, so the index heals without keyspace notifications.
func (e *Engine) Sessions(ctx context.Context, userID string) (list []Session, err error) {
	ctx, call := e.begin(ctx, OpSessions)
	defer func() { call.end(err, 0) }()
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	k := e.keysOf(userID)
	reply, err := e.run(ctx, OpSessions, scriptSessions, k, e.args(e.nowMS(ctx), k))
	if err != nil {
		return nil, err
	}
	if status(reply) != statusOK {
		return nil, unavailable(string(OpSessions), fmt.Errorf("unexpected status %d", status(reply)))
	}
	return e.parseList(string(OpSessions), reply, k)
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
			return nil, unavailable(op, err)
		}
		out = append(out, *s)
	}
	return out, nil
}
