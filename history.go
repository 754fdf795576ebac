package sessioncap

import (
	"context"
	"fmt"
)

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
