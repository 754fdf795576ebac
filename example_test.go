package sessioncap_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap"
)

// One device at a time: a second sign-in evicts the first; the new device
// learns which device it signed out, and the first learns when, why and by
// which device.
func Example() {
	ctx := context.Background()
	mr, _ := miniredis.Run() // or any Redis 7.0+: single, Sentinel or Cluster
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})

	engine, err := sessioncap.New(rdb, sessioncap.Config{MaxSessions: 1})
	if err != nil {
		panic(err)
	}
	laptop, _ := engine.Login(ctx, "alice", sessioncap.Meta{IP: "203.0.113.7", UserAgent: firefoxOnWindows})
	phone, _ := engine.Login(ctx, "alice", sessioncap.Meta{IP: "198.51.100.2", UserAgent: safariOnIPhone})
	fmt.Println("the phone signed out:", phone.EvictedDevices[0].Name())

	_, err = engine.Validate(ctx, laptop.Token)
	var evicted *sessioncap.EvictedError
	if errors.As(err, &evicted) {
		fmt.Printf("laptop: signed out (%s) by a sign-in from %s, %s\n",
			evicted.Reason, evicted.By.Name(), evicted.By.IP)
	}
	s, _ := engine.Validate(ctx, phone.Token)
	fmt.Println("phone: signed in as", s.UserID, "on", s.DeviceName())
	// Output:
	// the phone signed out: Firefox on Windows
	// laptop: signed out (limit) by a sign-in from Safari on iPhone, 198.51.100.2
	// phone: signed in as alice on Safari on iPhone
}

// User-Agent headers as browsers send them.
const (
	firefoxOnWindows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0"
	safariOnIPhone   = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)

// Plans with 1, 2 or 4 screens, admins unlimited, and a refusal instead of
// an eviction when the plan is full.
func ExamplePlanLimits() {
	ctx := context.Background()
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})

	plans := map[string]string{"alice": "standard", "root": "admin"}
	engine, _ := sessioncap.New(rdb, sessioncap.Config{
		Overflow: sessioncap.RejectNew,
		Limiter: sessioncap.PlanLimits(
			func(ctx context.Context, user string) (string, error) { return plans[user], nil },
			map[string]int{"basic": 1, "standard": 2, "premium": 4, "admin": sessioncap.Unlimited},
		),
	})
	for i := 1; i <= 3; i++ {
		_, err := engine.Login(ctx, "alice", sessioncap.Meta{UserAgent: fmt.Sprint("screen ", i)})
		var full *sessioncap.LimitError
		if errors.As(err, &full) {
			fmt.Printf("screen %d refused: %d of %d in use, newest is %q\n",
				i, len(full.Sessions), full.Limit, full.Sessions[0].UserAgent)
			continue
		}
		fmt.Printf("screen %d signed in\n", i)
	}
	// Output:
	// screen 1 signed in
	// screen 2 signed in
	// screen 3 refused: 2 of 2 in use, newest is "screen 2"
}

// "Sign out all other devices", and the devices list behind it.
func ExampleEngine_LogoutOthers() {
	ctx := context.Background()
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	engine, _ := sessioncap.New(rdb, sessioncap.Config{MaxSessions: 3})

	engine.Login(ctx, "bob", sessioncap.Meta{UserAgent: "work laptop"})
	engine.Login(ctx, "bob", sessioncap.Meta{UserAgent: "old tablet"})
	here, _ := engine.Login(ctx, "bob", sessioncap.Meta{UserAgent: "phone"})

	ended, _ := engine.LogoutOthers(ctx, here.Token)
	fmt.Println("signed out", len(ended), "other devices")
	devices, _ := engine.Sessions(ctx, "bob")
	for _, d := range devices {
		fmt.Println("still signed in:", d.UserAgent)
	}
	// Output:
	// signed out 2 other devices
	// still signed in: phone
}

// Cached validation: Validate answers from go-redis's client-side cache,
// and every ending reaches this instance through Redis's invalidation
// within MaxStaleness at worst (docs/caching.md). It needs a real Redis
// (RESP3 client tracking) and a standalone client, so this example is
// compiled, not run.
func ExampleCacheConfig() {
	rdb := redis.NewClient(&redis.Options{
		Addr:                  "localhost:6379",
		Protocol:              3,
		ClientSideCacheConfig: sessioncap.CacheConfig(), // MaxStaleness 1 s, 65,536 records
	})
	engine, err := sessioncap.New(rdb, sessioncap.Config{CachedValidate: true})
	if errors.Is(err, sessioncap.ErrCacheUnsupported) {
		panic(err) // a Cluster, Sentinel or RESP2 client, or a cache without MaxStaleness
	}
	_ = engine
}

// Auto-pipelining: go-redis's autopipeliner batches the commands of
// concurrent callers into shared round trips; the engine takes it as the
// client it is.
func Example_autoPipeline() {
	ctx := context.Background()
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	ap, err := rdb.AutoPipeline() // or AutoPipelineWithOptions with FullDuplex
	if err != nil {
		panic(err)
	}
	engine, err := sessioncap.New(ap, sessioncap.Config{})
	if err != nil {
		panic(err)
	}
	res, _ := engine.Login(ctx, "alice", sessioncap.Meta{})
	s, _ := engine.Validate(ctx, res.Token)
	fmt.Println("signed in as", s.UserID)
	// Output:
	// signed in as alice
}

// A full-duplex autopipeliner streams commands while replies come back:
// the better face where sign-ins, scripts that keep Redis busy, are a
// large share of the traffic (docs/caching.md).
func Example_autoPipelineFullDuplex() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	opt := redis.DefaultBlockingAutoPipelineOptions()
	opt.FullDuplex = true
	ap, err := rdb.AutoPipelineWithOptions(opt)
	if err != nil {
		panic(err)
	}
	engine, err := sessioncap.New(ap, sessioncap.Config{})
	if err != nil {
		panic(err)
	}
	res, _ := engine.Login(context.Background(), "alice", sessioncap.Meta{})
	fmt.Println("signed in:", res.Token != "")
	// Output:
	// signed in: true
}

// On Sentinel (docs/cluster.md). Compiled, not run: it needs Sentinels.
func Example_sentinel() {
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:            "mymaster",
		SentinelAddrs:         []string{"10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"},
		ContextTimeoutEnabled: true, // see "Deadlines" below
	})
	engine, err := sessioncap.New(rdb, sessioncap.Config{MaxSessions: 2})
	_, _ = engine, err
}

// On Redis Cluster (docs/cluster.md). Compiled, not run: it needs a
// cluster.
func Example_cluster() {
	rdb := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                      []string{"10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"},
		ClusterStateReloadInterval: time.Second, // see "What happens on failover"
		ContextTimeoutEnabled:      true,
	})
	engine, err := sessioncap.New(rdb, sessioncap.Config{MaxSessions: 2})
	_, _ = engine, err
}

// A keyed user digest (docs/instances.md): tokens no longer say which user
// they belong to to anyone without the key.
func ExampleConfig_userKey() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	userKey := make([]byte, 32)
	if _, err := rand.Read(userKey); err != nil {
		panic(err)
	}

	engine, err := sessioncap.New(rdb, sessioncap.Config{
		UserKey: userKey, // 32 random bytes, from your secret store
	})
	if err != nil {
		panic(err)
	}
	res, _ := engine.Login(context.Background(), "alice", sessioncap.Meta{})
	s, _ := engine.Validate(context.Background(), res.Token)
	fmt.Println("signed in as", s.UserID)
	// Output:
	// signed in as alice
}
