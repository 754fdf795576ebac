package sessioncap

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap/internal/redistest"
)

// hostileUserIDs are user IDs that could break a naive layout.
func hostileUserIDs() []string {
	return []string{
		"alice", "Alice", "alice ", " alice", "42", "0",
		"{alice}", "}alice{", "a}b{c", "{", "}", "{}", "{{}}",
		"user:1", "user:1:d", ":", "::", "a:b:c",
		"with space", "\t", "\n", "line\nbreak", "\r\n",
		"ünïcødé", "日本語ユーザー", "😀", "\u202e",
		"nul\x00byte", "\x00", "\x00\x00", "\xff\xfe", "\xc3",
		"*", "?", "[a-z]", "h*llo", "\\", "\"'`",
		strings.Repeat("x", 1024), strings.Repeat("{", 1024), strings.Repeat("é", 512),
		strings.Repeat("y", maxUserIDLen),
	}
}

func TestKeyLayoutOneSlotPerUserAndNoCollisions(t *testing.T) {
	t.Parallel()
	for _, dg := range digesters {
		t.Run(dg.name, func(t *testing.T) { checkKeyLayout(t, dg.digest) })
	}
}

// checkKeyLayout is the layout check for one way of computing D.
func checkKeyLayout(t *testing.T, digest func(string) [digestLen]byte) {
	seen := map[string]string{}
	for _, prefix := range []string{"sc", "app:sessions", "x y", "ü"} {
		for _, u := range hostileUserIDs() {
			k := keysFor(prefix, digest(u))
			all := append(k.list(), k.channel)
			slot := redistest.KeySlot(all[0])
			for _, key := range all {
				if got := redistest.KeySlot(key); got != slot {
					t.Errorf("user %q prefix %q: key %q in slot %d, want %d", u, prefix, key, got, slot)
				}
				if strings.Count(key, "{") != 1 || strings.Count(key, "}") != 1 {
					t.Errorf("user %q: key %q must hold exactly one hash tag", u, key)
				}
				if prev, dup := seen[key]; dup {
					t.Errorf("key %q built for both %q and %q", key, prev, u)
				}
				seen[key] = u
			}
		}
	}
}

// TestEveryScriptCallUsesOneSlot drives every operation and checks, on the
// wire, that each EVALSHA/EVAL names only keys of one slot, and that the
// channel it publishes on shares that slot: miniredis does not check slots.
func TestEveryScriptCallUsesOneSlot(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		rec := &slotRecorder{}
		b.client.AddHook(rec)
		e := b.engine(t, Config{MaxSessions: 2, HistoryLimit: 10, Events: EventsPubSub})
		ctx := context.Background()
		for _, u := range []string{"{alice}", "bob:1", "nul\x00", strings.Repeat("z", 1024)} {
			r1 := mustLogin(t, e, u, Meta{IP: "10.0.0.1", UserAgent: "ua"})
			mustLogin(t, e, u, Meta{})
			r3 := mustLogin(t, e, u, Meta{}) // evicts r1
			s, err := e.Validate(ctx, r3.Token)
			if err != nil {
				t.Fatal(err)
			}
			s.Values["k"] = "v"
			if err := e.Save(ctx, s); err != nil {
				t.Fatal(err)
			}
			tok, err := e.Rotate(ctx, r3.Token)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.Sessions(ctx, u); err != nil {
				t.Fatal(err)
			}
			if _, err := e.LogoutOthers(ctx, tok); err != nil {
				t.Fatal(err)
			}
			if err := e.Logout(ctx, tok); err != nil {
				t.Fatal(err)
			}
			_ = e.Revoke(ctx, u, r1.SessionID)
			if _, err := e.LogoutAll(ctx, u); err != nil {
				t.Fatal(err)
			}
		}
		calls := rec.calls()
		if len(calls) < 30 {
			t.Fatalf("recorded only %d script calls", len(calls))
		}
		for _, c := range calls {
			slot := redistest.KeySlot(c.keys[0])
			for _, k := range c.keys {
				if redistest.KeySlot(k) != slot {
					t.Errorf("%s: keys %q span slots", c.name, c.keys)
				}
			}
			if c.channel != "" && redistest.KeySlot(c.channel) != slot {
				t.Errorf("%s: channel %q not in the keys' slot %d", c.name, c.channel, slot)
			}
			if len(c.keys) != 4 && len(c.keys) != 2 {
				t.Errorf("%s: %d keys, want 4 (2 for validate)", c.name, len(c.keys))
			}
		}
	})
}

type scriptCall struct {
	name    string
	keys    []string
	channel string
}

// slotRecorder captures the KEYS of every script call.
type slotRecorder struct {
	redistest.PassHook
	mu  sync.Mutex
	got []scriptCall
}

func (r *slotRecorder) calls() []scriptCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]scriptCall(nil), r.got...)
}

func (r *slotRecorder) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		name := cmd.Name()
		if isScriptCall(name) {
			args := cmd.Args()
			n, err := strconv.Atoi(fmt.Sprint(args[2]))
			if err == nil && len(args) >= 3+n {
				c := scriptCall{name: name}
				for _, k := range args[3 : 3+n] {
					c.keys = append(c.keys, fmt.Sprint(k))
				}
				// ARGV[6] is the event channel in the scripts that take the
				// common arguments (all but validate.lua, with two keys).
				if n == 4 && len(args) > 3+n+5 {
					c.channel = fmt.Sprint(args[3+n+5])
				}
				r.mu.Lock()
				r.got = append(r.got, c)
				r.mu.Unlock()
			}
		}
		return next(ctx, cmd)
	}
}
