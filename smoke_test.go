package sessioncap

import (
	"context"
	"errors"
	"testing"
)

func TestSmoke(t *testing.T) {
	backends(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		e := b.engine(t, Config{MaxSessions: 2, HistoryLimit: 10})
		r1 := mustLogin(t, e, "alice", Meta{IP: "1.1.1.1", UserAgent: "A", Values: map[string]string{"x": "1"}})
		s, err := e.Validate(ctx, r1.Token)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%+v", s)
		mustLogin(t, e, "alice", Meta{IP: "2.2.2.2", UserAgent: "B"})
		r3 := mustLogin(t, e, "alice", Meta{IP: "3.3.3.3", UserAgent: "C"})
		t.Logf("evicted %v", r3.Evicted)
		_, err = e.Validate(ctx, r1.Token)
		var ev *EvictedError
		if !errors.As(err, &ev) {
			t.Fatalf("want evicted, got %v", err)
		}
		t.Logf("%+v", ev)
		b.clock.Add(DefaultIdleTimeout + 1)
		_, err = e.Validate(ctx, r3.Token)
		t.Logf("after idle: %v", err)
		l, err := e.Sessions(ctx, "alice")
		t.Logf("list %d %v", len(l), err)
		t.Logf("keys %v", b.keys(t))
	})
}
