package sessioncap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

var ctx = context.Background()

// validOK asserts the token validates and returns the session.
func validOK(t *testing.T, e *Engine, token string) *Session {
	t.Helper()
	s, err := e.Validate(ctx, token)
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return s
}

func TestLoginIsOneRoundTripAndValidateOneCommand(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		e := b.engine(t, Config{MaxSessions: 3, IdleTimeout: 10 * time.Minute, TouchInterval: time.Minute})
		// Warm up so no call below meets a missing script: the Login loads
		// the function library (on every master), or, in the EVAL form,
		// the login script; the cold path is tested in
		// TestScriptCacheFlushCostsOneRetry.
		warm := mustLogin(t, e, "warm", Meta{})
		validOK(t, e, warm.Token)
		// That Validate took the HGET path (the touch cache knew the new
		// session), so load the EVAL form's validate script too, on every
		// shard.
		if err := scriptValidate.eval.Load(ctx, b.client).Err(); err != nil {
			t.Fatal(err)
		}

		for i := 0; i < 5; i++ { // 4th and 5th logins evict
			b.count.reset()
			mustLogin(t, e, "alice", Meta{IP: "10.0.0.1", UserAgent: "ua"})
			if got := b.count.trips.Load(); got != 1 {
				t.Fatalf("login %d: %d round trips, want 1", i, got)
			}
		}
		r := mustLogin(t, e, "alice", Meta{})
		// The touch cache (touch.go) turns the read-only calls into a plain
		// HGET; a due refresh runs the script. Either way, one command.
		for _, step := range []struct {
			name    string
			advance time.Duration
			want    string
		}{
			{"read-only", 0, "hget"},
			{"read-only again", 30 * time.Second, "hget"},
			{"sliding refresh", 2 * time.Minute, "script"},
			{"read-only after the refresh", 10 * time.Second, "hget"},
			{"refresh after touch interval", 5 * time.Minute, "script"},
		} {
			b.clock.Add(step.advance)
			b.count.reset()
			s := validOK(t, e, r.Token)
			sent := b.count.sent(step.want) || step.want == "script" && b.count.sentScript()
			if got := b.count.cmds.Load(); got != 1 || !sent {
				t.Fatalf("%s: Validate sent %d commands, want 1 %s", step.name, got, step.want)
			}
			if step.want == "script" && !s.LastSeenAt.Equal(b.clock.Now()) {
				t.Fatalf("%s: LastSeenAt %v, want %v", step.name, s.LastSeenAt, b.clock.Now())
			}
		}
	})
}

func TestEvictsOldestAndTellsWhyAndByWhom(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		e := b.engine(t, Config{MaxSessions: 2})
		r1 := mustLogin(t, e, "alice", Meta{IP: "10.0.0.1", UserAgent: "Firefox on Windows"})
		b.clock.Add(time.Second)
		r2 := mustLogin(t, e, "alice", Meta{IP: "10.0.0.2", UserAgent: "Safari on iPhone"})
		b.clock.Add(time.Second)
		at := b.clock.Now()
		r3 := mustLogin(t, e, "alice", Meta{IP: "10.0.0.3", UserAgent: "Chrome on Linux"})
		if !slices.Equal(r3.Evicted, []string{r1.SessionID}) {
			t.Fatalf("evicted %v, want [%s]", r3.Evicted, r1.SessionID)
		}
		_, err := e.Validate(ctx, r1.Token)
		if !errors.Is(err, ErrEvicted) {
			t.Fatalf("Validate(evicted) = %v, want ErrEvicted", err)
		}
		var ev *EvictedError
		if !errors.As(err, &ev) {
			t.Fatalf("error %T is not *EvictedError", err)
		}
		want := Ending{UserID: "alice", SessionID: r1.SessionID, At: at, Reason: ReasonLimit,
			By: Device{SessionID: r3.SessionID, IP: "10.0.0.3", UserAgent: "Chrome on Linux"}}
		if !ev.At.Equal(want.At) || ev.UserID != want.UserID || ev.SessionID != want.SessionID ||
			ev.Reason != want.Reason || ev.By != want.By {
			t.Fatalf("eviction = %+v\nwant      %+v", ev.Ending, want)
		}
		validOK(t, e, r2.Token)
		validOK(t, e, r3.Token)
		// The tombstone is readable for TombstoneTTL, then reads as expired.
		b.clock.Add(DefaultTombstoneTTL)
		if _, err := e.Validate(ctx, r1.Token); !errors.Is(err, ErrExpired) {
			t.Fatalf("after tombstone TTL: %v, want ErrExpired", err)
		}
	})
}

