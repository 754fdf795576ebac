package sessioncap

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap/internal/redistest"
)

// testUserKey is the Config.UserKey of the keyed topologies and digesters.
var testUserKey = []byte("sessioncap test user key, 32 B!!")

// digesters are the two ways an engine computes D: the key layout tests
// (TestKeyLayoutOneSlotPerUserAndNoCollisions, FuzzUserKeys) run on both.
var digesters = []struct {
	name   string
	digest func(string) [digestLen]byte
}{
	{"unkeyed", userDigest},
	{"keyed", newUserKeyer(testUserKey).digest},
}

// The whole behaviour suite (every test that goes through backends) also
// runs with Config.UserKey set, on miniredis and on a real redis-server:
// b.engine fills in the key unless a test sets its own.
func init() {
	topologies = append(topologies,
		topology{"miniredis+userkey", redistest.BackendMiniredis, func(t *testing.T) *backend {
			m := miniredis.RunT(t)
			return &backend{name: "miniredis+userkey", client: redis.NewClient(&redis.Options{Addr: m.Addr()}),
				mini: m, userKey: testUserKey}
		}},
		topology{"redis+userkey", redistest.BackendRedis, func(t *testing.T) *backend {
			if realRedis == "" {
				report.Missing(t, redistest.BackendRedis, "no real redis-server: redis-server is not on PATH (apt-get install redis-server)")
			}
			return &backend{name: "redis+userkey", client: redis.NewClient(&redis.Options{Addr: realRedis}),
				userKey: testUserKey}
		}},
	)
}

// hmacDigest is D for a keyed engine, computed here the plain way.
func hmacDigest(key []byte, userID string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(userID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:digestLen])
}

func unkeyedDigest(userID string) string {
	sum := sha256.Sum256([]byte(userID))
	return base64.RawURLEncoding.EncodeToString(sum[:digestLen])
}

// tokenDigest is the D a token carries, as base64url.
func tokenDigest(t *testing.T, tok string) string {
	t.Helper()
	p, err := parseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(p.user[:])
}

