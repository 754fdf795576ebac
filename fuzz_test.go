package sessioncap

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap/internal/redistest"
)

// Fuzz targets for the two places where untrusted bytes meet the engine:
// the bearer token (parseToken) and the user ID (userDigest, keysFor).
// Seeds live in testdata/fuzz/<FuzzName>/; run for a bounded time with
//
//	go test -run '^$' -fuzz '^FuzzParseToken$' -fuzztime 30s .
//	go test -run '^$' -fuzz '^FuzzUserKeys$' -fuzztime 30s .

// FuzzParseToken: any string either parses to a token that prints back as
// exactly that string (one canonical spelling per token, so a token cannot
// be varied to dodge a deny-list or a rate limit), or is rejected with
// ErrInvalidToken. Never a panic, never another error.
func FuzzParseToken(f *testing.F) {
	good := token{}
	for i := range good.user {
		good.user[i] = byte(i * 7)
	}
	for i := range good.sid {
		good.sid[i] = byte(255 - i)
	}
	for i := range good.secret {
		good.secret[i] = byte(i * 13)
	}
	g := good.String()
	for _, s := range []string{
		g, "", g[:86], g + "A", g[:86] + "=", strings.Repeat("A", 87), strings.Repeat("_", 87),
		"AQ" + g[2:], "Ag" + g[2:], g[:40] + "\x00" + g[41:], g[:40] + "+" + g[41:], g[:40] + "é" + g[42:],
		" " + g[1:], g[:86] + "\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := parseToken(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) || err != ErrInvalidToken {
				t.Fatalf("parseToken(%q): %v, want exactly ErrInvalidToken", s, err)
			}
			return
		}
		if len(s) != tokenLen {
			t.Fatalf("parseToken accepted %d bytes, tokens are %d", len(s), tokenLen)
		}
		if back := tok.String(); back != s {
			t.Fatalf("parseToken(%q) prints back as %q: two spellings of one token", s, back)
		}
		if tok2, err := parseToken(tok.String()); err != nil || tok2 != tok {
			t.Fatalf("round trip: %v", err)
		}
	})
}

var (
	fuzzKeysMu   sync.Mutex
	fuzzKeysSeen = map[string]string{} // data key -> user ID, within one fuzz process
)

// FuzzUserKeys: for any user ID and any prefix New accepts, every key and
// the channel of the user share one hash slot (computed here with CRC16,
// not asked of Redis), each holds exactly one well-formed hash tag, and no
// two distinct user IDs seen in the run map to the same keys; all of this
// with D unkeyed and keyed by Config.UserKey.
func FuzzUserKeys(f *testing.F) {
	for _, u := range []string{"alice", "", "{alice}", "}{", "a{b}c", "\x00", "\xff\xfe", "é", "*?[", "line\nbreak", strings.Repeat("{", 300)} {
		f.Add("sc", u)
	}
	f.Add("app:sessions", "bob")
	f.Add("x y", "{}")
	f.Fuzz(func(t *testing.T, prefix, userID string) {
		cfg, err := Config{KeyPrefix: prefix}.withDefaults()
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("withDefaults(prefix %q): %v", prefix, err)
			}
			return
		}
		prefix = cfg.KeyPrefix
		if checkUserID(userID) != nil {
			return
		}
		for _, dg := range digesters {
			checkFuzzKeys(t, dg.name, prefix, userID, keysFor(prefix, dg.digest(userID)))
		}
	})
}

// checkFuzzKeys is FuzzUserKeys for one way of computing D (see digesters).
func checkFuzzKeys(t *testing.T, digester, prefix, userID string, k userKeys) {
	all := append(k.list(), k.channel)
	slot := redistest.KeySlot(all[0])
	for _, key := range all {
		if s := redistest.KeySlot(key); s != slot {
			t.Fatalf("user %q prefix %q: %q in slot %d, %q in slot %d", userID, prefix, all[0], slot, key, s)
		}
		if !strings.HasPrefix(key, prefix+":{") || strings.Count(key, "{") != 1 || strings.Count(key, "}") != 1 {
			t.Fatalf("user %q prefix %q: key %q has no single hash tag after the prefix", userID, prefix, key)
		}
	}
	if len(map[string]bool{k.data: true, k.hist: true, k.channel: true}) != 3 {
		t.Fatalf("user %q: two of its keys coincide: %v", userID, all)
	}
	id := prefix + "\x00" + userID
	fuzzKeysMu.Lock()
	prev, seen := fuzzKeysSeen[digester+" "+k.data]
	if !seen && len(fuzzKeysSeen) < 1_000_000 {
		fuzzKeysSeen[digester+" "+k.data] = id
	}
	fuzzKeysMu.Unlock()
	if seen && prev != id {
		t.Fatalf("%s: user IDs %q and %q map to the same key %q", digester, prev, id, k.data)
	}
}