// Five logins in the same millisecond with a cap of 3 must keep the three
// newest. With the login time alone as the score, ties would sort by member
// (random session ID) and could evict the newest.
func TestSameMillisecondLoginsKeepStrictOrder(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		for round := 0; round < 20; round++ {
			e := b.engine(t, Config{MaxSessions: 3, KeyPrefix: fmt.Sprintf("%s-%d", b.prefix, round)})
			var rs []*LoginResult
			for i := 0; i < 5; i++ {
				rs = append(rs, mustLogin(t, e, "alice", Meta{UserAgent: fmt.Sprint("device ", i)}))
			}
			for i, r := range rs {
				_, err := e.Validate(ctx, r.Token)
				if i < 2 && !errors.Is(err, ErrEvicted) {
					t.Fatalf("round %d: login %d: %v, want evicted", round, i, err)
				}
				if i >= 2 && err != nil {
					t.Fatalf("round %d: login %d (among the newest 3): %v", round, i, err)
				}
			}
			list, err := e.Sessions(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range list { // newest first
				if want := rs[4-i].SessionID; s.ID != want {
					t.Fatalf("round %d: Sessions()[%d] = %s, want %s", round, i, s.ID, want)
				}
			}
		}
	})
}

func TestRejectNewReturnsLiveSessions(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		e := b.engine(t, Config{MaxSessions: 2, Overflow: RejectNew})
		r1 := mustLogin(t, e, "alice", Meta{UserAgent: "one"})
		b.clock.Add(time.Millisecond)
		r2 := mustLogin(t, e, "alice", Meta{UserAgent: "two"})
		_, err := e.Login(ctx, "alice", Meta{UserAgent: "three"})
		var le *LimitError
		if !errors.Is(err, ErrLimitReached) || !errors.As(err, &le) {
			t.Fatalf("Login at cap = %v, want *LimitError", err)
		}
		if le.Limit != 2 || len(le.Sessions) != 2 || le.Sessions[0].ID != r2.SessionID || le.Sessions[1].ID != r1.SessionID {
			t.Fatalf("LimitError = %+v", le)
		}
		validOK(t, e, r1.Token)
		// Signing one out makes room.
		if err := e.Revoke(ctx, "alice", r1.SessionID); err != nil {
			t.Fatal(err)
		}
		mustLogin(t, e, "alice", Meta{UserAgent: "three"})
	})
}

func TestLimiterPerUser(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		plans := map[string]string{"basic": "basic", "family": "premium", "root": "admin"}
		e := b.engine(t, Config{Limiter: PlanLimits(func(_ context.Context, u string) (string, error) {
			if u == "broken" {
				return "", errors.New("plan store down")
			}
			return plans[u], nil
		}, map[string]int{"basic": 1, "premium": 4, "admin": Unlimited})})
		for _, tc := range []struct {
			user   string
			logins int
			live   int
		}{
			{"basic", 3, 1},
			{"family", 6, 4},
			{"root", 12, 12},
			{"nobody", 3, 1}, // no plan: Config.MaxSessions default 1
		} {
			for i := 0; i < tc.logins; i++ {
				mustLogin(t, e, tc.user, Meta{})
			}
			if got := liveCount(t, e, tc.user); got != tc.live {
				t.Errorf("%s: %d live sessions, want %d", tc.user, got, tc.live)
			}
		}
		b.count.reset()
		if _, err := e.Login(ctx, "broken", Meta{}); err == nil || errors.Is(err, ErrUnavailable) {
			t.Fatalf("Login with failing limiter = %v, want the limiter's error", err)
		}
		if b.count.cmds.Load() != 0 {
			t.Fatal("a failing limiter must stop the login before Redis")
		}
	})
}