// commonPrefix is the length of the longest common prefix of a and b.
func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// TestUserKeyTokensShareNoComputablePrefix: without a key, every token of
// a user starts with the same 22 characters, which anyone can compute from
// a candidate user ID; with one, the shared part is an HMAC that only the
// key's holder can compute: it differs from the unkeyed digest and from the
// digest under another key, and no candidate's unkeyed digest appears in
// the token at all.
func TestUserKeyTokensShareNoComputablePrefix(t *testing.T) {
	t.Parallel()
	m := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer client.Close()
	ctx := context.Background()
	keyA := bytes.Repeat([]byte{0xA5}, 32)
	keyB := append(bytes.Repeat([]byte{0xA5}, 31), 0xA4) // one bit from keyA
	engines := map[string]*Engine{}
	for name, key := range map[string][]byte{"none": nil, "A": keyA, "B": keyB} {
		e, err := New(client, Config{KeyPrefix: "uk", MaxSessions: Unlimited, UserKey: key})
		if err != nil {
			t.Fatal(err)
		}
		engines[name] = e
	}
	const user = "alice@example.com"
	candidates := []string{"bob@example.com", user, "carol@example.com", "Alice@example.com", "alice"}
	tokens := map[string][]string{}
	for name, e := range engines {
		for i := 0; i < 5; i++ {
			tokens[name] = append(tokens[name], mustLogin(t, e, user, Meta{}).Token)
		}
	}

	// The unkeyed engine: the leak the option exists to close.
	plain := tokens["none"]
	if d := tokenDigest(t, plain[0]); d != unkeyedDigest(user) {
		t.Fatalf("unkeyed token carries %s, want SHA-256 digest %s", d, unkeyedDigest(user))
	}
	if n := commonPrefix(plain[0], plain[1]); n < 22 {
		t.Fatalf("unkeyed tokens of one user share %d characters, expected at least 22", n)
	}

	for _, name := range []string{"A", "B"} {
		key := map[string][]byte{"A": keyA, "B": keyB}[name]
		d := tokenDigest(t, tokens[name][0])
		if want := hmacDigest(key, user); d != want {
			t.Fatalf("engine %s: token carries %s, want HMAC-SHA256 digest %s", name, d, want)
		}
		for _, tok := range tokens[name] {
			if tokenDigest(t, tok) != d {
				t.Fatalf("engine %s: two tokens of one user carry different digests", name)
			}
			// An outsider with candidate user IDs computes their unkeyed
			// digests (and the tokens an unkeyed deployment would issue):
			// none matches any part of the token.
			raw, _ := base64.RawURLEncoding.DecodeString(tok)
			for _, c := range candidates {
				sum := sha256.Sum256([]byte(c))
				if bytes.Contains(raw, sum[:8]) {
					t.Fatalf("engine %s: token holds 8 bytes of SHA-256(%q)", name, c)
				}
				if d == unkeyedDigest(c) {
					t.Fatalf("engine %s: D is the unkeyed digest of %q", name, c)
				}
			}
			// The prefix that all of this user's tokens share is the
			// version character plus the HMAC: it has nothing in common
			// with the unkeyed token's beyond the version character and
			// what chance gives (a character matches 1 time in 64).
			if n := commonPrefix(tok, plain[0]); n > 3 {
				t.Fatalf("engine %s: token shares %d leading characters with the unkeyed token", name, n)
			}
		}
	}
	if tokenDigest(t, tokens["A"][0]) == tokenDigest(t, tokens["B"][0]) {
		t.Fatal("two keys one bit apart give the same D")
	}

	// Each engine finds only its own sessions: another key, or none, names
	// other Redis keys, and Validate refuses a token whose digest is not
	// the engine's own for the user ID in the record (see ownDigest).
	for name, e := range engines {
		if n := liveCount(t, e, user); n != 5 {
			t.Fatalf("engine %s lists %d sessions of %s, want its own 5", name, n, user)
		}
		for other, toks := range tokens {
			_, err := e.Validate(ctx, toks[0])
			switch {
			case other == name && err != nil:
				t.Fatalf("engine %s: own token: %v", name, err)
			case other != name && !errors.Is(err, ErrExpired):
				t.Fatalf("engine %s: token of engine %s: %v, want ErrExpired", name, other, err)
			}
		}
	}
	// No Redis key anywhere names the user's unkeyed digest but those of
	// the unkeyed engine, and none holds the user ID in its name.
	for _, k := range m.Keys() {
		if strings.Contains(k, user) {
			t.Fatalf("key %q holds the user ID", k)
		}
	}
	if n := len(m.Keys()); n != 3 {
		t.Fatalf("%d keys, want one data hash per engine: %v", n, m.Keys())
	}
}

