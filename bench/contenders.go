package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alexedwards/scs/goredisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap"
)

// Every contender stores the same metadata per session: a unique IP, one
// realistic desktop user agent and one 200-byte app value.
const userAgent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"

var appValue = strings.Repeat("v", 200)

func userName(i int) string { return fmt.Sprintf("user-%07d@example.com", i) }

func ipFor(i int) string { return fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255) }

// workload is one row of the table: a contender doing one operation.
// prepare runs before each cell, untimed, and returns the operation the
// workers call with a global sequence number.
type workload struct {
	name    string // row label
	group   string // raw, sessioncap, scs, naive: which client the row uses
	kind    string // validate or login
	prepare func(ctx context.Context, env *env, users int) (func(ctx context.Context, i int) error, error)
}

// env is what every workload shares: one client per contender group, so a
// hook counts only that contender's traffic, and the record size the raw
// floor mimics.
type env struct {
	clients map[string]*redis.Client
	counts  map[string]*counter
	recLen  int
	seq     atomic.Int64 // distinct key prefixes across cells
}

func (e *env) prefix(s string) string { return fmt.Sprintf("%s%d", s, e.seq.Add(1)) }

// parallel runs f for i in [0, n) on up to 64 goroutines, for untimed setup.
func parallel(ctx context.Context, n int, f func(ctx context.Context, i int) error) error {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		mu   sync.Mutex
		err1 error
	)
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(ctx, i); err != nil {
					mu.Lock()
					if err1 == nil {
						err1 = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return err1
}

func sessioncapEngine(c *redis.Client, prefix string, limit int) (*sessioncap.Engine, error) {
	return sessioncap.New(c, sessioncap.Config{MaxSessions: limit, KeyPrefix: prefix})
}

func scMeta(i int) sessioncap.Meta {
	return sessioncap.Meta{IP: ipFor(i), UserAgent: userAgent, Values: map[string]string{"app": appValue}}
}

// engineOn builds an engine on the group's client: the client itself, for
// "pipelined" its blocking autopipeliner (half duplex, go-redis's default),
// and for "duplex" one in full-duplex mode, which overlaps writing the next
// commands with Redis running the previous ones: what a script-bound
// operation like a sign-in needs (bench/NOTES.md, sixth round).
func engineOn(env *env, group string, cfg sessioncap.Config) (*sessioncap.Engine, error) {
	c := env.clients[group]
	var opt *redis.AutoPipelineOptions
	switch group {
	case "pipelined":
		opt = redis.DefaultBlockingAutoPipelineOptions()
	case "duplex":
		opt = redis.DefaultBlockingAutoPipelineOptions()
		opt.FullDuplex = true
	default:
		return sessioncap.New(c, cfg)
	}
	ap, err := c.AutoPipelineWithOptions(opt)
	if err != nil {
		return nil, err
	}
	return sessioncap.New(ap, cfg)
}

// sessioncapValidate signs one session in per user, then validates them
// round-robin with an engine configured as cfg (cap 1) on the group's client.
func sessioncapValidate(group string, cfg sessioncap.Config) func(ctx context.Context, env *env, users int) (func(ctx context.Context, i int) error, error) {
	return func(ctx context.Context, env *env, users int) (func(ctx context.Context, i int) error, error) {
		cfg.MaxSessions, cfg.KeyPrefix = 1, env.prefix("scv")
		e, err := engineOn(env, group, cfg)
		if err != nil {
			return nil, err
		}
		tokens := make([]string, users)
		if err := parallel(ctx, users, func(ctx context.Context, i int) error {
			res, err := e.Login(ctx, userName(i), scMeta(i))
			if err == nil {
				tokens[i] = res.Token
			}
			return err
		}); err != nil {
			return nil, err
		}
		if cfg.CachedValidate {
			// The engine that signs a session in reads Redis for that user
			// for 100 ms after (its own writes); the cell measures the
			// steady state after that.
			time.Sleep(150 * time.Millisecond)
		}
		return func(ctx context.Context, i int) error {
			_, err := e.Validate(ctx, tokens[i%users])
			return err
		}, nil
	}
}

// sessioncapLogin signs users in round-robin after bringing each to its cap,
// so every timed login evicts exactly one session. evalOnly runs the
// scripts by EVALSHA instead of the engine's function library.
func sessioncapLogin(group string, limit int, evalOnly bool) func(ctx context.Context, env *env, users int) (func(ctx context.Context, i int) error, error) {
	return func(ctx context.Context, env *env, users int) (func(ctx context.Context, i int) error, error) {
		e, err := engineOn(env, group, sessioncap.Config{MaxSessions: limit, KeyPrefix: env.prefix("scl"), EvalOnly: evalOnly})
		if err != nil {
			return nil, err
		}
		names := make([]string, users)
		metas := make([]sessioncap.Meta, users)
		for i := range names {
			names[i], metas[i] = userName(i), scMeta(i)
		}
		if err := parallel(ctx, users*limit, func(ctx context.Context, i int) error {
			_, err := e.Login(ctx, names[i%users], metas[i%users])
			return err
		}); err != nil {
			return nil, err
		}
		return func(ctx context.Context, i int) error {
			res, err := e.Login(ctx, names[i%users], metas[i%users])
			if err == nil && len(res.Evicted) != 1 {
				// Two workers on one user can race; count only the surprise.
				evictMiss.Add(1)
			}
			return err
		}, nil
	}
}

// evictMiss counts timed logins that did not evict exactly one session.
var evictMiss atomic.Int64

var workloads = []workload{
	{name: "raw GET (floor)", group: "raw", kind: "validate", prepare: func(ctx context.Context, env *env, users int) (func(ctx context.Context, i int) error, error) {
		c := env.clients["raw"]
		p := env.prefix("raw")
		rec := strings.Repeat("r", env.recLen)
		keys := make([]string, users)
		for i := range keys {
			keys[i] = fmt.Sprintf("%s:%d", p, i)
		}
		if err := parallel(ctx, users, func(ctx context.Context, i int) error {
			return c.Set(ctx, keys[i], rec, 24*time.Hour).Err()
		}); err != nil {
			return nil, err
		}
		return func(ctx context.Context, i int) error {
			v, err := c.Get(ctx, keys[i%users]).Result()
			if err == nil && len(v) != len(rec) {
				err = errors.New("raw: short value")
			}
			return err
		}, nil
	}},
	{name: "raw HGET (floor)", group: "raw", kind: "validate", prepare: func(ctx context.Context, env *env, users int) (func(ctx context.Context, i int) error, error) {
		c := env.clients["raw"]
		p := env.prefix("rawh")
		rec := strings.Repeat("r", env.recLen)
		keys := make([]string, users)
		fields := make([]string, users)
		for i := range keys {
			keys[i] = fmt.Sprintf("%s:{%022d}:d", p, i)
			fields[i] = fmt.Sprintf("%016d", i)
		}
		if err := parallel(ctx, users, func(ctx context.Context, i int) error {
			return c.HSet(ctx, keys[i], fields[i], rec, "j", "0123456789012345678901234").Err()
		}); err != nil {
			return nil, err
		}
		return func(ctx context.Context, i int) error {
			v, err := c.HGet(ctx, keys[i%users], fields[i%users]).Result()
			if err == nil && len(v) != len(rec) {
				err = errors.New("raw: short value")
			}
			return err
		}, nil
	}},
	{name: "sessioncap Validate", group: "sessioncap", kind: "validate", prepare: sessioncapValidate("sessioncap", sessioncap.Config{})},
	// The same with the touch cache off: every call runs the validate
	// script, which is what an engine that has not yet seen a session, or a
	// call with a refresh due, pays.
	{name: "sessioncap Validate, script", group: "sessioncap", kind: "validate", prepare: sessioncapValidate("sessioncap", sessioncap.Config{TouchCacheSize: sessioncap.NoTouchCache})},
	// Config.CachedValidate on a RESP3 client with go-redis's client-side
	// cache: warm Validates are answered locally.
	{name: "sessioncap Validate, cached", group: "cached", kind: "validate", prepare: sessioncapValidate("cached", sessioncap.Config{CachedValidate: true})},
	// The strict Validate on go-redis's half-duplex autopipeliner.
	{name: "sessioncap Validate, autopipelined", group: "pipelined", kind: "validate", prepare: sessioncapValidate("pipelined", sessioncap.Config{})},
	// The same on the full-duplex autopipeliner.
	{name: "sessioncap Validate, autopipelined, full duplex", group: "duplex", kind: "validate", prepare: sessioncapValidate("duplex", sessioncap.Config{})},
	{name: "scs Load", group: "scs", kind: "validate", prepare: func(ctx context.Context, env *env, users int) (func(ctx context.Context, i int) error, error) {
		sm := scsManager(env.clients["scs"], env.prefix("scs"))
		tokens := make([]string, users)
		if err := parallel(ctx, users, func(ctx context.Context, i int) error {
			t, err := scsLogin(ctx, sm, i)
			tokens[i] = t
			return err
		}); err != nil {
			return nil, err
		}
		return func(ctx context.Context, i int) error {
			c, err := sm.Load(ctx, tokens[i%users])
			if err == nil && sm.GetString(c, "user") == "" {
				err = errors.New("scs: session not found")
			}
			return err
		}, nil
	}},
	{name: "naive Validate", group: "naive", kind: "validate", prepare: func(ctx context.Context, env *env, users int) (func(ctx context.Context, i int) error, error) {
		n := &naive{c: env.clients["naive"], p: env.prefix("nv")}
		keys := make([]string, users)
		if err := parallel(ctx, users, func(ctx context.Context, i int) error {
			k, err := n.login(ctx, i)
			keys[i] = k
			return err
		}); err != nil {
			return nil, err
		}
		return func(ctx context.Context, i int) error {
			return n.validate(ctx, keys[i%users])
		}, nil
	}},
	{name: "raw SET (floor)", group: "raw", kind: "login", prepare: func(ctx context.Context, env *env, users int) (func(ctx context.Context, i int) error, error) {
		c := env.clients["raw"]
		p := env.prefix("raws")
		rec := strings.Repeat("r", env.recLen)
		return func(ctx context.Context, i int) error {
			return c.Set(ctx, fmt.Sprintf("%s:%d", p, i%users), rec, 24*time.Hour).Err()
		}, nil
	}},
	// The evicting sign-in's commands in one function, without its logic.
	{name: "sign-in floor: FCALL of its commands", group: "raw", kind: "login", prepare: signinFloor},
	{name: "sessioncap Login cap 1", group: "sessioncap", kind: "login", prepare: sessioncapLogin("sessioncap", 1, false)},
	{name: "sessioncap Login cap 3", group: "sessioncap", kind: "login", prepare: sessioncapLogin("sessioncap", 3, false)},
	// The same sign-in with Config.EvalOnly: the scripts by EVALSHA, not
	// as the function library, to show what the library buys.
	{name: "sessioncap Login cap 1, EVAL", group: "sessioncap", kind: "login", prepare: sessioncapLogin("sessioncap", 1, true)},
	{name: "sessioncap Login cap 1, autopipelined", group: "pipelined", kind: "login", prepare: sessioncapLogin("pipelined", 1, false)},
	{name: "sessioncap Login cap 1, autopipelined, full duplex", group: "duplex", kind: "login", prepare: sessioncapLogin("duplex", 1, false)},
	{name: "scs Login", group: "scs", kind: "login", prepare: func(ctx context.Context, env *env, users int) (func(ctx context.Context, i int) error, error) {
		sm := scsManager(env.clients["scs"], env.prefix("scs"))
		return func(ctx context.Context, i int) error {
			_, err := scsLogin(ctx, sm, i%users)
			return err
		}, nil
	}},
	{name: "naive Login", group: "naive", kind: "login", prepare: func(ctx context.Context, env *env, users int) (func(ctx context.Context, i int) error, error) {
		n := &naive{c: env.clients["naive"], p: env.prefix("nl")}
		if err := parallel(ctx, users, func(ctx context.Context, i int) error {
			_, err := n.login(ctx, i)
			return err
		}); err != nil {
			return nil, err
		}
		return func(ctx context.Context, i int) error {
			_, err := n.login(ctx, i%users)
			return err
		}, nil
	}},
}

// scsManager is scs with its go-redis store, 24-hour lifetime and no idle
// timeout: with one, every Load would also rewrite the session (a SET per
// request), so this is scs's cheapest read path.
func scsManager(c *redis.Client, prefix string) *scs.SessionManager {
	sm := scs.New()
	sm.Store = goredisstore.NewWithPrefix(c, prefix+":")
	sm.Lifetime = 24 * time.Hour
	return sm
}

// scsLogin is scs's documented sign-in: a fresh session, RenewToken against
// fixation, the user and metadata put in, Commit (one SET with PX).
func scsLogin(ctx context.Context, sm *scs.SessionManager, i int) (string, error) {
	c, err := sm.Load(ctx, "")
	if err != nil {
		return "", err
	}
	if err := sm.RenewToken(c); err != nil {
		return "", err
	}
	sm.Put(c, "user", userName(i))
	sm.Put(c, "ip", ipFor(i))
	sm.Put(c, "ua", userAgent)
	sm.Put(c, "app", appValue)
	tok, _, err := sm.Commit(c)
	return tok, err
}

// naive ports the Django recipe (one-session-per-user middleware and its
// LoggedInUser table) to Redis, one ORM call per Redis call:
//
//	login:   GET user->session key; DEL the old session; SET the new session;
//	         SET the pointer
//	request: GET the session; GET the pointer; compare
//
// Django's default session serializer is JSON, so the session is JSON.
type naive struct {
	c *redis.Client
	p string
}

type naiveSession struct {
	User string `json:"_auth_user_id"`
	IP   string `json:"ip"`
	UA   string `json:"ua"`
	App  string `json:"app"`
}

func (n *naive) login(ctx context.Context, i int) (string, error) {
	user := userName(i)
	ptr := n.p + ":u:" + user
	old, err := n.c.Get(ctx, ptr).Result()
	switch {
	case err == redis.Nil:
	case err != nil:
		return "", err
	default:
		if err := n.c.Del(ctx, n.p+":s:"+old).Err(); err != nil {
			return "", err
		}
	}
	key := sessionKey()
	data, err := json.Marshal(naiveSession{User: user, IP: ipFor(i), UA: userAgent, App: appValue})
	if err != nil {
		return "", err
	}
	if err := n.c.Set(ctx, n.p+":s:"+key, data, 24*time.Hour).Err(); err != nil {
		return "", err
	}
	return key, n.c.Set(ctx, ptr, key, 24*time.Hour).Err()
}

var errNaiveLoggedOut = errors.New("naive: session replaced")

func (n *naive) validate(ctx context.Context, key string) error {
	b, err := n.c.Get(ctx, n.p+":s:"+key).Bytes()
	if err != nil {
		return err
	}
	var s naiveSession
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	cur, err := n.c.Get(ctx, n.p+":u:"+s.User).Result()
	if err != nil {
		return err
	}
	if cur != key {
		return errNaiveLoggedOut
	}
	return nil
}

// sessionKey is a Django-style session key: 32 characters of [a-z0-9].
func sessionKey() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [32]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}