func TestIdleAndAbsoluteTimeouts(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		e := b.engine(t, Config{IdleTimeout: 10 * time.Minute, AbsoluteTimeout: 30 * time.Minute, TouchInterval: time.Minute})
		r := mustLogin(t, e, "alice", Meta{})
		created := b.clock.Now()
		// Keep it busy every 9 minutes: the idle timeout slides...
		for i := 0; i < 3; i++ {
			b.clock.Add(9 * time.Minute)
			// Redis's own clock does not follow the fake one, so shrink the
			// key's TTL first: what PTTL shows afterwards is exactly what
			// the sliding refresh chose (it only ever raises a TTL).
			if err := b.client.PExpire(ctx, r.Session.keys.data, time.Second).Err(); err != nil {
				t.Fatal(err)
			}
			s := validOK(t, e, r.Token)
			if !s.LastSeenAt.Equal(b.clock.Now()) {
				t.Fatalf("LastSeenAt %v, want %v", s.LastSeenAt, b.clock.Now())
			}
			wantExp := b.clock.Now().Add(10 * time.Minute)
			if abs := created.Add(30 * time.Minute); abs.Before(wantExp) {
				wantExp = abs
			}
			if !s.ExpiresAt.Equal(wantExp) {
				t.Fatalf("ExpiresAt %v, want %v", s.ExpiresAt, wantExp)
			}
			// ...but the keys never outlive the absolute timeout.
			pttl, err := b.client.PTTL(ctx, s.keys.data).Result()
			if err != nil {
				t.Fatal(err)
			}
			if limit := created.Add(30 * time.Minute).Sub(b.clock.Now()); pttl > limit {
				t.Fatalf("data key TTL %v exceeds the absolute timeout (%v left)", pttl, limit)
			}
		}
		// 27 minutes in: the next use at 30 is past the absolute timeout.
		b.clock.Add(3 * time.Minute)
		if _, err := e.Validate(ctx, r.Token); !errors.Is(err, ErrExpired) {
			t.Fatalf("past absolute timeout: %v, want ErrExpired", err)
		}
		// Idle: a session unused for the idle timeout is gone.
		r2 := mustLogin(t, e, "bob", Meta{})
		b.clock.Add(10 * time.Minute)
		if _, err := e.Validate(ctx, r2.Token); !errors.Is(err, ErrExpired) {
			t.Fatalf("past idle timeout: %v, want ErrExpired", err)
		}
	})
}

func TestTouchIntervalMakesValidateReadOnly(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		e := b.engine(t, Config{IdleTimeout: 10 * time.Minute, TouchInterval: time.Minute})
		r := mustLogin(t, e, "alice", Meta{})
		start := b.clock.Now()
		b.clock.Add(59 * time.Second)
		if s := validOK(t, e, r.Token); !s.LastSeenAt.Equal(start) {
			t.Fatalf("within the touch interval LastSeenAt moved to %v", s.LastSeenAt)
		}
		b.clock.Add(time.Second)
		if s := validOK(t, e, r.Token); !s.LastSeenAt.Equal(b.clock.Now()) {
			t.Fatalf("at the touch interval LastSeenAt = %v, want %v", s.LastSeenAt, b.clock.Now())
		}
	})
}

// TestTouchCacheNeverDecidesValidity drives the HGET path (the touch cache
// vouches that no refresh is due) into every ending, and checks that an
// engine without the cache, or a second app instance with a cold one, sees
// the same sessions.
func TestTouchCacheNeverDecidesValidity(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		e := b.engine(t, Config{IdleTimeout: NoIdleTimeout, AbsoluteTimeout: 10 * time.Minute, TouchInterval: time.Minute})
		cold := b.engine(t, Config{IdleTimeout: NoIdleTimeout, AbsoluteTimeout: 10 * time.Minute,
			TouchInterval: time.Minute, TouchCacheSize: NoTouchCache})

		// Absolute expiry inside the touch interval: only Go can see it.
		r := mustLogin(t, e, "alice", Meta{})
		b.clock.Add(9*time.Minute + 30*time.Second)
		validOK(t, e, r.Token) // refresh: the cache now vouches until +10:30
		b.clock.Add(40 * time.Second)
		b.count.reset()
		if _, err := e.Validate(ctx, r.Token); !errors.Is(err, ErrExpired) || !b.count.sent("hget") {
			t.Fatalf("past the absolute timeout on the HGET path: %v (hget sent: %v)", err, b.count.sent("hget"))
		}

		// Eviction and revocation, read by the holder on the HGET path.
		r1 := mustLogin(t, e, "bob", Meta{UserAgent: "first"})
		validOK(t, e, r1.Token)
		r2 := mustLogin(t, e, "bob", Meta{UserAgent: "second"})
		b.count.reset()
		var ev *EvictedError
		if _, err := e.Validate(ctx, r1.Token); !errors.As(err, &ev) || ev.By.SessionID != r2.SessionID || !b.count.sent("hget") {
			t.Fatalf("evicted on the HGET path: %v", err)
		}
		if err := e.Revoke(ctx, "bob", r2.SessionID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Validate(ctx, r2.Token); !errors.Is(err, ErrRevoked) {
			t.Fatalf("revoked on the HGET path: %v", err)
		}

		// A forged secret for a live session's public ID is no session.
		r3 := mustLogin(t, e, "carol", Meta{})
		p, _ := parseToken(r3.Token)
		p.secret[0] ^= 1
		if _, err := e.Validate(ctx, p.String()); !errors.Is(err, ErrExpired) {
			t.Fatalf("forged secret on the HGET path: %v", err)
		}

		// The engine without a cache always runs the script, and agrees.
		for range 3 {
			b.count.reset()
			s, err := cold.Validate(ctx, r3.Token)
			if err != nil || s.UserID != "carol" || !b.count.sentScript() || b.count.sent("hget") {
				t.Fatalf("NoTouchCache: %v, %v (hget sent: %v)", s, err, b.count.sent("hget"))
			}
		}
	})
}

