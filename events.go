package sessioncap

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
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

// Subscription delivers the live events of some users. Pub/Sub is
// at-most-once: a message published while the subscriber is disconnected is
// lost, so treat events as a prompt to act at once (cut a stream, close a
// WebSocket) and Validate, the tombstones and History as the truth.
type Subscription struct {
	c      chan Event
	subs   []*redis.PubSub
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// C returns the channel of events. It is closed after Close, or when the
// context given to Subscribe ends.
func (s *Subscription) C() <-chan Event { return s.c }

// Close stops the subscription and closes C.
func (s *Subscription) Close() error {
	var err error
	s.once.Do(func() {
		s.cancel()
		for _, p := range s.subs {
			if e := p.Close(); e != nil && err == nil {
				err = e
			}
		}
		s.wg.Wait()
		close(s.c)
	})
	return err
}

// Subscribe listens for the events of the given users (logins, evictions,
// revocations, logouts, rotations, expiries), as the scripts publish them
// with Config.Events set. It returns once Redis confirmed every
// subscription, so anything published afterwards is delivered. Under
// EventsSharded each user gets their own shard subscription, since their
// channels may live on different cluster nodes.
func (e *Engine) Subscribe(ctx context.Context, userIDs ...string) (*Subscription, error) {
	if e.cfg.Events == EventsOff {
		return nil, fmt.Errorf("%w: Subscribe needs Config.Events", ErrInvalidConfig)
	}
	if len(userIDs) == 0 {
		return nil, fmt.Errorf("%w: Subscribe needs at least one user", ErrInvalidUserID)
	}
	users := make(map[string]string, len(userIDs))
	var channels []string
	for _, u := range userIDs {
		if err := checkUserID(u); err != nil {
			return nil, err
		}
		ch := keysFor(e.cfg.KeyPrefix, userDigest(u)).channel
		if _, dup := users[ch]; !dup {
			channels = append(channels, ch)
		}
		users[ch] = u
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Subscription{c: make(chan Event, 64), cancel: cancel}
	groups := [][]string{channels}
	if e.cfg.Events == EventsSharded {
		groups = groups[:0]
		for _, ch := range channels {
			groups = append(groups, []string{ch})
		}
	}
	for _, g := range groups {
		var p *redis.PubSub
		if e.cfg.Events == EventsSharded {
			p = e.rdb.SSubscribe(ctx, g...)
		} else {
			p = e.rdb.Subscribe(ctx, g...)
		}
		s.subs = append(s.subs, p)
		for range g {
			if _, err := p.Receive(ctx); err != nil {
				s.Close()
				return nil, unavailable("subscribe", err)
			}
		}
	}
	for _, p := range s.subs {
		s.wg.Add(1)
		go func(ch <-chan *redis.Message) {
			defer s.wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case m, ok := <-ch:
					if !ok {
						return
					}
					ev, err := parseEvent(users[m.Channel], m.Payload)
					if err != nil {
						e.cfg.Logger.Warn("sessioncap: dropping malformed event", "channel", m.Channel)
						continue
					}
					select {
					case s.c <- ev:
					case <-ctx.Done():
						return
					}
				}
			}
		}(p.Channel())
	}
	go func() { <-ctx.Done(); s.Close() }()
	return s, nil
}
