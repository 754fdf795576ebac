package sessioncap

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// EventType says what an Event is about: a sign-in (EventLogin) or a
// session's end, named by its Reason. It is Reason under another name, so
// the two compare without conversion and code written when Event.Type was
// a Reason still compiles.
type EventType = Reason

// EventLogin is the Type of the Event a sign-in records.
const EventLogin EventType = "login"

// Event is one entry of a user's history, and what Subscribe delivers.
type Event struct {
	UserID string
	// Type is what happened: EventLogin, or how a session ended
	// (ReasonEvicted, ReasonLogout, ReasonLogoutOthers,
	// ReasonLogoutEverywhere, ReasonAdmin, ReasonRevoked, ReasonRotated or
	// ReasonExpired).
	Type EventType
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
	// Actor is the device of the session that acted (By), with its IP and
	// user agent, when one did; zero otherwise. Entries written before
	// actors were recorded carry only By.
	Actor Device
	// Admin names who acted when it was not one of the user's sessions
	// (Actor.Admin of LogoutAllWith, RevokeWith).
	Admin string
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
	ip, ua, _, rest, err := decodeMetaRest(e[histMeta:])
	if err != nil {
		return Event{}, err
	}
	ev := Event{
		UserID:    userID,
		Type:      reason,
		At:        fromMS(at),
		SessionID: publicID([sidLen]byte([]byte(e[histSID:histBy]))),
		By:        publicID([sidLen]byte([]byte(e[histBy:histMeta]))),
		IP:        ip,
		UserAgent: ua,
	}
	if rest != "" {
		a, err := decodeActor(rest)
		if err != nil {
			return Event{}, err
		}
		if e[histBy:histMeta] != string(zeroSID[:]) {
			ev.Actor = Device{SessionID: ev.By, IP: a.ip, UserAgent: a.ua}
		}
		ev.Admin = a.admin
	}
	return ev, nil
}

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
