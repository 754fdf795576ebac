package sessioncap

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Time is anchored on Redis.
//
// Every timeout (idle, absolute, tombstone) is decided against a time the
// engine passes to the scripts or uses itself on Validate's HGET path. If
// each app instance used its own wall clock, two instances 10 minutes apart
// would disagree about every session: one would expire a session the other
// keeps alive, and a slow one would accept a session long past its idle
// timeout. So an engine without Config.Now reads Redis's clock (TIME) once,
// remembers it with the local monotonic reading at that moment, and from
// then on computes Redis time as that anchor plus the monotonic time
// elapsed. Go's monotonic clock does not move when the wall clock is
// stepped (NTP, an operator, a VM resume), so the local wall clock never
// enters a decision, however wrong it is.
//
// The error is half the round trip of the TIME call that set the anchor
// (a sample slower than maxClockRTT is not used while an anchor exists)
// plus the drift between the local oscillator and Redis's clock since then
// (under 1 ms per 10 s at 100 ppm): well under a second. The anchor is
// renewed in the background once it is ClockSync old, and at once, before
// the call goes on, when the elapsed time makes no sense (negative: the
// local clock went back; more than twice ClockSync: the engine sat idle, or
// a clock without a monotonic reading jumped).
//
// One Redis server has one clock. On a Cluster, TIME goes to one node, and
// a user's scripts run on another: the nodes' clocks then differ by what
// NTP leaves between them, which is the deployment's own bound.
type redisClock struct {
	rdb      redis.Cmdable
	interval time.Duration
	// local is the local clock; a test replaces it to skew or step it.
	local   func() time.Time
	anchor  atomic.Pointer[clockAnchor]
	syncing atomic.Bool
}

// clockAnchor pairs a Redis time with the local reading taken at the same
// moment (the middle of the TIME round trip).
type clockAnchor struct {
	redisMS int64
	at      time.Time
}

// maxClockRTT is the slowest TIME round trip used to renew an anchor: half
// of it is the anchor's error, which must stay within the documented 1 s.
const maxClockRTT = time.Second

func newRedisClock(rdb redis.Cmdable, interval time.Duration) *redisClock {
	return &redisClock{rdb: rdb, interval: interval, local: time.Now}
}

// nowMS returns Redis's current time in milliseconds. Only the first call
// of an engine, and a call after a clock step or a long idle, waits for a
// TIME round trip; every other call reads the anchor and the local
// monotonic clock. If Redis cannot be reached for TIME, it answers from the
// anchor it has, or, before the first anchor, from the local clock: the
// call that wanted the time then fails on Redis anyway.
func (c *redisClock) nowMS(ctx context.Context) int64 {
	a := c.anchor.Load()
	if a != nil {
		el := c.local().Sub(a.at)
		if el >= 0 && el <= 2*c.interval {
			if el > c.interval {
				c.renewInBackground()
			}
			return a.redisMS + el.Milliseconds()
		}
	}
	if fresh, err := c.sync(ctx, a == nil); err == nil {
		a = fresh
	}
	if a == nil {
		return c.local().UnixMilli()
	}
	return a.redisMS + c.local().Sub(a.at).Milliseconds()
}

// sync reads TIME and installs the anchor it gives. A sample whose round
// trip took longer than maxClockRTT is refused unless force is set (there
// is no anchor yet, and a rough one beats the local wall clock).
func (c *redisClock) sync(ctx context.Context, force bool) (*clockAnchor, error) {
	t0 := c.local()
	rt, err := c.rdb.Time(ctx).Result()
	if err != nil {
		return nil, err
	}
	t1 := c.local()
	rtt := t1.Sub(t0)
	if rtt < 0 {
		rtt = 0
	}
	if rtt > maxClockRTT && !force {
		return nil, context.DeadlineExceeded
	}
	a := &clockAnchor{redisMS: rt.UnixMilli(), at: t0.Add(rtt / 2)}
	c.anchor.Store(a)
	return a, nil
}

// renewInBackground renews the anchor without holding up the call that
// noticed it was due; one renewal runs at a time.
func (c *redisClock) renewInBackground() {
	if !c.syncing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer c.syncing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), maxClockRTT)
		defer cancel()
		_, _ = c.sync(ctx, false)
	}()
}
