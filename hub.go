package sessioncap

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// The hub carries every Subscription of an Engine over as few Redis
// connections as the topology allows: one for EventsPubSub, and one per
// Cluster master for EventsSharded (one in all on a single Redis). It counts
// how many Subscriptions want each user's channel, SUBSCRIBEs on the first
// and UNSUBSCRIBEs after the last, and fans each message out to every
// Subscription of that user without ever blocking: a Subscription whose
// buffer is full loses the event (Subscription.Dropped counts them).
//
// Why not let one go-redis PubSub per master keep the shard channels? On a
// reconnect go-redis resubscribes every shard channel it holds in a single
// SSUBSCRIBE, which a Cluster node refuses with CROSSSLOT as soon as they
// span two slots, and it routes the new connection by a random one of them.
// So the hub never relies on go-redis's resubscription: it reads each
// connection itself, and on any error (a lost connection, a MOVED or
// CROSSSLOT reply, a missed health-check pong) it closes that connection and
// places its channels again, each on the master that owns its slot now.
// When a slot moves to another master during a resharding, its old owner
// unsubscribes the slot's channels (an unrequested SUNSUBSCRIBE), and the
// hub places those channels on the new owner the same way. Events published
// in between are lost, as Pub/Sub loses them on any reconnect.
//
// The hub runs only while some Subscription is open: when the last one
// closes, it closes its connections and its goroutines end.
type hub struct {
	e       *Engine
	sharded bool
	cluster *redis.ClusterClient // non-nil: shard channels go to each slot's master

	mu    sync.RWMutex
	chans map[string]*hubChan
	conns map[string]*hubConn // by master address ("" off Cluster)
	stop  chan struct{}       // non-nil while the maintenance goroutine runs
	wake  chan struct{}

	backoff time.Duration // before the next re-placement; 0 after a success
	retryAt time.Time
}

// hubChan is one user's channel and the Subscriptions that want it.
type hubChan struct {
	name, user string
	subs       map[*Subscription]struct{}
	conn       *hubConn // nil while not placed
	conf       *confirmation
}

// confirmation is closed when Redis confirmed a channel's subscription, or
// when the attempt failed, with err set.
type confirmation struct {
	done chan struct{}
	err  error
}

func newConfirmation() *confirmation { return &confirmation{done: make(chan struct{})} }

func (c *confirmation) confirmed() bool {
	select {
	case <-c.done:
		return c.err == nil
	default:
		return false
	}
}

// hubConn is one Pub/Sub connection and its reader goroutine.
type hubConn struct {
	key string
	ps  *redis.PubSub
	// cmdMu keeps the commands on this connection in the order the hub
	// decided them under mu: it is taken under mu and released once sent.
	cmdMu sync.Mutex

	// Guarded by hub.mu.
	chans       map[string]*hubChan
	expectSub   map[string]int // confirmations still due for our SUBSCRIBEs
	expectUnsub map[string]int // and for our UNSUBSCRIBEs
	closed      bool

	lastSeen atomic.Int64 // UnixNano of the last reply of any kind
	pinged   atomic.Int64 // UnixNano of an unanswered health-check PING
}

const (
	hubHealthEvery = 3 * time.Second // PING a connection idle this long
	hubPongWithin  = 5 * time.Second // and give up on it if no reply by then
	hubMaxBackoff  = 2 * time.Second
)

// hubRef is the Engine's lazily made hub.
type hubRef struct {
	once sync.Once
	h    *hub
}

func (e *Engine) eventHub() *hub {
	e.subs.once.Do(func() {
		h := &hub{e: e, sharded: e.cfg.Events == EventsSharded, chans: map[string]*hubChan{},
			conns: map[string]*hubConn{}, wake: make(chan struct{}, 1)}
		if cc, ok := e.rdb.(*redis.ClusterClient); ok && h.sharded {
			h.cluster = cc
		}
		e.subs.h = h
	})
	return e.subs.h
}

// route names the connection a channel belongs on, and how to open it.
type route struct {
	key  string
	open func() *redis.PubSub
}