// TestUserKeyRotationSignsEveryoneOut is the trade-off docs/instances.md
// states: after a change of UserKey (here none -> A -> B) every session made
// before it reads as expired, nobody is evicted by the old sessions, and
// the old keys stay in Redis until their own TTL removes them.
func TestUserKeyRotationSignsEveryoneOut(t *testing.T) {
	t.Parallel()
	m := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer client.Close()
	clk := newClock()
	ctx := context.Background()
	mk := func(key []byte) *Engine {
		e, err := New(client, Config{KeyPrefix: "rot", MaxSessions: 2, HistoryLimit: 10, UserKey: key, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	const user = "alice@example.com"
	var prev *Engine
	var prevTokens []string
	for step, key := range [][]byte{nil, bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)} {
		e := mk(key)
		if prev != nil {
			for _, tok := range prevTokens {
				if _, err := e.Validate(ctx, tok); !errors.Is(err, ErrExpired) {
					t.Fatalf("step %d: a token from before the key change: %v, want ErrExpired", step, err)
				}
			}
			if n := liveCount(t, e, user); n != 0 {
				t.Fatalf("step %d: the new key lists %d sessions from before the change", step, n)
			}
			if h, err := e.History(ctx, user, 0, 10); err != nil || len(h) != 0 {
				t.Fatalf("step %d: history under the new key: %v, %v; want empty", step, h, err)
			}
		}
		prevTokens = prevTokens[:0]
		for i := 0; i < 2; i++ {
			res := mustLogin(t, e, user, Meta{})
			if len(res.Evicted) != 0 {
				t.Fatalf("step %d: a login evicted %v: sessions of the old key still count", step, res.Evicted)
			}
			prevTokens = append(prevTokens, res.Token)
		}
		prev = e
		clk.Add(time.Minute)
	}
	// Three generations of keys, one data hash and one history list each;
	// the old ones expire by themselves, at most AbsoluteTimeout after
	// their last sign-in (no tombstones) or HistoryTTL for the history.
	var data []string
	for _, k := range m.Keys() {
		if strings.HasSuffix(k, ":d") {
			data = append(data, k)
		}
	}
	if len(data) != 3 {
		t.Fatalf("data keys %v, want 3 generations", data)
	}
	for _, k := range data {
		if ttl := m.TTL(k); ttl <= 0 || ttl > DefaultAbsoluteTimeout {
			t.Fatalf("old key %s has TTL %v, want (0, %v]", k, ttl, DefaultAbsoluteTimeout)
		}
	}
	m.FastForward(DefaultAbsoluteTimeout)
	for _, k := range data {
		if m.Exists(k) {
			t.Fatalf("key %s outlived its TTL", k)
		}
	}
}

func TestUserKeyConfig(t *testing.T) {
	t.Parallel()
	client := redis.NewClient(&redis.Options{Addr: deadAddr(t)})
	for name, key := range map[string][]byte{
		"empty, not nil": {},
		"15 bytes":       bytes.Repeat([]byte{1}, 15),
	} {
		if _, err := New(client, Config{UserKey: key}); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: New = %v, want ErrInvalidConfig", name, err)
		}
	}
	key := bytes.Repeat([]byte{7}, MinUserKeyLen)
	e, err := New(client, Config{UserKey: key})
	if err != nil {
		t.Fatalf("16-byte key: %v", err)
	}
	before := e.digest("alice")
	key[0] = 8 // the caller reuses its slice: the engine must not see it
	if e.digest("alice") != before || e.Config().UserKey[0] != 7 {
		t.Fatal("New kept the caller's key slice instead of a copy")
	}
	if want := hmacDigest(bytes.Repeat([]byte{7}, MinUserKeyLen), "alice"); base64.RawURLEncoding.EncodeToString(before[:]) != want {
		t.Fatalf("keyed digest %x, want HMAC-SHA256 %s", before, want)
	}
	plain, _ := New(client, Config{})
	if plain.digest("alice") != userDigest("alice") {
		t.Fatal("without UserKey, D must stay the unkeyed digest (existing deployments' keys)")
	}
}

// TestUserKeyDigestConcurrentAndAllocFree: the pooled HMAC gives the same
// answer under concurrent use, for every length of user ID, and costs no
// allocation once the pool is warm (hmac.New per call costs several).
func TestUserKeyDigestConcurrentAndAllocFree(t *testing.T) {
	k := newUserKeyer(testUserKey)
	ids := append(hostileUserIDs(), strings.Repeat("q", 3000))
	done := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 200; i++ {
				u := ids[i%len(ids)]
				d := k.digest(u)
				if got := base64.RawURLEncoding.EncodeToString(d[:]); got != hmacDigest(testUserKey, u) {
					done <- errors.New("keyed digest of " + u + " is wrong under concurrency")
					return
				}
			}
			done <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	pooled := testing.AllocsPerRun(1000, func() { k.digest("user-000123@example.com") })
	fresh := testing.AllocsPerRun(1000, func() {
		m := hmac.New(sha256.New, testUserKey)
		m.Write([]byte("user-000123@example.com"))
		m.Sum(nil)
	})
	t.Logf("allocs per keyed digest: pooled %.1f, hmac.New per call %.1f", pooled, fresh)
	if pooled > 0.05 && !raceEnabled { // a GC may empty the pool now and then
		t.Fatalf("pooled keyed digest allocates %.2f times per call, want 0", pooled)
	}
}

func BenchmarkUserDigest(b *testing.B) {
	const u = "user-000123@example.com"
	b.Run("unkeyed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			userDigest(u)
		}
	})
	b.Run("keyed-pool", func(b *testing.B) {
		k := newUserKeyer(testUserKey)
		b.ReportAllocs()
		for b.Loop() {
			k.digest(u)
		}
	})
	b.Run("keyed-hmac.New", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m := hmac.New(sha256.New, testUserKey)
			m.Write([]byte(u))
			m.Sum(nil)
		}
	})
}