// sentinels is every error a public method may return, as errors.Is sees it.
var sentinels = []error{
	ErrInvalidToken, ErrInvalidUserID, ErrInvalidSessionID, ErrInvalidInput,
	ErrExpired, ErrEvicted, ErrRevoked, ErrLimitReached, ErrNotFound,
	ErrConflict, ErrUnavailable, ErrInvalidConfig, ErrLimiter, ErrSessionCeiling,
}

func isSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// FuzzRequestInputs feeds any bytes, as every string a request can bring to
// the engine (user ID, IP, User-Agent, a value's key and its value, a token
// and a session ID), through every public method on miniredis. Each call
// must return a result or an error that matches an exported sentinel: never
// a panic, and never an error outside the documented set.
func FuzzRequestInputs(f *testing.F) {
	for _, seed := range [][5]string{
		{"alice", "203.0.113.7", "Firefox", "theme", "dark"},
		{"\xff", strings.Repeat("\xff", 100), strings.Repeat("\xff", 513), "\xff", "\xff"},
		{"é", strings.Repeat("\xe2\x82", 40), strings.Repeat("\xe2\x82", 300), "\x00", strings.Repeat("é", 300)},
		{"{u}", strings.Repeat("é", 33), strings.Repeat("€", 200), "", ""},
		{strings.Repeat("x", 2000), "::1", "\r\n", strings.Repeat("k", 300), strings.Repeat("v", 70000)},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3], seed[4])
	}
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(mr.Close)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	f.Cleanup(func() { rdb.Close() })
	e, err := New(rdb, Config{MaxSessions: 2, HistoryLimit: 4, Events: EventsPubSub})
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, user, ip, ua, key, val string) {
		check := func(method string, err error) {
			if err != nil && !isSentinel(err) {
				t.Fatalf("%s(user %q, ip %q, ua %q, value %q=%q): %v matches no sentinel", method, user, ip, ua, key, val, err)
			}
		}
		meta := Meta{IP: ip, UserAgent: ua, Values: map[string]string{key: val}}
		res, err := e.Login(ctx, user, meta)
		check("Login", err)
		tokens := []string{user, ip, ua, key, val}
		sids := []string{user, ua, val}
		if err == nil {
			tokens = append(tokens, res.Token)
			sids = append(sids, res.SessionID)
		}
		for _, tok := range tokens {
			s, err := e.Validate(ctx, tok)
			check("Validate", err)
			if err == nil {
				s.Values[key] = val + val
				s.Values[val] = key
				check("Save", e.Save(ctx, s))
			}
			_, err = e.Update(ctx, tok, func(v map[string]string) error { v[ua] = ip; return nil })
			check("Update", err)
			rotated, err := e.Rotate(ctx, tok)
			check("Rotate", err)
			if err == nil {
				tok = rotated
			}
			_, err = e.LogoutOthers(ctx, tok)
			check("LogoutOthers", err)
			check("Logout", e.Logout(ctx, tok))
		}
		for _, sid := range sids {
			check("Revoke", e.Revoke(ctx, user, sid))
		}
		_, err = e.Sessions(ctx, user)
		check("Sessions", err)
		_, err = e.History(ctx, user, 0, 10)
		check("History", err)
		_, err = e.LogoutAll(ctx, user, ip)
		check("LogoutAll", err)
		sctx, cancel := context.WithCancel(ctx)
		sub, err := e.Subscribe(sctx, user, ua)
		check("Subscribe", err)
		if err == nil {
			sub.Close()
		}
		cancel()
	})
}
