package sessioncap

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// validateAllocs pins the allocations of one Validate per path. boxed (see
// validate.go) writes an interface's layout with unsafe, which saves two
// allocations on the cached path (11 without it) and six on the script
// path (16): a Go release that changed that layout, or a go-redis release
// that copied the arguments, shows up here as a higher count. A lower
// count is good news: lower the pin.
var validateAllocs = map[string]float64{
	"cached": 9,  // the touch cache vouches: a plain HGET
	"script": 10, // the validate script (no touch due, so no write)
}

// TestValidateAllocs runs against the real redis-server only: miniredis
// serves from the test's own process, and its allocations would count.
func TestValidateAllocs(t *testing.T) {
	if realRedis == "" {
		t.Skip("SKIPPED: no real redis-server (see the banner above)")
	}
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: realRedis})
	t.Cleanup(func() { c.Close() })
	now := time.UnixMilli(1_800_000_000_000)
	clock := func() time.Time { return now }
	for path, want := range validateAllocs {
		t.Run(path, func(t *testing.T) {
			cfg := Config{KeyPrefix: newPrefix(), Now: clock}
			if path == "script" {
				cfg.TouchCacheSize = NoTouchCache
			}
			e, err := New(c, cfg)
			if err != nil {
				t.Fatal(err)
			}
			res, err := e.Login(ctx, "alice@example.com", Meta{IP: "10.0.0.1", UserAgent: "agent",
				Values: map[string]string{"app": "value"}})
			if err != nil {
				t.Fatal(err)
			}
			got := testing.AllocsPerRun(200, func() {
				if _, err := e.Validate(ctx, res.Token); err != nil {
					t.Fatal(err)
				}
			})
			t.Logf("%s Validate: %.1f allocations (pinned at %.0f)", path, got, want)
			if got > want && !raceEnabled {
				t.Errorf("%s Validate makes %.1f allocations, pinned at %.0f: did a Go or go-redis release break boxed's assumption?", path, got, want)
			}
		})
	}
}