func TestTouchCacheStaysBounded(t *testing.T) {
	t.Parallel()
	c := newTouchCache(touchShards * 2)
	var sid [sidLen]byte
	for i := range 10000 {
		sid[0], sid[1], sid[15] = byte(i), byte(i>>8), byte(i)
		c.put(&sid, int64(i))
	}
	n := 0
	for i := range c.shards {
		if l := len(c.shards[i].m); l > 2 {
			t.Fatalf("shard %d holds %d entries, want at most 2", i, l)
		}
		n += len(c.shards[i].m)
	}
	if n == 0 {
		t.Fatal("cache kept nothing")
	}
	// A later time wins; an earlier one never moves an entry back.
	c.put(&sid, 1<<40)
	c.put(&sid, 5)
	if ms, ok := c.get(&sid); !ok || ms != 1<<40 {
		t.Fatalf("get = %d, %v; want %d", ms, ok, int64(1<<40))
	}
	if _, ok := (*touchCache)(nil).get(&sid); ok {
		t.Fatal("a nil cache vouched for a session")
	}
}

var tokenRE = regexp.MustCompile(`^[A-Za-z0-9_-]{87}$`)

func TestTokensAreOpaqueAndNeverStored(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		e := b.engine(t, Config{MaxSessions: 2, HistoryLimit: HistoryAll})
		var tokens []string
		// Long enough that a random 87-character token cannot spell one by
		// chance (a 3-letter name would, in about 5% of runs).
		users := []string{"alice@example.com", "bob-the-builder", "user-8675309"}
		for _, u := range users {
			for i := 0; i < 3; i++ {
				r := mustLogin(t, e, u, Meta{IP: "10.0.0.9", UserAgent: "ua", Values: map[string]string{"cart": "3 items"}})
				tokens = append(tokens, r.Token)
				rot, err := e.Rotate(ctx, r.Token)
				if err != nil {
					t.Fatal(err)
				}
				tokens = append(tokens, rot)
			}
		}
		seen := map[string]bool{}
		var secrets [][]byte
		for _, tok := range tokens {
			if !tokenRE.MatchString(tok) {
				t.Fatalf("token %q is not 87 URL-safe characters", tok)
			}
			if seen[tok] {
				t.Fatal("duplicate token")
			}
			seen[tok] = true
			for _, u := range users {
				if strings.Contains(strings.ToLower(tok), strings.ToLower(u)) {
					t.Fatalf("token %q shows user ID %q", tok, u)
				}
			}
			p, err := parseToken(tok)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.secret)*8 < 256 {
				t.Fatalf("secret has %d bits", len(p.secret)*8)
			}
			for _, u := range users {
				if bytes.Contains(p.user[:], []byte(u)) {
					t.Fatal("decoded token carries the user ID")
				}
			}
			secrets = append(secrets, p.secret[:])
		}
		dump := dumpRedis(t, b)
		if len(dump) < 1000 {
			t.Fatalf("dump suspiciously small: %d bytes", len(dump))
		}
		for _, tok := range tokens {
			if bytes.Contains(dump, []byte(tok)) || bytes.Contains(dump, []byte(tok[40:60])) {
				t.Fatal("a token, or a piece of one, is stored in Redis")
			}
		}
		for _, s := range secrets {
			for _, part := range [][]byte{s, s[:8], s[8:16], s[16:24], s[24:32]} {
				if bytes.Contains(dump, part) {
					t.Fatal("a secret, or 8 bytes of one, is stored in Redis")
				}
			}
		}
		// The check above can fail: the session IDs, which are not secret,
		// are in the dump.
		p, _ := parseToken(tokens[0])
		if !bytes.Contains(dump, p.sid[:]) {
			t.Fatal("the dump does not even hold the session IDs: the scan is broken")
		}
	})
}

