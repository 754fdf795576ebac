package sessioncap

import (
	"errors"
	"testing"
	"time"
)

func TestHistoryRecordsEveryChangeNewestFirst(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		idle := 10 * time.Minute
		e := b.engine(t, Config{MaxSessions: 2, HistoryLimit: HistoryAll, IdleTimeout: idle})
		r1 := mustLogin(t, e, "alice", Meta{IP: "10.0.0.1", UserAgent: "laptop"})
		b.clock.Add(time.Second)
		r2 := mustLogin(t, e, "alice", Meta{IP: "10.0.0.2", UserAgent: "phone"})
		b.clock.Add(time.Second)
		r3 := mustLogin(t, e, "alice", Meta{IP: "10.0.0.3", UserAgent: "tv"}) // evicts r1
		b.clock.Add(time.Second)
		tok, err := e.Rotate(ctx, r3.Token)
		if err != nil {
			t.Fatal(err)
		}
		b.clock.Add(time.Second)
		if _, err := e.LogoutOthers(ctx, tok); err != nil { // ends r2
			t.Fatal(err)
		}
		// r3 idles out; the next login notices and records the real time.
		expiredAt := b.clock.Now().Add(-2 * time.Second).Add(idle) // last touch was at login
		b.clock.Add(idle + time.Minute)
		r4 := mustLogin(t, e, "alice", Meta{IP: "10.0.0.4", UserAgent: "tablet"})
		if err := e.Revoke(ctx, "alice", r4.SessionID); err != nil {
			t.Fatal(err)
		}
		got, err := e.History(ctx, "alice", 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		want := []struct {
			typ  Reason
			sid  string
			by   string
			ua   string
			at   time.Time
			note string
		}{
			{ReasonRevoked, r4.SessionID, "", "tablet", time.Time{}, "revoke"},
			{ReasonLogin, r4.SessionID, "", "tablet", time.Time{}, "login 4"},
			{ReasonExpired, r3.SessionID, "", "tv", expiredAt, "expiry, with the real time"},
			{ReasonLogoutOthers, r2.SessionID, r3.SessionID, "phone", time.Time{}, "logout others"},
			{ReasonRotated, r3.SessionID, "", "tv", time.Time{}, "rotate"},
			{ReasonLimit, r1.SessionID, r3.SessionID, "laptop", t0.Add(2 * time.Second), "eviction"},
			{ReasonLogin, r3.SessionID, "", "tv", t0.Add(2 * time.Second), "login 3"},
			{ReasonLogin, r2.SessionID, "", "phone", t0.Add(time.Second), "login 2"},
			{ReasonLogin, r1.SessionID, "", "laptop", t0, "login 1"},
		}
		if len(got) != len(want) {
			for _, g := range got {
				t.Logf("%+v", g)
			}
			t.Fatalf("%d history records, want %d", len(got), len(want))
		}
		for i, w := range want {
			g := got[i]
			if g.Type != w.typ || g.SessionID != w.sid || g.By != w.by || g.UserAgent != w.ua || g.UserID != "alice" ||
				(!w.at.IsZero() && !g.At.Equal(w.at)) {
				t.Errorf("history[%d] (%s) = %+v", i, w.note, g)
			}
		}
		// Paging.
		page, err := e.History(ctx, "alice", 2, 3)
		if err != nil || len(page) != 3 || page[0].Type != ReasonExpired {
			t.Fatalf("History(2, 3) = %+v, %v", page, err)
		}
		if _, err := e.History(ctx, "alice", -1, 3); !errors.Is(err, ErrInvalidInput) {
			t.Fatalf("negative offset: %v", err)
		}
	})
}

func TestHistoryLimitKeepsNewestN(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		for _, tc := range []struct {
			limit, logins, want int
		}{{0, 5, 0}, {3, 5, 3}, {HistoryAll, 7, 7 + 6}} { // HistoryAll: 7 logins and 6 evictions
			e := b.engine(t, Config{HistoryLimit: tc.limit, KeyPrefix: b.prefix + "-" + time.Duration(tc.limit).String()})
			var last *LoginResult
			for i := 0; i < tc.logins; i++ {
				last = mustLogin(t, e, "alice", Meta{})
			}
			got, err := e.History(ctx, "alice", 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.want {
				t.Fatalf("HistoryLimit %d: %d records, want %d", tc.limit, len(got), tc.want)
			}
			if tc.limit != 0 && got[0].SessionID != last.SessionID && got[1].SessionID != last.SessionID {
				t.Fatalf("HistoryLimit %d: newest records do not mention the last login", tc.limit)
			}
			if tc.limit == 0 {
				n, _ := b.client.Exists(ctx, last.Session.keys.hist).Result()
				if n != 0 {
					t.Fatal("HistoryLimit 0 wrote a history key")
				}
			}
		}
	})
}

func TestSubscribeDeliversEndingsLive(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		mode := EventsPubSub
		if b.name == "cluster" {
			mode = EventsSharded
		}
		e := b.engine(t, Config{MaxSessions: 1, Events: mode})
		r1 := mustLogin(t, e, "alice", Meta{UserAgent: "stream box"})
		sub, err := e.Subscribe(ctx, "alice", "bob")
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		r2 := mustLogin(t, e, "alice", Meta{UserAgent: "phone"})
		mustLogin(t, e, "carol", Meta{}) // not subscribed
		if err := e.Logout(ctx, r2.Token); err != nil {
			t.Fatal(err)
		}
		want := []struct {
			typ Reason
			sid string
		}{{ReasonLogin, r2.SessionID}, {ReasonLimit, r1.SessionID}, {ReasonLogout, r2.SessionID}}
		for i, w := range want {
			select {
			case ev := <-sub.C():
				if ev.Type != w.typ || ev.SessionID != w.sid || ev.UserID != "alice" {
					t.Fatalf("event %d = %+v, want %s of %s", i, ev, w.typ, w.sid)
				}
				if ev.Type == ReasonLimit && ev.By != r2.SessionID {
					t.Fatalf("eviction event names %q as the cause, want %s", ev.By, r2.SessionID)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("event %d (%s) not delivered", i, w.typ)
			}
		}
		select {
		case ev := <-sub.C():
			t.Fatalf("unexpected event %+v", ev)
		case <-time.After(100 * time.Millisecond):
		}
		if err := sub.Close(); err != nil {
			t.Fatal(err)
		}
		if _, ok := <-sub.C(); ok {
			t.Fatal("C not closed after Close")
		}
		off := b.engine(t, Config{})
		if _, err := off.Subscribe(ctx, "alice"); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("Subscribe with events off: %v", err)
		}
	})
}
