package sessioncap

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// Subscription delivers the live events of some users. Pub/Sub is
// at-most-once: a message published while the subscriber is disconnected is
// lost, so treat events as a prompt to act at once (cut a stream, close a
// WebSocket) and Validate, the tombstones and History as the truth.
//
// All the Subscriptions of an Engine share its Pub/Sub connections: one
// for EventsPubSub, one per Cluster master for EventsSharded, however many
// Subscriptions and users there are (see hub.go). C holds up to
// SubscriptionBuffer events; an event that finds it full is dropped for
// this Subscription alone (Dropped counts them), so a slow reader never
// delays the others.
type Subscription struct {
	c       chan Event
	h       *hub
	chans   []string // guarded by h.mu
	stopMu  sync.Mutex
	stop    func() bool // releases the context.AfterFunc of Subscribe
	once    sync.Once
	dropped atomic.Uint64
}

// SubscriptionBuffer is how many undelivered events a Subscription holds
// before it drops new ones.
const SubscriptionBuffer = 64

// C returns the channel of events. It is closed after Close, or when the
// context given to Subscribe ends.
func (s *Subscription) C() <-chan Event { return s.c }

// Dropped reports how many events were lost because C was full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close stops the subscription and closes C. The last Subscription of a
// user unsubscribes that user's channel; the Engine's connections close
// with its last Subscription.
func (s *Subscription) Close() error {
	s.once.Do(func() {
		s.stopMu.Lock()
		if s.stop != nil {
			s.stop()
		}
		s.stopMu.Unlock()
		s.h.remove(s)
		close(s.c)
	})
	return nil
}

// Subscribe listens for the events of the given users (logins, evictions,
// revocations, logouts, rotations, expiries), as the scripts publish them
// with Config.Events set. It returns once Redis confirmed every
// subscription, so anything published afterwards is delivered. Under
// EventsSharded each user's channel lives in the user's hash slot; the
// engine subscribes it on the master that owns the slot, over the one
// connection it keeps to that master.
func (e *Engine) Subscribe(ctx context.Context, userIDs ...string) (*Subscription, error) {
	if e.cfg.Events == EventsOff {
		return nil, fmt.Errorf("%w: Subscribe needs Config.Events", ErrInvalidConfig)
	}
	if len(userIDs) == 0 {
		return nil, fmt.Errorf("%w: Subscribe needs at least one user", ErrInvalidUserID)
	}
	channels := make(map[string]string, len(userIDs))
	for _, u := range userIDs {
		if err := checkUserID(u); err != nil {
			return nil, err
		}
		channels[e.keysOf(u).channel] = u
	}
	if err := ctx.Err(); err != nil {
		return nil, unavailable("subscribe", err)
	}
	h := e.eventHub()
	s := &Subscription{c: make(chan Event, SubscriptionBuffer), h: h}
	confs, err := h.add(ctx, s, channels)
	if err != nil {
		s.Close()
		return nil, err
	}
	for _, c := range confs {
		select {
		case <-c.done:
			if c.err != nil {
				s.Close()
				return nil, c.err
			}
		case <-ctx.Done():
			s.Close()
			return nil, unavailable("subscribe", ctx.Err())
		}
	}
	s.stopMu.Lock()
	s.stop = context.AfterFunc(ctx, func() { s.Close() })
	s.stopMu.Unlock()
	return s, nil
}