// dumpRedis concatenates every key and every value under the backend's prefix.
func dumpRedis(t *testing.T, b *backend) []byte {
	t.Helper()
	var out []byte
	for _, k := range b.keys(t) {
		out = append(out, k...)
		typ, err := b.client.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		var vals []string
		switch typ {
		case "hash":
			m, err := b.client.HGetAll(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			for f, v := range m {
				vals = append(vals, f, v)
			}
		case "zset":
			vals, err = b.client.ZRange(ctx, k, 0, -1).Result()
		case "list":
			vals, err = b.client.LRange(ctx, k, 0, -1).Result()
		case "string":
			var v string
			v, err = b.client.Get(ctx, k).Result()
			vals = []string{v}
		default:
			t.Fatalf("unexpected key type %s for %q", typ, k)
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			out = append(out, v...)
		}
	}
	return out
}

func TestIndexHealsAndExpiresWithLastSession(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		idle := 10 * time.Minute
		e := b.engine(t, Config{MaxSessions: Unlimited, IdleTimeout: idle, AbsoluteTimeout: time.Hour})
		n := 10000
		if b.mini != nil || testing.Short() {
			n = 2000 // gopher-lua is slower; the real server runs all 10,000
		}
		var last *LoginResult
		for i := 0; i < n; i++ {
			last = mustLogin(t, e, "alice", Meta{})
			// Each session idles out two logins later.
			b.clock.Add(idle/2 + time.Millisecond)
		}
		k := last.Session.keys
		ids, _, err := indexIDs(ctx, b.client, k)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := hashRecords(ctx, b.client, k)
		if err != nil {
			t.Fatal(err)
		}
		zc, hl := len(ids), len(recs)
		live := liveCount(t, e, "alice")
		if live != 1 || zc > 2 || hl > 2 {
			t.Fatalf("after %d logins and expiries: %d live, index %d, records %d; want 1 live and no leftovers", n, live, zc, hl)
		}
		ids, _, _ = indexIDs(ctx, b.client, k)
		recs, _ = hashRecords(ctx, b.client, k)
		zc, hl = len(ids), len(recs)
		if zc != 1 || hl != 1 {
			t.Fatalf("after listing: index %d, records %d, want 1 and 1", zc, hl)
		}
		// The user's key, index included, lives exactly as long as its last
		// session could (no tombstones here: the sessions idled out).
		pttl, err := b.client.PTTL(ctx, k.data).Result()
		if err != nil {
			t.Fatal(err)
		}
		want := last.Session.ExpiresAt.Sub(b.clock.Now())
		if pttl > want || pttl < want-2*time.Second {
			t.Fatalf("index TTL %v, want about %v", pttl, want)
		}
		// Once that session is gone, listing removes the keys at once.
		b.clock.Add(idle)
		if got := liveCount(t, e, "alice"); got != 0 {
			t.Fatalf("%d live, want 0", got)
		}
		if keys := b.keys(t); len(keys) != 0 {
			t.Fatalf("keys left after the last session expired: %q", keys)
		}
	})
}

func TestSessionsListNewestFirstWithMetadata(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		e := b.engine(t, Config{MaxSessions: 3})
		var ids []string
		for i := 0; i < 3; i++ {
			r := mustLogin(t, e, "alice", Meta{IP: fmt.Sprint("10.0.0.", i), UserAgent: fmt.Sprint("ua", i),
				Values: map[string]string{"n": fmt.Sprint(i)}})
			ids = append(ids, r.SessionID)
			b.clock.Add(time.Minute)
		}
		list, err := e.Sessions(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 3 {
			t.Fatalf("%d sessions", len(list))
		}
		for i, s := range list {
			j := 2 - i
			if s.ID != ids[j] || s.IP != fmt.Sprint("10.0.0.", j) || s.UserAgent != fmt.Sprint("ua", j) ||
				s.UserID != "alice" || s.Values["n"] != fmt.Sprint(j) || !s.CreatedAt.Equal(t0.Add(time.Duration(j)*time.Minute)) {
				t.Fatalf("Sessions()[%d] = %+v", i, s)
			}
		}
		if l, err := e.Sessions(ctx, "nobody"); err != nil || len(l) != 0 {
			t.Fatalf("Sessions(nobody) = %v, %v", l, err)
		}
	})
}

