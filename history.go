package sessioncap

import (
	"context"
	"fmt"
)

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
