package sessioncap

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestFullRedisUnderNoeviction: with maxmemory reached and the noeviction
// policy, Redis refuses every command that may grow memory. Validate must
// still answer (a refresh that cannot be written is skipped, not an
// error), and Logout, Revoke, LogoutAll and LogoutOthers must still end
// their sessions (the why may be lost: the records are deleted instead of
// tombstoned). A sign-in fails as a whole: no session, no history entry,
// no event. Once memory is back, the index heals.
//
// Both forms of the scripts: Redis refuses a function at out of memory
// before it starts (the library's functions keep the default flags), and
// the engine then runs the EVAL form, whose rules these endings rely on
// (lib.lua, done); an EvalOnly engine runs it directly.
func TestFullRedisUnderNoeviction(t *testing.T) {
	needRedisServer(t, "a full Redis under noeviction")
	for _, evalOnly := range []bool{false, true} {
		t.Run(map[bool]string{false: "functions", true: "eval"}[evalOnly], func(t *testing.T) {
			fullRedisUnderNoeviction(t, evalOnly)
		})
	}
}

func fullRedisUnderNoeviction(t *testing.T, evalOnly bool) {
	ctx := context.Background()
	rdb := ownRedis(t, "--maxmemory-policy", "noeviction")
	clk := newClock()
	e, err := New(rdb, Config{MaxSessions: 3, IdleTimeout: time.Hour, TouchInterval: time.Minute,
		HistoryLimit: 20, Events: EventsPubSub, Now: clk.Now, EvalOnly: evalOnly})
	if err != nil {
		t.Fatal(err)
	}
	type pair struct{ a, b *LoginResult }
	users := map[string]pair{}
	for _, u := range []string{"logout", "revoke", "all", "others", "validate", "login"} {
		users[u] = pair{mustLogin(t, e, u, Meta{UserAgent: "a"}), mustLogin(t, e, u, Meta{UserAgent: "b"})}
	}
	sub, err := e.Subscribe(ctx, "login")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	// Fill Redis past a maxmemory set below what it already uses.
	setMaxmemory(t, rdb, usedMemory(t, rdb)/2)
	if err := rdb.Set(ctx, "filler", strings.Repeat("x", 1<<20), 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "OOM") {
		t.Fatalf("a plain SET under maxmemory: %v, want OOM", err)
	}

	clk.Add(2 * time.Minute) // every session is due a last-seen refresh
	v := users["validate"]
	for i := 0; i < 3; i++ {
		s, err := e.Validate(ctx, v.a.Token)
		if err != nil {
			t.Fatalf("Validate due a refresh on a full Redis: %v", err)
		}
		if !s.LastSeenAt.Equal(t0) {
			t.Fatalf("last seen %v: a refresh that could not be written was reported", s.LastSeenAt)
		}
	}

	gone := func(what, tok string) {
		t.Helper()
		if _, err := e.Validate(ctx, tok); !errors.Is(err, ErrExpired) && !errors.Is(err, ErrRevoked) {
			t.Fatalf("%s on a full Redis: the session still validates (%v)", what, err)
		}
	}
	if err := e.Logout(ctx, users["logout"].a.Token); err != nil {
		t.Fatalf("Logout on a full Redis: %v", err)
	}
	gone("Logout", users["logout"].a.Token)
	validOK(t, e, users["logout"].b.Token)
	if err := e.Revoke(ctx, "revoke", users["revoke"].a.SessionID); err != nil {
		t.Fatalf("Revoke on a full Redis: %v", err)
	}
	gone("Revoke", users["revoke"].a.Token)
	if n, err := e.LogoutAll(ctx, "all"); err != nil || n != 2 {
		t.Fatalf("LogoutAll on a full Redis: %d, %v", n, err)
	}
	gone("LogoutAll", users["all"].a.Token)
	gone("LogoutAll", users["all"].b.Token)
	if ended, err := e.LogoutOthers(ctx, users["others"].b.Token); err != nil || len(ended) != 1 {
		t.Fatalf("LogoutOthers on a full Redis: %v, %v", ended, err)
	}
	gone("LogoutOthers", users["others"].a.Token)
	validOK(t, e, users["others"].b.Token)

	histBefore, err := e.History(ctx, "login", 0, 20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Login(ctx, "login", Meta{UserAgent: "c"}); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "OOM") {
		t.Fatalf("Login on a full Redis: %v, want ErrUnavailable wrapping OOM", err)
	}
	if n := liveCount(t, e, "login"); n != 2 {
		t.Fatalf("%d sessions after a refused sign-in, want the 2 there were", n)
	}
	if h, _ := e.History(ctx, "login", 0, 20); len(h) != len(histBefore) {
		t.Fatalf("a refused sign-in left %d history entries, there were %d", len(h), len(histBefore))
	}
	select {
	case ev := <-sub.C():
		t.Fatalf("a refused sign-in published %+v", ev)
	case <-time.After(300 * time.Millisecond):
	}

	// The function form was refused, not run, and the engine kept it for
	// when memory is back.
	if refused := commandStats(t, rdb)["fcall"]["rejected_calls"]; evalOnly != (refused == 0) || e.functions() == evalOnly {
		t.Fatalf("EvalOnly %v: %d FCALLs refused, functions in use afterwards: %v", evalOnly, refused, e.functions())
	}

	// Memory back: everything works, and the index holds no session whose
	// record the full Redis made it delete.
	setMaxmemory(t, rdb, 0)
	for u, p := range users {
		n := mustLogin(t, e, u, Meta{UserAgent: "after"})
		tokens := map[string]string{p.a.SessionID: p.a.Token, p.b.SessionID: p.b.Token, n.SessionID: n.Token}
		list, err := e.Sessions(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range list {
			if _, err := e.Validate(ctx, tokens[s.ID]); err != nil {
				t.Fatalf("user %s lists session %s that does not validate: %v", u, s.ID, err)
			}
		}
		if _, err := e.LogoutAll(ctx, u); err != nil {
			t.Fatal(err)
		}
		if n := liveCount(t, e, u); n != 0 {
			t.Fatalf("user %s: %d sessions after LogoutAll", u, n)
		}
	}
}

func usedMemory(t *testing.T, rdb *redis.Client) int64 {
	t.Helper()
	return infoInt(t, rdb, "memory", "used_memory")
}

func setMaxmemory(t *testing.T, rdb *redis.Client, n int64) {
	t.Helper()
	if err := rdb.ConfigSet(context.Background(), "maxmemory", fmt.Sprint(n)).Err(); err != nil {
		t.Fatal(err)
	}
}
