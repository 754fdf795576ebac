package sessioncap

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// Save writes s.Values back to its session. It never revives a session that
// was evicted, revoked or expired meanwhile: that returns the same error
// Validate would. Concurrent Saves of one session are last-writer-wins; use
// Update to read, change and write without losing a concurrent change.
func (e *Engine) Save(ctx context.Context, s *Session) (err error) {
	ctx, call := e.begin(ctx, OpSave)
	defer func() { call.end(err, 0) }()
	return e.save(ctx, s, "")
}

func (e *Engine) save(ctx context.Context, s *Session, expect string) error {
	if s == nil || s.sid == zeroSID || s.prefixLen < headerLen {
		return fmt.Errorf("%w: session did not come from this engine", ErrInvalidInput)
	}
	values, err := encodeValues(s.Values)
	if err != nil {
		return err
	}
	reply, err := e.run(ctx, OpSave, scriptSave, s.keys,
		e.args(e.nowMS(ctx), s.keys, string(s.sid[:]), strconv.Itoa(s.prefixLen), values, expect))
	if err != nil {
		return err
	}
	switch status(reply) {
	case statusOK:
		s.valuesRaw = values
		return nil
	case statusConflict:
		return ErrConflict
	}
	return e.ended(ctx, OpSave, reply, s.sid)
}

// Update reads the session behind token, lets fn change its values and writes
// them back only if nobody changed them in between, retrying up to
// Config.UpdateAttempts times (then ErrConflict). An error from fn aborts
// without writing and is returned as is.
func (e *Engine) Update(ctx context.Context, token string, fn func(values map[string]string) error) (*Session, error) {
	for attempt := 0; attempt < e.cfg.UpdateAttempts; attempt++ {
		s, err := e.Validate(ctx, token)
		if err != nil {
			return nil, err
		}
		if err := fn(s.Values); err != nil {
			return nil, err
		}
		err = e.save(ctx, s, s.valuesRaw)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	return nil, ErrConflict
}
