package sessioncap

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestNewFillsDefaults(t *testing.T) {
	t.Parallel()
	e, err := New(redis.NewClient(&redis.Options{Addr: deadAddr(t)}), Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := e.Config()
	if c.MaxSessions != 1 || c.Overflow != EvictOldest || c.IdleTimeout != 30*time.Minute ||
		c.AbsoluteTimeout != 24*time.Hour || c.TouchInterval != time.Minute || c.TombstoneTTL != 24*time.Hour ||
		c.KeyPrefix != "sc" || c.HistoryLimit != 0 || c.HistoryTTL != 90*24*time.Hour || c.Events != EventsOff ||
		c.UpdateAttempts != 8 || c.Logger == nil || c.Now != nil || c.ClockSync != 10*time.Second ||
		c.MaxTombstones != 16 || c.SessionCeiling != 1000 || c.WaitReplicas != 0 {
		t.Fatalf("defaults: %+v", c)
	}
	// Now stays nil, so an engine built from another's Config still takes
	// its time from Redis rather than from this host's wall clock.
	if e2, err := New(e.rdb, c); err != nil || e2.clock == nil {
		t.Fatalf("an engine built from Config() is not anchored on Redis time: %v", err)
	}
	c2, err := Config{IdleTimeout: NoIdleTimeout, WaitReplicas: 1}.withDefaults()
	if err != nil || c2.TouchInterval != time.Minute || c2.WaitTimeout != time.Second {
		t.Fatalf("NoIdleTimeout/WaitReplicas defaults: %+v, %v", c2, err)
	}
	c3, err := Config{AbsoluteTimeout: 10 * time.Minute}.withDefaults()
	if err != nil || c3.IdleTimeout != 10*time.Minute {
		t.Fatalf("idle default is capped by a short absolute timeout: %+v, %v", c3, err)
	}
}

func TestNewRejectsNonsense(t *testing.T) {
	t.Parallel()
	client := redis.NewClient(&redis.Options{Addr: deadAddr(t)})
	for name, cfg := range map[string]Config{
		"negative cap":             {MaxSessions: -2},
		"unknown overflow":         {Overflow: 7},
		"idle above absolute":      {IdleTimeout: 2 * time.Hour, AbsoluteTimeout: time.Hour},
		"negative idle":            {IdleTimeout: -5},
		"sub-millisecond absolute": {AbsoluteTimeout: time.Microsecond},
		"touch at idle":            {IdleTimeout: time.Minute, TouchInterval: time.Minute},
		"negative touch":           {TouchInterval: -time.Second},
		"negative tombstone TTL":   {TombstoneTTL: -time.Second},
		"brace in prefix":          {KeyPrefix: "app{1}"},
		"huge prefix":              {KeyPrefix: string(make([]byte, 65))},
		"negative history":         {HistoryLimit: -5},
		"negative history TTL":     {HistoryTTL: -time.Hour},
		"unknown events":           {Events: 9},
		"negative attempts":        {UpdateAttempts: -1},
		"negative replicas":        {WaitReplicas: -1},
		"negative wait":            {WaitTimeout: -time.Second},
	} {
		if _, err := New(client, cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: New = %v, want ErrInvalidConfig", name, err)
		}
	}
	if _, err := New(nil, Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("nil client: %v", err)
	}
}

func TestLimiterReturningNonsenseIsAnError(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		e := b.engine(t, Config{Limiter: LimitFunc(func(_ context.Context, _ string) (int, error) { return -7, nil })})
		if _, err := e.Login(ctx, "alice", Meta{}); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("Login with limiter returning -7: %v", err)
		}
	})
}

// TestNewRefusesWaitReplicasWithoutPinnableClient: WaitReplicas needs a
// client that can pin a connection to a slot's primary; New says so, rather
// than the first Logout.
func TestNewRefusesWaitReplicasWithoutPinnableClient(t *testing.T) {
	t.Parallel()
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}})
	defer ring.Close()
	if _, err := New(ring, Config{WaitReplicas: 1}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New(Ring, WaitReplicas 1) = %v, want ErrInvalidConfig", err)
	}
	if _, err := New(ring, Config{}); err != nil {
		t.Fatalf("New(Ring) without WaitReplicas: %v", err)
	}
}
