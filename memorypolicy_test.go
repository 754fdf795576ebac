package sessioncap

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// TestCheckMemoryPolicy: the check reports every master's policy, flags the
// evicting ones under a maxmemory (and only those) and warns once per such
// master through the Logger.
func TestCheckMemoryPolicy(t *testing.T) {
	needRedisServer(t, "CONFIG GET maxmemory-policy")
	ctx := context.Background()
	for _, c := range []struct {
		args   []string
		silent bool
	}{
		{[]string{"--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"}, true},
		{[]string{"--maxmemory", "100mb", "--maxmemory-policy", "volatile-ttl"}, true},
		{[]string{"--maxmemory", "100mb", "--maxmemory-policy", "noeviction"}, false},
		{[]string{"--maxmemory-policy", "allkeys-lfu"}, false}, // no maxmemory: nothing is evicted
		{nil, false},
	} {
		var log bytes.Buffer
		e, err := New(ownRedis(t, c.args...), Config{Now: newClock().Now, Logger: slog.New(slog.NewTextHandler(&log, nil))})
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.CheckMemoryPolicy(ctx)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if len(got) != 1 || got[0].SilentSignOuts != c.silent || got[0].Addr == "" {
			t.Fatalf("%v: %+v, want one master with SilentSignOuts %v", c.args, got, c.silent)
		}
		if warned := strings.Contains(log.String(), "level=WARN"); warned != c.silent {
			t.Fatalf("%v: warned %v, want %v (log %q)", c.args, warned, c.silent, log.String())
		}
	}
}

// TestCheckMemoryPolicyEveryBackend: one report per master (three on the
// Cluster), or, where CONFIG GET is refused, ErrUnavailable.
func TestCheckMemoryPolicyEveryBackend(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		got, err := b.engine(t, Config{}).CheckMemoryPolicy(context.Background())
		if err != nil {
			if b.mini != nil && errors.Is(err, ErrUnavailable) {
				return // miniredis has no CONFIG GET
			}
			t.Fatal(err)
		}
		want := 1
		if b.name == "cluster" {
			want = 3
		}
		if len(got) != want {
			t.Fatalf("%d reports, want %d: %+v", len(got), want, got)
		}
		for _, p := range got {
			if p.Policy == "" {
				t.Fatalf("no policy read: %+v", p)
			}
		}
	})
}