func TestLogoutVariants(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		e := b.engine(t, Config{MaxSessions: 4})
		login3 := func(u string) []*LoginResult {
			var rs []*LoginResult
			for i := 0; i < 3; i++ {
				rs = append(rs, mustLogin(t, e, u, Meta{IP: fmt.Sprint("10.1.1.", i), UserAgent: fmt.Sprint("dev", i)}))
			}
			return rs
		}
		// Logout: only this device.
		a := login3("alice")
		if err := e.Logout(ctx, a[0].Token); err != nil {
			t.Fatal(err)
		}
		var rev *RevokedError
		if _, err := e.Validate(ctx, a[0].Token); !errors.As(err, &rev) || rev.Reason != ReasonLogout {
			t.Fatalf("after Logout: %v", err)
		}
		validOK(t, e, a[1].Token)
		// Logout is idempotent, so a retried call succeeds again...
		if err := e.Logout(ctx, a[0].Token); err != nil {
			t.Fatalf("second Logout: %v, want success", err)
		}
		// ...but only for the token that logged out.
		if err := e.Logout(ctx, a[2].Token); err != nil {
			t.Fatal(err)
		}
		a[2] = mustLogin(t, e, "alice", Meta{IP: "10.1.1.2", UserAgent: "dev2"})
		// LogoutOthers: everyone but this device, who did it is recorded.
		ended, err := e.LogoutOthers(ctx, a[1].Token)
		if err != nil || !slices.Equal(ended, []string{a[2].SessionID}) {
			t.Fatalf("LogoutOthers = %v, %v", ended, err)
		}
		if _, err := e.Validate(ctx, a[2].Token); !errors.As(err, &rev) || rev.Reason != ReasonLogoutOthers ||
			rev.By.SessionID != a[1].SessionID || rev.By.UserAgent != "dev1" {
			t.Fatalf("after LogoutOthers: %v (%+v)", err, rev)
		}
		validOK(t, e, a[1].Token)
		// Revoke by public ID.
		if err := e.Revoke(ctx, "alice", a[1].SessionID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Validate(ctx, a[1].Token); !errors.As(err, &rev) || rev.Reason != ReasonRevoked {
			t.Fatalf("after Revoke: %v", err)
		}
		if err := e.Revoke(ctx, "alice", a[1].SessionID); err != nil {
			t.Fatalf("Revoke twice: %v, want success (idempotent)", err)
		}
		if err := e.Revoke(ctx, "alice", a[2].SessionID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Revoke of a session ended by LogoutOthers: %v, want ErrNotFound", err)
		}
		if err := e.Revoke(ctx, "bob", a[1].SessionID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Revoke of another user's session: %v, want ErrNotFound", err)
		}
		// LogoutAll: admin bulk logout of several users.
		bob, carol, dave := login3("bob"), login3("carol"), login3("dave")
		n, err := e.LogoutAll(ctx, "bob", "carol", "nobody")
		if err != nil || n != 6 {
			t.Fatalf("LogoutAll = %d, %v; want 6", n, err)
		}
		for _, r := range append(bob, carol...) {
			if _, err := e.Validate(ctx, r.Token); !errors.As(err, &rev) || rev.Reason != ReasonAdmin || rev.UserID == "" {
				t.Fatalf("after LogoutAll: %v", err)
			}
		}
		validOK(t, e, dave[0].Token)
	})
}

func TestLogoutEverywhere(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		e := b.engine(t, Config{MaxSessions: 3, LogoutEverywhere: true})
		r1 := mustLogin(t, e, "alice", Meta{UserAgent: "laptop"})
		r2 := mustLogin(t, e, "alice", Meta{UserAgent: "phone"})
		other := mustLogin(t, e, "bob", Meta{})
		if err := e.Logout(ctx, r2.Token); err != nil {
			t.Fatal(err)
		}
		var rev *RevokedError
		if _, err := e.Validate(ctx, r1.Token); !errors.As(err, &rev) || rev.Reason != ReasonLogoutEverywhere || rev.By.UserAgent != "phone" {
			t.Fatalf("other device after Logout with LogoutEverywhere: %v", err)
		}
		validOK(t, e, other.Token)
		if got := liveCount(t, e, "alice"); got != 0 {
			t.Fatalf("%d live, want 0", got)
		}
	})
}