func (h *hub) route(ctx context.Context, ch string) (route, error) {
	bg := context.Background()
	switch {
	case h.cluster != nil:
		node, err := h.cluster.MasterForKey(ctx, ch)
		if err != nil {
			return route{}, err
		}
		return route{node.Options().Addr, func() *redis.PubSub { return node.SSubscribe(bg) }}, nil
	case h.sharded:
		return route{"", func() *redis.PubSub { return h.e.rdb.SSubscribe(bg) }}, nil
	default:
		return route{"", func() *redis.PubSub { return h.e.rdb.Subscribe(bg) }}, nil
	}
}

// outbox is the commands decided under mu, sent after it is released.
type outbox struct {
	sub, unsub map[*hubConn][]string
	closing    []*hubConn
}

func (o *outbox) add(m *map[*hubConn][]string, hc *hubConn, ch string) {
	if *m == nil {
		*m = map[*hubConn][]string{}
	}
	if _, ok := (*m)[hc]; !ok && !o.has(hc) {
		hc.cmdMu.Lock()
	}
	(*m)[hc] = append((*m)[hc], ch)
}

func (o *outbox) has(hc *hubConn) bool {
	_, a := o.sub[hc]
	_, b := o.unsub[hc]
	return a || b
}

// flush sends the commands; a connection that cannot take them is broken.
func (h *hub) flush(o *outbox) {
	bg := context.Background()
	failed := map[*hubConn]error{}
	send := func(hc *hubConn, chs []string, subscribe bool) {
		var err error
		switch {
		case subscribe && h.sharded && h.cluster != nil:
			// One SSUBSCRIBE per channel: a Cluster node refuses one
			// that names channels of two slots.
			for _, ch := range chs {
				if err = hc.ps.SSubscribe(bg, ch); err != nil {
					break
				}
			}
		case subscribe && h.sharded:
			err = hc.ps.SSubscribe(bg, chs...)
		case subscribe:
			err = hc.ps.Subscribe(bg, chs...)
		case h.sharded && h.cluster != nil:
			for _, ch := range chs {
				if err = hc.ps.SUnsubscribe(bg, ch); err != nil {
					break
				}
			}
		case h.sharded:
			err = hc.ps.SUnsubscribe(bg, chs...)
		default:
			err = hc.ps.Unsubscribe(bg, chs...)
		}
		if err != nil && failed[hc] == nil {
			failed[hc] = err
		}
	}
	// Unsubscribes first, in case a channel was dropped and wanted again.
	for hc, chs := range o.unsub {
		send(hc, chs, false)
		if _, both := o.sub[hc]; !both {
			hc.cmdMu.Unlock()
		}
	}
	for hc, chs := range o.sub {
		send(hc, chs, true)
		hc.cmdMu.Unlock()
	}
	for _, hc := range o.closing {
		hc.ps.Close()
	}
	// Only now that every cmdMu is released: breakConn takes mu.
	for hc, err := range failed {
		h.breakConn(hc, err)
	}
}

// add registers s for channels (channel name to user ID) and returns the
// confirmations to wait for.
func (h *hub) add(ctx context.Context, s *Subscription, channels map[string]string) ([]*confirmation, error) {
	// Route before taking the lock: it may load the cluster's slot map.
	routes := map[string]route{}
	h.mu.RLock()
	var need []string
	for ch := range channels {
		if c := h.chans[ch]; c == nil || c.conn == nil {
			need = append(need, ch)
		}
	}
	h.mu.RUnlock()
	for _, ch := range need {
		r, err := h.route(ctx, ch)
		if err != nil {
			h.afterError(err)
			return nil, unavailable("subscribe", err)
		}
		routes[ch] = r
	}

	var o outbox
	h.mu.Lock()
	h.startLocked()
	confs := make([]*confirmation, 0, len(channels))
	for ch, user := range channels {
		c := h.chans[ch]
		if c == nil {
			c = &hubChan{name: ch, user: user, subs: map[*Subscription]struct{}{}, conf: newConfirmation()}
			h.chans[ch] = c
		}
		c.subs[s] = struct{}{}
		s.chans = append(s.chans, ch)
		if r, ok := routes[ch]; ok && c.conn == nil {
			h.placeLocked(&o, c, r)
		}
		confs = append(confs, c.conf)
	}
	h.mu.Unlock()
	h.flush(&o)
	return confs, nil
}

