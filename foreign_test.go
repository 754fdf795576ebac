package sessioncap

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// foreignSeeds are records nobody wrote through the engine: truncated,
// wrong kind, non-digit times, absurd lengths, another format's bytes.
var foreignSeeds = []struct {
	where byte // which field is overwritten (see plantForeign)
	data  string
}{
	{0, ""},
	{0, "2"},
	{0, "2" + "0123456789abcdef" + "zzzzzzzzzzzzz"},
	{0, "2" + "0123456789abcdef" + "0000000000001" + "0000000000001" + "9999999999999" + "0000000000000" + "9999"},
	{0, "2" + "0123456789abcdef" + "0000000000001" + "0000000000001" + "9999999999999" + "00000000000-1" + "00-5" + "meta"},
	{0, "L old format record"},
	{0, "E" + "0123456789abcdef"},
	{1, ""},
	{1, "garbage"},
	{1, string(make([]byte, lEntryLen+xEntryLen))},
	{1, string(make([]byte, 2*(lEntryLen+xEntryLen)))},
	{5, ""},
	{5, "00000009000002000000"},
	{5, string(make([]byte, indexHeaderLen+lEntryLen))},
	{6, "garbage block"},
	{2, "short"},
	{2, string(make([]byte, indexEntryLen))},
	{3, "2 a live-looking record under a foreign field"},
	{4, "an index of the previous format"},
}

// plantForeign overwrites one field of the user's hash with data: 0 the
// first session's record, 1 the small live index, 2 the tombstone index, 3
// a session ID nobody signed in with, 4 the previous format's index field,
// 5 the large index's header, 6 a block of it.
func plantForeign(ctx context.Context, c redis.Cmdable, k userKeys, first [sidLen]byte, where byte, data string) error {
	field := map[byte]string{0: string(first[:]), 1: "j", 2: "t", 3: "0123456789abcdef", 4: "i", 5: "k",
		6: blockPrefix + "00000000"}[where%7]
	return c.HSet(ctx, k.data, field, data).Err()
}

// foreignRun signs a user in twice under a cap of 2, plants a foreign
// value, then runs every operation. Each either succeeds or fails with a
// typed error and no write at all (the hash is as it was: no partial
// write); afterwards the cap holds and LogoutAll ends every session that
// still validates.
func foreignRun(t *testing.T, c redis.UniversalClient, e *Engine, user string, where byte, data string) {
	ctx := context.Background()
	a, err := e.Login(ctx, user, Meta{UserAgent: "a", Values: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Login(ctx, user, Meta{UserAgent: "b"})
	if err != nil {
		t.Fatal(err)
	}
	k := e.keysOf(user)
	ta, _ := parseToken(a.Token)
	if err := plantForeign(ctx, c, k, ta.sid, where, data); err != nil {
		t.Fatal(err)
	}
	tokens := []string{a.Token, b.Token}
	step := func(name string, f func() error) {
		before, err := c.HGetAll(ctx, k.data).Result()
		if err != nil {
			t.Fatal(err)
		}
		err = f()
		if err == nil {
			return
		}
		if !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrExpired) && !errors.Is(err, ErrEvicted) &&
			!errors.Is(err, ErrRevoked) && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrConflict) {
			t.Fatalf("%s after a foreign value in field %d (%q): untyped error %v", name, where%7, data, err)
		}
		if !errors.Is(err, ErrUnavailable) {
			return
		}
		after, err2 := c.HGetAll(ctx, k.data).Result()
		if err2 != nil {
			t.Fatal(err2)
		}
		if !maps.Equal(before, after) {
			t.Fatalf("%s failed (%v) after a foreign value in field %d (%q) and still wrote", name, err, where%7, data)
		}
	}
	step("Sessions", func() error { _, err := e.Sessions(ctx, user); return err })
	step("Validate", func() error { _, err := e.Validate(ctx, a.Token); return err })
	step("Save", func() error {
		s, err := e.Validate(ctx, a.Token)
		if err != nil {
			return nil // nothing to save: Validate's answer was checked above
		}
		s.Values = map[string]string{"k": "w"}
		return e.Save(ctx, s)
	})
	step("Rotate", func() error {
		tok, err := e.Rotate(ctx, b.Token)
		if err == nil {
			tokens[1] = tok
		}
		return err
	})
	step("Login", func() error {
		r, err := e.Login(ctx, user, Meta{UserAgent: "c"})
		if err == nil {
			tokens = append(tokens, r.Token)
		}
		return err
	})
	valid := 0
	for _, tok := range tokens {
		if _, err := e.Validate(ctx, tok); err == nil {
			valid++
		}
	}
	if valid > 2 {
		t.Fatalf("%d sessions validate under a cap of 2 after a foreign value in field %d (%q)", valid, where%7, data)
	}
	step("Logout", func() error { return e.Logout(ctx, a.Token) })
	step("LogoutAll", func() error { _, err := e.LogoutAll(ctx, user); return err })
	if _, err := e.LogoutAll(ctx, user); err != nil {
		t.Fatalf("LogoutAll after a foreign value in field %d (%q): %v", where%7, data, err)
	}
	for i, tok := range tokens {
		if _, err := e.Validate(ctx, tok); err == nil {
			t.Fatalf("session %d still validates after LogoutAll (foreign value in field %d: %q)", i, where%7, data)
		}
	}
}

// TestForeignRecords runs every foreign seed on every backend: whatever a
// user's hash holds, no call panics, half-writes, lets the user past the
// cap, or leaves a session LogoutAll cannot end.
func TestForeignRecords(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		e := b.engine(t, Config{MaxSessions: 2, HistoryLimit: 10})
		for i, s := range foreignSeeds {
			foreignRun(t, b.client, e, fmt.Sprint("foreign-", i), s.where, s.data)
		}
	})
}

// FuzzForeignRecords is TestForeignRecords for any bytes in any field, on
// miniredis (CI bounds it by executions; the seeds run on every backend in
// TestForeignRecords).
func FuzzForeignRecords(f *testing.F) {
	for _, s := range foreignSeeds {
		f.Add(s.where, s.data)
	}
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(m.Close)
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	f.Cleanup(func() { c.Close() })
	e, err := New(c, Config{MaxSessions: 2, HistoryLimit: 10, Now: newClock().Now})
	if err != nil {
		f.Fatal(err)
	}
	var n int
	f.Fuzz(func(t *testing.T, where byte, data string) {
		n++
		foreignRun(t, c, e, fmt.Sprint("fuzz-", n), where, data)
	})
}