func TestRotate(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		e := b.engine(t, Config{})
		r := mustLogin(t, e, "alice", Meta{Values: map[string]string{"role": "user"}})
		if _, err := e.Rotate(ctx, mustLogin(t, e, "warm", Meta{}).Token); err != nil { // load the script
			t.Fatal(err)
		}
		b.count.reset()
		tok, err := e.Rotate(ctx, r.Token)
		if err != nil {
			t.Fatal(err)
		}
		if b.count.trips.Load() != 1 {
			t.Fatalf("Rotate took %d round trips", b.count.trips.Load())
		}
		if tok == r.Token {
			t.Fatal("Rotate returned the same token")
		}
		if _, err := e.Validate(ctx, r.Token); !errors.Is(err, ErrExpired) {
			t.Fatalf("old token after Rotate: %v, want ErrExpired", err)
		}
		s := validOK(t, e, tok)
		if s.ID != r.SessionID || s.Values["role"] != "user" {
			t.Fatalf("rotated session %+v lost its identity or values", s)
		}
		if _, err := e.Rotate(ctx, r.Token); !errors.Is(err, ErrExpired) {
			t.Fatalf("rotating a dead token: %v", err)
		}
	})
}

func TestSaveAndUpdate(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		e := b.engine(t, Config{MaxSessions: 1})
		r := mustLogin(t, e, "alice", Meta{Values: map[string]string{"a": "1"}})
		s := validOK(t, e, r.Token)
		s.Values["b"] = "2"
		delete(s.Values, "a")
		if err := e.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
		if got := validOK(t, e, r.Token).Values; len(got) != 1 || got["b"] != "2" {
			t.Fatalf("values after Save: %v", got)
		}
		// Update retries on a concurrent change and loses neither write.
		stale := validOK(t, e, r.Token)
		calls := 0
		_, err := e.Update(ctx, r.Token, func(v map[string]string) error {
			calls++
			if calls == 1 { // someone else writes in between
				stale.Values["c"] = "3"
				if err := e.Save(ctx, stale); err != nil {
					t.Fatal(err)
				}
			}
			v["d"] = "4"
			return nil
		})
		if err != nil || calls != 2 {
			t.Fatalf("Update = %v after %d calls, want success after 2", err, calls)
		}
		if got := validOK(t, e, r.Token).Values; got["c"] != "3" || got["d"] != "4" {
			t.Fatalf("values after Update: %v", got)
		}
		boom := errors.New("boom")
		if _, err := e.Update(ctx, r.Token, func(map[string]string) error { return boom }); !errors.Is(err, boom) {
			t.Fatalf("Update with failing fn: %v", err)
		}
		// A save after eviction must not resurrect the session.
		s = validOK(t, e, r.Token)
		mustLogin(t, e, "alice", Meta{})
		s.Values["x"] = "y"
		if err := e.Save(ctx, s); !errors.Is(err, ErrEvicted) {
			t.Fatalf("Save after eviction: %v, want ErrEvicted", err)
		}
		if _, err := e.Validate(ctx, r.Token); !errors.Is(err, ErrEvicted) {
			t.Fatalf("evicted session came back: %v", err)
		}
		if err := e.Save(ctx, &Session{}); !errors.Is(err, ErrInvalidInput) {
			t.Fatalf("Save of a foreign session: %v", err)
		}
		big := map[string]string{"v": string(make([]byte, maxValuesLen))}
		if _, err := e.Login(ctx, "alice", Meta{Values: big}); !errors.Is(err, ErrInvalidInput) {
			t.Fatalf("oversized values: %v", err)
		}
	})
}

func TestHostileUserIDsRoundTrip(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		e := b.engine(t, Config{MaxSessions: 1})
		ids := hostileUserIDs()
		tokens := map[string]string{}
		for _, u := range ids {
			tokens[u] = mustLogin(t, e, u, Meta{}).Token
		}
		for _, u := range ids {
			s := validOK(t, e, tokens[u])
			if s.UserID != u {
				t.Fatalf("user %q came back as %q", u, s.UserID)
			}
			if got := liveCount(t, e, u); got != 1 {
				t.Fatalf("user %q: %d live sessions: layouts collide", u, got)
			}
		}
	})
}

