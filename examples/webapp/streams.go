package main

import (
	"fmt"
	"net/http"
	"sync"

	"github.com/sessioncap/sessioncap"
)

// Event streams (/api/events) are capped per session and per user, in each
// app process:
//
//   - DefaultStreamsPerSession (4) open streams per session: a browser has a
//     few tabs of the site open at once, rarely more;
//   - DefaultStreamsPerUser (16) per user, over all their sessions.
//
// A request beyond either cap is answered 429 Too Many Requests with a JSON
// body {"error": "too_many_streams", "message": ..., "limit": N, "scope":
// "session" or "user"} and a Retry-After header, before any subscription is
// made; an EventSource gives up on a non-200 answer, so a page over the cap
// simply shows no live banner. The streams themselves share the engine's
// Pub/Sub connections (one per Redis, one per Cluster master, however many
// streams), so the caps bound goroutines and memory per user, not Redis
// connections; they also keep one signed-in user from holding thousands of
// slots of the server's connection limit. A stream ends, and frees its slot,
// when the page closes it, when its session ends, or when the server shuts
// down.
const (
	DefaultStreamsPerSession = 4
	DefaultStreamsPerUser    = 16
)

// streamCaps counts the open streams. The zero value is ready; limits come
// from appConfig.
type streamCaps struct {
	mu        sync.Mutex
	bySession map[string]int
	byUser    map[string]int
}

// acquire takes a stream slot for s, or answers 429 and returns ok false.
// release must be called once the stream ends.
func (c *streamCaps) acquire(w http.ResponseWriter, s *sessioncap.Session, perSession, perUser int) (release func(), ok bool) {
	if perSession <= 0 {
		perSession = DefaultStreamsPerSession
	}
	if perUser <= 0 {
		perUser = DefaultStreamsPerUser
	}
	c.mu.Lock()
	if c.bySession == nil {
		c.bySession, c.byUser = map[string]int{}, map[string]int{}
	}
	scope, limit := "", 0
	switch {
	case c.bySession[s.ID] >= perSession:
		scope, limit = "session", perSession
	case c.byUser[s.UserID] >= perUser:
		scope, limit = "user", perUser
	}
	if scope == "" {
		c.bySession[s.ID]++
		c.byUser[s.UserID]++
	}
	c.mu.Unlock()
	if scope != "" {
		w.Header().Set("Retry-After", "30")
		writeJSON(w, http.StatusTooManyRequests, map[string]any{
			"error": "too_many_streams",
			"message": fmt.Sprintf("this %s already has %d live event streams open, the most allowed; close a tab or retry later",
				scope, limit),
			"limit": limit,
			"scope": scope,
		})
		return nil, false
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.bySession[s.ID]--; c.bySession[s.ID] <= 0 {
				delete(c.bySession, s.ID)
			}
			if c.byUser[s.UserID]--; c.byUser[s.UserID] <= 0 {
				delete(c.byUser, s.UserID)
			}
		})
	}, true
}

// total reports how many streams are open in all.
func (c *streamCaps) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.byUser {
		n += v
	}
	return n
}