// placeLocked puts c on the connection r names, opening it if need be.
func (h *hub) placeLocked(o *outbox, c *hubChan, r route) {
	hc := h.conns[r.key]
	if hc == nil {
		hc = &hubConn{key: r.key, ps: r.open(), chans: map[string]*hubChan{},
			expectSub: map[string]int{}, expectUnsub: map[string]int{}}
		hc.lastSeen.Store(time.Now().UnixNano())
		h.conns[r.key] = hc
		go h.read(hc)
	}
	c.conn = hc
	hc.chans[c.name] = c
	hc.expectSub[c.name]++
	o.add(&o.sub, hc, c.name)
}

// remove unregisters s; the last Subscription of a channel unsubscribes it,
// and the last channel of a connection closes it.
func (h *hub) remove(s *Subscription) {
	var o outbox
	h.mu.Lock()
	for _, ch := range s.chans {
		c := h.chans[ch]
		if c == nil {
			continue
		}
		delete(c.subs, s)
		if len(c.subs) > 0 {
			continue
		}
		delete(h.chans, ch)
		if hc := c.conn; hc != nil {
			delete(hc.chans, ch)
			if len(hc.chans) == 0 {
				h.closeLocked(&o, hc)
			} else {
				hc.expectUnsub[ch]++
				o.add(&o.unsub, hc, ch)
			}
		}
	}
	s.chans = nil
	if len(h.chans) == 0 && h.stop != nil {
		close(h.stop)
		h.stop = nil
		for _, hc := range h.conns {
			h.closeLocked(&o, hc)
		}
	}
	h.mu.Unlock()
	h.flush(&o)
}

func (h *hub) closeLocked(o *outbox, hc *hubConn) {
	hc.closed = true
	if h.conns[hc.key] == hc {
		delete(h.conns, hc.key)
	}
	o.closing = append(o.closing, hc)
}

// breakConn closes a connection that failed and leaves its channels for the
// maintenance goroutine to place again. Subscribe calls still waiting for
// one of them fail with err.
func (h *hub) breakConn(hc *hubConn, err error) {
	h.mu.Lock()
	if hc.closed {
		h.mu.Unlock()
		return
	}
	var o outbox
	h.closeLocked(&o, hc)
	for _, c := range hc.chans {
		c.conn = nil
		if !c.conf.confirmed() {
			c.conf.err = unavailable("subscribe", err)
			close(c.conf.done)
		}
		c.conf = newConfirmation()
	}
	hc.chans = nil
	h.backoff = min(max(2*h.backoff, 50*time.Millisecond), hubMaxBackoff)
	h.retryAt = time.Now().Add(h.backoff)
	h.kickLocked()
	h.mu.Unlock()
	h.e.cfg.Logger.Warn("sessioncap: event subscription connection lost; resubscribing", "node", hc.key, "err", err)
	h.afterError(err)
	h.flush(&o)
}

// afterError makes a cluster client re-read its slot map, so that channels
// are placed on the masters that own them now.
func (h *hub) afterError(error) {
	if h.cluster != nil {
		h.cluster.ReloadState(context.Background())
	}
}

func (h *hub) kickLocked() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

func (h *hub) startLocked() {
	if h.stop == nil {
		h.stop = make(chan struct{})
		go h.maintain(h.stop)
	}
}

// read receives one connection's replies until it is closed or fails.
func (h *hub) read(hc *hubConn) {
	for {
		msg, err := hc.ps.Receive(context.Background())
		if err != nil {
			h.breakConn(hc, err)
			return
		}
		hc.lastSeen.Store(time.Now().UnixNano())
		hc.pinged.Store(0)
		switch m := msg.(type) {
		case *redis.Message:
			h.deliver(hc, m)
		case *redis.Subscription:
			h.confirm(hc, m)
		}
	}
}

// deliver fans a message out to the channel's Subscriptions, never
// blocking: a full buffer drops the event for that Subscription alone.
func (h *hub) deliver(hc *hubConn, m *redis.Message) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	c := h.chans[m.Channel]
	if c == nil || c.conn != hc {
		return
	}
	ev, err := parseEvent(c.user, m.Payload)
	if err != nil {
		h.e.cfg.Logger.Warn("sessioncap: dropping malformed event", "channel", m.Channel)
		return
	}
	for s := range c.subs {
		select {
		case s.c <- ev:
		default:
			s.dropped.Add(1)
		}
	}
}