// Keys never persist: every key the engine writes has a TTL.
func TestEveryKeyHasATTL(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		e := b.engine(t, Config{MaxSessions: 1, HistoryLimit: 5})
		r := mustLogin(t, e, "alice", Meta{})
		mustLogin(t, e, "alice", Meta{})
		_ = e.Logout(ctx, r.Token)
		keys := b.keys(t)
		if len(keys) != 2 {
			t.Fatalf("expected the data and history keys, got %q", keys)
		}
		for _, k := range keys {
			ttl, err := b.client.PTTL(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			if ttl <= 0 {
				t.Fatalf("key %q has TTL %v", k, ttl)
			}
		}
	})
}

// TestTouchMovesTheIndexExpiry: a login tells live from expired by the
// expiry in the index, not by reading records, so a sliding refresh must
// move that expiry too, or the next login would drop a session in use.
func TestTouchMovesTheIndexExpiry(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		e := b.engine(t, Config{MaxSessions: 3, IdleTimeout: 10 * time.Minute, TouchInterval: time.Minute})
		a := mustLogin(t, e, "alice", Meta{})
		b.clock.Add(8 * time.Minute)
		validOK(t, e, a.Token) // refresh: idle expiry now 18 minutes in
		b.clock.Add(5 * time.Minute)
		mustLogin(t, e, "alice", Meta{})
		if got := liveCount(t, e, "alice"); got != 2 {
			t.Fatalf("%d live sessions after the refresh and a login, want 2", got)
		}
		validOK(t, e, a.Token) // a refresh again
		_, exps, err := indexIDs(ctx, b.client, a.Session.keys)
		if err != nil || len(exps) != 2 {
			t.Fatalf("index: %v, %v", exps, err)
		}
		if want := b.clock.Now().Add(10 * time.Minute).UnixMilli(); exps[0] != want {
			t.Fatalf("index expiry of the refreshed session %d, want %d", exps[0], want)
		}
	})
}

// TestTombstonesPerUserAreCapped: a user signing in over and over keeps at
// most maxTombstones tombstones; the newest evictions still explain
// themselves, older ones read as expired.
func TestTombstonesPerUserAreCapped(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		e := b.engine(t, Config{})
		var all []*LoginResult
		for range 40 {
			all = append(all, mustLogin(t, e, "alice", Meta{}))
			b.clock.Add(time.Millisecond)
		}
		recs, err := hashRecords(ctx, b.client, all[0].Session.keys)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1+maxTombstones {
			t.Fatalf("%d records, want 1 live and %d tombstones", len(recs), maxTombstones)
		}
		last := len(all) - 1
		if _, err := e.Validate(ctx, all[last-1].Token); !errors.Is(err, ErrEvicted) {
			t.Fatalf("newest eviction: %v, want ErrEvicted", err)
		}
		if _, err := e.Validate(ctx, all[last-maxTombstones].Token); !errors.Is(err, ErrEvicted) {
			t.Fatalf("oldest kept eviction: %v, want ErrEvicted", err)
		}
		if _, err := e.Validate(ctx, all[last-maxTombstones-1].Token); !errors.Is(err, ErrExpired) {
			t.Fatalf("one eviction older: %v, want ErrExpired", err)
		}
	})
}

// TestTouchCacheMemory backs the figure documented on
// Config.TouchCacheSize (about 53 bytes per entry, 3.3 MiB at the default
// size) with a generous bound, so a change that bloats entries shows.
//
// Serial: it measures the heap, which parallel tests would grow.
func TestTouchCacheMemory(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := newTouchCache(DefaultTouchCacheSize)
	var sid [sidLen]byte
	for i := range DefaultTouchCacheSize * 2 {
		sid[0], sid[1], sid[2], sid[15] = byte(i), byte(i>>8), byte(i>>16), byte(i)
		c.put(&sid, int64(i))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	n := 0
	for i := range c.shards {
		n += len(c.shards[i].m)
	}
	per := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
	t.Logf("%d entries, %.1f bytes each", n, per)
	if n != DefaultTouchCacheSize || per > 100 {
		t.Fatalf("%d entries at %.1f bytes each; want %d at about 53", n, per, DefaultTouchCacheSize)
	}
	runtime.KeepAlive(c)
}
