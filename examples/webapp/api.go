package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/sessioncap/sessioncap"
	"github.com/sessioncap/sessioncap/httpsession"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func jsonError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error": code, "message": msg})
}

// engineError answers an engine error: a bad or unknown session ID as
// 400 or 404, session failures as the middleware would (endings.go),
// anything else as a 500 that does not leak internals.
func (a *app) engineError(w http.ResponseWriter, r *http.Request, err error) {
	a.pageError(w, r, err)
}

// readJSON decodes a small request body.
func readJSON(r *http.Request, v any) error {
	return json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(v)
}

type loginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
	// Replace names a live session to sign out in this sign-in's place,
	// the way out of a 409 under -overflow reject: one atomic step, and
	// the ended device hears "replaced", by this sign-in. Revoke is its
	// older name.
	Replace string `json:"replace,omitempty"`
	Revoke  string `json:"revoke,omitempty"`
}

func (a *app) apiLogin(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if err := readJSON(r, &req); err != nil {
		jsonError(w, http.StatusBadRequest, "bad_request", "Body must be JSON: {\"user\":..., \"password\":...}.")
		return
	}
	if req.Replace == "" {
		req.Replace = req.Revoke
	}
	res, err := a.login(w, r, req.User, req.Password, req.Replace)
	var limit *sessioncap.LimitError
	switch {
	case errors.Is(err, errLoginFailed):
		jsonError(w, http.StatusUnauthorized, "bad_credentials", "Wrong user name or password.")
		return
	case errors.As(err, &limit):
		writeJSON(w, http.StatusConflict, map[string]any{
			"error":    "limit",
			"message":  fmt.Sprintf("%s already holds %d of %d sessions. Sign one out in this sign-in's place by repeating the request with \"replace\": \"<session_id>\".", req.User, len(limit.Sessions), limit.Limit),
			"limit":    limit.Limit,
			"sessions": listJSON(limit.Sessions, ""),
		})
		return
	case err != nil:
		a.engineError(w, r, err)
		return
	}
	evicted := res.Evicted
	if evicted == nil {
		evicted = []string{}
	}
	// What this sign-in signed out, by name: each of them is told it was
	// this device.
	devices := make([]*httpsession.Device, 0, len(res.EvictedDevices))
	for _, d := range res.EvictedDevices {
		devices = append(devices, viewDevice(d))
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"token":           res.Token,
		"session_id":      res.SessionID,
		"user":            res.Session.UserID,
		"expires_at":      res.Session.ExpiresAt.UTC(),
		"evicted":         evicted,
		"evicted_devices": devices,
	})
}

func (a *app) apiMe(w http.ResponseWriter, r *http.Request) {
	s := httpsession.FromContext(r.Context())
	writeJSON(w, http.StatusOK, map[string]any{
		"user":       s.UserID,
		"session_id": s.ID,
		"admin":      a.accounts[s.UserID] != nil && a.accounts[s.UserID].admin,
		"expires_at": s.ExpiresAt.UTC(),
	})
}

func (a *app) apiSessions(w http.ResponseWriter, r *http.Request) {
	s := httpsession.FromContext(r.Context())
	list, err := a.engine.Sessions(r.Context(), s.UserID)
	if err != nil {
		a.engineError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": listJSON(list, s.ID)})
}

// apiRevoke revokes one of the caller's own sessions: the user ID comes from
// the caller's session, never from the request, so nobody can revoke
// another user's session by guessing its ID. The caller's session is
// recorded as the actor, so the ended device is told which device it was.
func (a *app) apiRevoke(w http.ResponseWriter, r *http.Request) {
	s := httpsession.FromContext(r.Context())
	id := r.PathValue("id")
	err := a.engine.RevokeWith(r.Context(), s.UserID, id, sessioncap.EndOptions{
		Reason: sessioncap.ReasonRevoked, By: sessioncap.Actor{Session: s},
	})
	if err != nil {
		a.engineError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"revoked": id, "current": id == s.ID})
}

func (a *app) apiLogout(w http.ResponseWriter, r *http.Request) {
	if err := a.sess.Logout(w, r); err != nil {
		a.engineError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"logged_out": true})
}

func (a *app) apiLogoutOthers(w http.ResponseWriter, r *http.Request) {
	ended, err := a.sess.LogoutOthers(r)
	if err != nil {
		a.engineError(w, r, err)
		return
	}
	if ended == nil {
		ended = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"ended": ended})
}