// confirm handles a (un)subscribe reply, ours or one Redis sent unasked
// because the channel's slot left this master.
func (h *hub) confirm(hc *hubConn, m *redis.Subscription) {
	var o outbox
	defer h.flush(&o)
	h.mu.Lock()
	defer h.mu.Unlock()
	if hc.closed {
		return
	}
	ch := m.Channel
	switch m.Kind {
	case "subscribe", "ssubscribe":
		if hc.expectSub[ch] > 0 {
			hc.expectSub[ch]--
		}
		if hc.expectSub[ch] > 0 || hc.expectUnsub[ch] > 0 {
			return
		}
		delete(hc.expectSub, ch)
		if c := hc.chans[ch]; c != nil && c.conn == hc && !c.conf.confirmed() {
			close(c.conf.done)
			h.backoff = 0
		}
	case "unsubscribe", "sunsubscribe":
		if hc.expectUnsub[ch] > 0 {
			if hc.expectUnsub[ch]--; hc.expectUnsub[ch] == 0 {
				delete(hc.expectUnsub, ch)
			}
			return
		}
		if c := hc.chans[ch]; c != nil && c.conn == hc {
			// The slot moved: place the channel on its new owner.
			delete(hc.chans, ch)
			c.conn = nil
			if len(hc.chans) == 0 {
				h.closeLocked(&o, hc)
			}
			if c.conf.confirmed() {
				c.conf = newConfirmation()
			}
			h.retryAt = time.Now().Add(50 * time.Millisecond)
			h.kickLocked()
			if h.cluster != nil {
				h.cluster.ReloadState(context.Background())
			}
		}
	}
}

// maintain places channels left without a connection and checks idle
// connections with a PING, until stop is closed.
func (h *hub) maintain(stop <-chan struct{}) {
	t := time.NewTimer(hubHealthEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-h.wake:
		case <-t.C:
		}
		h.healthCheck()
		wait := h.placeHomeless(stop)
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(min(wait, hubHealthEvery))
	}
}

func (h *hub) healthCheck() {
	now := time.Now().UnixNano()
	var ping, dead []*hubConn
	h.mu.RLock()
	for _, hc := range h.conns {
		switch p := hc.pinged.Load(); {
		case p != 0 && now-p > int64(hubPongWithin):
			dead = append(dead, hc)
		case p == 0 && now-hc.lastSeen.Load() > int64(hubHealthEvery):
			ping = append(ping, hc)
		}
	}
	h.mu.RUnlock()
	for _, hc := range dead {
		h.breakConn(hc, errors.New("no reply to a health-check PING"))
	}
	for _, hc := range ping {
		hc.pinged.Store(now)
		ctx, cancel := context.WithTimeout(context.Background(), hubPongWithin)
		err := hc.ps.Ping(ctx)
		cancel()
		if err != nil {
			h.breakConn(hc, err)
		}
	}
}

// placeHomeless subscribes the channels that lost their connection, once
// the backoff allows, and returns how long to wait before looking again.
func (h *hub) placeHomeless(stop <-chan struct{}) time.Duration {
	h.mu.RLock()
	var homeless []string
	for ch, c := range h.chans {
		if c.conn == nil {
			homeless = append(homeless, ch)
		}
	}
	wait := time.Until(h.retryAt)
	h.mu.RUnlock()
	if len(homeless) == 0 {
		return hubHealthEvery
	}
	if wait > 0 {
		return wait
	}
	select {
	case <-stop:
		return hubHealthEvery
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	routes := make(map[string]route, len(homeless))
	var routeErr error
	for _, ch := range homeless {
		r, err := h.route(ctx, ch)
		if err != nil {
			routeErr = err
			continue
		}
		routes[ch] = r
	}
	var o outbox
	h.mu.Lock()
	for ch, r := range routes {
		if c := h.chans[ch]; c != nil && c.conn == nil {
			h.placeLocked(&o, c, r)
		}
	}
	if routeErr != nil {
		for ch, c := range h.chans {
			if _, ok := routes[ch]; !ok && c.conn == nil && !c.conf.confirmed() {
				c.conf.err = unavailable("subscribe", routeErr)
				close(c.conf.done)
				c.conf = newConfirmation()
			}
		}
		h.backoff = min(max(2*h.backoff, 50*time.Millisecond), hubMaxBackoff)
		h.retryAt = time.Now().Add(h.backoff)
	}
	h.mu.Unlock()
	if routeErr != nil {
		h.afterError(routeErr)
	}
	h.flush(&o)
	return 10 * time.Millisecond
}