// apiRotate issues a new token for the same session, as an app does on a
// privilege change; bearer clients get the token, cookie clients a cookie.
func (a *app) apiRotate(w http.ResponseWriter, r *http.Request) {
	tok, err := a.sess.Rotate(w, r)
	if err != nil {
		a.engineError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": tok})
}

func (a *app) apiAdminLogout(w http.ResponseWriter, r *http.Request) {
	s := httpsession.FromContext(r.Context())
	actor := a.accounts[s.UserID]
	if actor == nil || !actor.admin {
		jsonError(w, http.StatusForbidden, "forbidden", "Admins only.")
		return
	}
	var req struct {
		Users []string `json:"users"`
	}
	if err := readJSON(r, &req); err != nil {
		jsonError(w, http.StatusBadRequest, "bad_request", "Body must be JSON: {\"users\": [...]}.")
		return
	}
	req.Users = slices.Compact(slices.Sorted(slices.Values(req.Users)))
	if len(req.Users) == 0 {
		jsonError(w, http.StatusBadRequest, "bad_request", "Name at least one user: {\"users\": [...]}.")
		return
	}
	n, unknown, forbidden, err := a.adminLogout(r.Context(), actor, req.Users)
	if len(unknown) > 0 {
		writeJSON(w, http.StatusNotFound, map[string]any{
			"error":   "unknown_user",
			"message": "No such user: nothing was signed out.",
			"unknown": unknown,
		})
		return
	}
	if len(forbidden) > 0 {
		writeJSON(w, http.StatusForbidden, map[string]any{
			"error":     "forbidden",
			"message":   "Signing out admins needs the logout_all permission.",
			"forbidden": forbidden,
		})
		return
	}
	if err != nil {
		a.engineError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": req.Users, "ended": n})
}

// eventJSON is a history entry or a live event: what happened (Type, a
// reason for an ending), to which device, and who acted: Actor, one of the
// user's devices, or Admin.
type eventJSON struct {
	Type      string              `json:"type"`
	At        time.Time           `json:"at"`
	SessionID string              `json:"session_id"`
	By        string              `json:"by,omitempty"`
	Device    string              `json:"device"`
	IP        string              `json:"ip"`
	UserAgent string              `json:"user_agent"`
	Actor     *httpsession.Device `json:"actor,omitempty"`
	Admin     string              `json:"admin,omitempty"`
}

func eventToJSON(e sessioncap.Event) eventJSON {
	return eventJSON{Type: string(e.Type), At: e.At.UTC(), SessionID: e.SessionID, By: e.By,
		Device: e.DeviceName(), IP: e.IP, UserAgent: e.UserAgent, Actor: viewDevice(e.Actor), Admin: e.Admin}
}

func (a *app) apiHistory(w http.ResponseWriter, r *http.Request) {
	s := httpsession.FromContext(r.Context())
	events, err := a.engine.History(r.Context(), s.UserID, 0, 50)
	if err != nil {
		a.engineError(w, r, err)
		return
	}
	out := make([]eventJSON, 0, len(events))
	for _, e := range events {
		out = append(out, eventToJSON(e))
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": out})
}

// endsSession reports whether an event type means a session is gone.
func endsSession(t sessioncap.EventType) bool {
	switch t {
	case sessioncap.EventLogin, sessioncap.ReasonRotated:
		return false
	}
	return true
}

// sseHeartbeat keeps idle proxies from cutting the stream.
var sseHeartbeat = 20 * time.Second

// apiEvents streams the user's session events as Server-Sent Events. When
// the caller's own session ends it sends "ended" and closes: the page then
// asks /api/me, whose 401 body (read from the tombstone) says why and by
// which device. Pub/Sub is at-most-once, so after subscribing the handler
// checks once that its session is still listed, closing the window between
// the middleware's Validate and the subscription. Streams are capped per
// session and per user (streams.go): beyond the cap the answer is 429.
//
// The request's deadline (requests.go) covers the checks and the
// subscription; the stream itself lives until the client leaves.
func (a *app) apiEvents(w http.ResponseWriter, r *http.Request) {
	s := httpsession.FromContext(r.Context())
	ctx, cancel := context.WithCancel(streamContext(r))
	defer cancel()
	release, ok := a.streams.acquire(w, s, a.cfg.StreamsPerSession, a.cfg.StreamsPerUser)
	if !ok {
		return
	}
	defer release()
	// Until Redis confirms the subscription, the request's deadline ends it.
	stop := context.AfterFunc(r.Context(), cancel)
	sub, err := a.engine.Subscribe(ctx, s.UserID)
	if !stop() && err == nil {
		sub.Close()
		err = fmt.Errorf("%w: subscribe: %w", sessioncap.ErrUnavailable, r.Context().Err())
	}
	if err != nil {
		a.engineError(w, r, err)
		return
	}
	defer sub.Close()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	send := func(event string, v any) bool {
		b, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	list, err := a.engine.Sessions(r.Context(), s.UserID)
	if err != nil {
		a.engineError(w, r, err)
		return
	}
	if !slices.ContainsFunc(list, func(x sessioncap.Session) bool { return x.ID == s.ID }) {
		send("ended", map[string]string{"session_id": s.ID})
		return
	}
	if !send("ready", map[string]string{"session_id": s.ID}) {
		return
	}
	tick := time.NewTicker(sseHeartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case ev, ok := <-sub.C():
			if !ok {
				return
			}
			if ev.SessionID == s.ID && endsSession(ev.Type) {
				send("ended", eventToJSON(ev))
				return
			}
			if !send("changed", eventToJSON(ev)) {
				return
			}
		}
	}
}
