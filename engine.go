// Package sessioncap is a Redis session engine that caps how many live
// sessions each user may hold.
//
// Sign-in is one atomic Lua script and one round trip: it adds the new
// session, drops the user's expired ones and evicts all but the newest N, so
// no race between simultaneous sign-ins can leave a user above the cap.
// Validation is one round trip too, and an evicted device learns why: when,
// and which sign-in replaced it.
//
// Every key of a user shares one hash slot, so the same code runs on a single
// Redis, behind Sentinel, and on Redis Cluster through redis.UniversalClient.
package sessioncap

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed lua/lib.lua
	luaLib string
	//go:embed lua/login.lua
	luaLogin string
	//go:embed lua/validate.lua
	luaValidate string
	//go:embed lua/save.lua
	luaSave string
	//go:embed lua/rotate.lua
	luaRotate string
	//go:embed lua/end.lua
	luaEnd string
	//go:embed lua/list.lua
	luaList string
)

// The scripts, compiled once. Each is the shared prelude followed by its own
// body, so helpers like pruning live in one place; validate, the hot path,
// stands alone.
var (
	scriptLogin    = redis.NewScript(luaLib + luaLogin)
	scriptValidate = redis.NewScript(luaValidate) // the hot path: no prelude
	scriptSave     = redis.NewScript(luaLib + luaSave)
	scriptRotate   = redis.NewScript(luaLib + luaRotate)
	scriptEnd      = redis.NewScript(luaLib + luaEnd)
	scriptList     = redis.NewScript(luaLib + luaList)
)

// Engine stores and caps sessions in Redis. It is safe for concurrent use.
type Engine struct {
	rdb redis.UniversalClient
	cfg Config

	// touched lets Validate skip the script when no touch is due.
	touched *touchCache

	// clock anchors time on Redis; nil when Config.Now was given.
	clock *redisClock

	// Arguments 2..7 of every script, formatted once.
	idleArg, histLimitArg, histTTLArg, pubArg, tombTTLArg, touchArg string
}

// Meta describes a new session. IP and UserAgent are stored for the devices
// list and eviction messages; longer values are cut to 64 and 512 bytes.
// Values are the session's initial app data (64 KiB at most, encoded).
type Meta struct {
	IP        string
	UserAgent string
	Values    map[string]string
	// Token, when set, is the new session's token, made beforehand by
	// Engine.NewToken for this user. A Login that failed with
	// ErrUnavailable may have run anyway (the reply was lost, or the
	// deadline passed after the script ran); calling Login again with the
	// same Token then finds the session the first call created instead of
	// creating, and evicting for, another. The retried call reports no
	// evictions: they were made, once, by the first. Empty: Login draws a
	// fresh token.
	Token string
}

// NewToken draws a token for a session of userID that does not exist yet,
// to pass as Meta.Token so that Login can be retried safely. It does no
// I/O; the token becomes valid only when a Login with it succeeds.
func (e *Engine) NewToken(userID string) (string, error) {
	if err := checkUserID(userID); err != nil {
		return "", err
	}
	t, err := newToken(userDigest(userID))
	if err != nil {
		return "", err
	}
	return t.String(), nil
}

// LoginResult is what Login returns.
type LoginResult struct {
	// Token is the secret bearer token, for a cookie or an Authorization
	// header. It is 87 URL-safe characters and is never stored in Redis.
	Token string
	// SessionID is the session's public ID (a UUID), safe to show and log.
	SessionID string
	// Evicted lists the public IDs of the sessions this login signed out.
	Evicted []string
	// Session is the new session, as Validate would return it.
	Session *Session
}

// Session is a live session. It never holds the token.
type Session struct {
	ID         string // public session ID (UUID)
	UserID     string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time // when it ends if not used again: min(last seen + idle, absolute)
	AbsoluteAt time.Time // when it ends however active
	IP         string
	UserAgent  string
	// Values are the app's data. Change them and call Engine.Save.
	Values map[string]string

	keys      userKeys
	sid       [sidLen]byte
	prefixLen int
	valuesRaw string
}

// New returns an Engine that uses client, which may be a *redis.Client, a
// Sentinel-backed failover client or a *redis.ClusterClient. It validates cfg
// and fills its defaults; it does no I/O.
func New(client redis.UniversalClient, cfg Config) (*Engine, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil redis client", ErrInvalidConfig)
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &Engine{rdb: client, cfg: c, touched: newTouchCache(c.TouchCacheSize)}
	if cfg.Now == nil {
		e.clock = newRedisClock(client, c.ClockSync)
	}
	if readsFromReplicas(client) {
		// HGET is a read-only command, which such a client may send to a
		// replica, and a replica can lag a logout or an eviction. Scripts
		// always run on the master, so Validate keeps to the script.
		e.touched = nil
	}
	idle := int64(0)
	if c.IdleTimeout > 0 {
		idle = c.IdleTimeout.Milliseconds()
	}
	e.idleArg = strconv.FormatInt(idle, 10)
	e.histLimitArg = strconv.Itoa(c.HistoryLimit)
	e.histTTLArg = strconv.FormatInt(c.HistoryTTL.Milliseconds(), 10)
	switch c.Events {
	case EventsPubSub:
		e.pubArg = "PUBLISH"
	case EventsSharded:
		e.pubArg = "SPUBLISH"
	}
	e.tombTTLArg = strconv.FormatInt(c.TombstoneTTL.Milliseconds(), 10)
	e.touchArg = strconv.FormatInt(c.TouchInterval.Milliseconds(), 10)
	return e, nil
}

// readsFromReplicas reports whether client may route read-only commands to
// replicas (a Cluster client, or a Sentinel one made by
// NewFailoverClusterClient, with ReadOnly, RouteByLatency or RouteRandomly).
func readsFromReplicas(client redis.UniversalClient) bool {
	cc, ok := client.(*redis.ClusterClient)
	if !ok {
		return false
	}
	o := cc.Options()
	return o.ReadOnly || o.RouteByLatency || o.RouteRandomly
}

// Config returns the engine's configuration with defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

// nowMS is the time every decision uses, in ms: Redis's clock (see
// clock.go), or Config.Now when the caller set one.
func (e *Engine) nowMS(ctx context.Context) int64 {
	if e.clock != nil {
		return e.clock.nowMS(ctx)
	}
	return e.cfg.Now().UnixMilli()
}

// args builds the ARGV common to every script, followed by extra.
func (e *Engine) args(now int64, k userKeys, extra ...any) []any {
	a := make([]any, 0, 7+len(extra))
	a = append(a, ms13(now), e.idleArg, e.histLimitArg, e.histTTLArg, e.pubArg, k.channel, e.tombTTLArg)
	return append(a, extra...)
}

// run executes a script with EVALSHA, falling back to EVAL when the server
// lost its script cache (restart, failover, SCRIPT FLUSH). This is what
// redis.Script.Run does; it is spelt out so the retry can be observed.
func (e *Engine) run(ctx context.Context, op Op, s *redis.Script, k userKeys, args []any) ([]any, error) {
	return e.runOn(ctx, e.rdb, op, s, k, args)
}

func (e *Engine) runOn(ctx context.Context, c redis.Scripter, op Op, s *redis.Script, k userKeys, args []any) ([]any, error) {
	keys := k.list()
	v, err := s.EvalSha(ctx, c, keys, args...).Result()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		e.observe(Observation{Op: op, Outcome: OutcomeScriptRetry})
		v, err = s.Eval(ctx, c, keys, args...).Result()
	}
	e.afterError(err)
	return scriptReply(op, v, err)
}

// afterError makes a cluster client re-read its slot map after a failure
// that was not a Redis reply: a refused or reset connection, a timeout.
// go-redis reloads it on MOVED and ASK, but a master killed outright never
// answers either, so without this the users of its slots would keep failing
// until the periodic reload, long after a replica took over. The reload is
// lazy and coalesced, so a burst of failures costs one CLUSTER SLOTS.
func (e *Engine) afterError(err error) {
	if err == nil {
		return
	}
	cc, ok := e.rdb.(*redis.ClusterClient)
	if !ok {
		return
	}
	var reply redis.Error
	if errors.As(err, &reply) && !redis.HasErrorPrefix(err, "CLUSTERDOWN") {
		return
	}
	cc.ReloadState(context.Background())
}

// scriptReply checks the shape every script reply shares: a non-empty
// array that starts with an integer status.
func scriptReply(op Op, v any, err error) ([]any, error) {
	if err != nil {
		return nil, unavailable(string(op), err)
	}
	reply, ok := v.([]any)
	if !ok || len(reply) == 0 {
		return nil, unavailable(string(op), fmt.Errorf("unexpected script reply %T", v))
	}
	if _, ok := reply[0].(int64); !ok {
		return nil, unavailable(string(op), fmt.Errorf("unexpected script status %T", reply[0]))
	}
	return reply, nil
}

// validateCall is everything one Validate sends, in two allocations: one
// string holding every key name and per-call value (and the session's
// public ID, for the result), and the command's argument list, whose
// entries share the string headers stored here (see boxed). This is what
// keeps Validate's allocations close to a plain GET's.
type validateCall struct {
	argv  [3 + 1 + 5]any
	keys  userKeys
	now13 string
	sid   string
	dig   string
	id    string // public session ID
}

// validateSHA is the script's SHA-1, boxed once.
var validateSHA any = scriptValidate.Hash()

// validated is a Validate's Session and its call in one allocation; the
// call's few hundred bytes live as long as the Session does.
type validated struct {
	Session
	call validateCall
}

// fill builds the call's strings into c.
func (c *validateCall) fill(e *Engine, t token, now int64) {
	var b [keysBufLen + tsLen + sidLen + digestLen + 36]byte
	buf := appendKeys(b[:0], e.cfg.KeyPrefix, t.user)
	buf = appendMS13(buf, min(max(now, 0), maxTimestamp))
	buf = append(buf, t.sid[:]...)
	dig := sha256.Sum256(t.secret[:])
	buf = append(buf, dig[:digestLen]...)
	if t.sid != zeroSID {
		buf = appendPublicID(buf, t.sid)
	}
	var rest string
	c.keys, rest = keysIn(string(buf), e.cfg.KeyPrefix)
	c.now13, rest = rest[:tsLen], rest[tsLen:]
	c.sid, rest = rest[:sidLen], rest[sidLen:]
	c.dig, c.id = rest[:digestLen], rest[digestLen:]
}

// script is the EVALSHA of validate.lua, which takes one key and five
// arguments, not the common two and seven.
func (c *validateCall) script(e *Engine) []any {
	c.argv = [...]any{"evalsha", validateSHA, "1",
		boxed(&c.keys.data),
		boxed(&c.now13), boxed(&e.idleArg), boxed(&e.touchArg), boxed(&c.sid), boxed(&c.dig)}
	return c.argv[:]
}

// read is the plain HGET of the record, for when no touch is due.
func (c *validateCall) read() []any {
	c.argv[0], c.argv[1], c.argv[2] = "hget", boxed(&c.keys.data), boxed(&c.sid)
	return c.argv[:3]
}

// boxed returns *p as an interface value that shares p's string header,
// where any(*p) would copy the header into an allocation of its own: eight
// allocations per Validate. The result is an ordinary string in an
// interface (hooks and go-redis see a string); *p must never change
// afterwards, which holds for the call's fields and the Engine's
// formatted constants.
func boxed(p *string) any {
	a := any("")
	(*[2]unsafe.Pointer)(unsafe.Pointer(&a))[1] = unsafe.Pointer(p)
	return a
}

// evalArgv is runOn for a prebuilt EVALSHA argument list (see
// validateCall), with the same EVAL fallback. It returns the raw reply.
func (e *Engine) evalArgv(ctx context.Context, op Op, s *redis.Script, argv []any) (any, error) {
	cmd := redis.NewCmd(ctx, argv...)
	cmd.SetFirstKeyPos(3)
	_ = e.rdb.Process(ctx, cmd)
	v, err := cmd.Result()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		e.observe(Observation{Op: op, Outcome: OutcomeScriptRetry})
		numKeys, _ := strconv.Atoi(argv[2].(string))
		keys := make([]string, numKeys)
		for i := range keys {
			keys[i] = argv[3+i].(string)
		}
		v, err = s.Eval(ctx, e.rdb, keys, argv[3+len(keys):]...).Result()
	}
	e.afterError(err)
	return v, err
}

func status(reply []any) int64 { return reply[0].(int64) }

func replyString(op string, reply []any, i int) (string, error) {
	if i >= len(reply) {
		return "", unavailable(op, fmt.Errorf("script reply too short: %d items", len(reply)))
	}
	s, ok := reply[i].(string)
	if !ok {
		return "", unavailable(op, fmt.Errorf("script reply item %d is %T, want string", i, reply[i]))
	}
	return s, nil
}

func checkUserID(userID string) error {
	if userID == "" || len(userID) > maxUserIDLen {
		return ErrInvalidUserID
	}
	return nil
}

// clip shortens s to at most n bytes without splitting a UTF-8 sequence.
// Bytes that are not UTF-8 are kept as they are (a User-Agent header may
// hold anything) and may be cut anywhere; clip never indexes before the
// start of s, whatever the bytes.
func clip(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	// s[n] is the first byte dropped. If it continues a sequence that
	// starts at most UTFMax-1 bytes earlier, cut before that start.
	cut := n
	for i := 1; i < utf8.UTFMax && cut > 0 && !utf8.RuneStart(s[cut]); i++ {
		cut--
	}
	if !utf8.RuneStart(s[cut]) {
		cut = n // not part of a sequence: invalid bytes, cut at n
	}
	return s[:cut]
}

// limitFor asks the Limiter, if any, for the user's cap.
func (e *Engine) limitFor(ctx context.Context, userID string) (int, error) {
	if e.cfg.Limiter == nil {
		return e.cfg.MaxSessions, nil
	}
	n, err := e.cfg.Limiter.Limit(ctx, userID)
	if err != nil {
		return 0, &limiterError{cause: err}
	}
	switch {
	case n == 0:
		return e.cfg.MaxSessions, nil
	case n < 0 && n != Unlimited:
		return 0, fmt.Errorf("%w: limiter returned %d for a user", ErrInvalidConfig, n)
	}
	return n, nil
}

// Login creates a session for userID and enforces the user's cap in the same
// atomic step: one script call, one round trip. Under EvictOldest the oldest
// sessions above the cap are signed out and listed in the result; under
// RejectNew a full cap returns a *LimitError.
func (e *Engine) Login(ctx context.Context, userID string, meta Meta) (res *LoginResult, err error) {
	ctx, call := e.begin(ctx, OpLogin)
	defer func() { call.end(err, evictedCount(res)) }()
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	values, err := encodeValues(meta.Values)
	if err != nil {
		return nil, err
	}
	limit, err := e.limitFor(ctx, userID)
	if err != nil {
		return nil, err
	}
	digest := userDigest(userID)
	k := keysFor(e.cfg.KeyPrefix, digest)
	var tok token
	if meta.Token != "" {
		// A token from NewToken: a resend of this Login finds the session
		// its first attempt created (the script probes for the session ID)
		// instead of creating, and evicting for, another.
		if tok, err = parseToken(meta.Token); err != nil || tok.user != digest {
			return nil, ErrInvalidToken
		}
	} else if tok, err = newToken(digest); err != nil {
		return nil, err
	}
	now := e.nowMS(ctx)
	abs := now + e.cfg.AbsoluteTimeout.Milliseconds()
	ip, ua := clip(meta.IP, maxIPLen), clip(meta.UserAgent, maxUALen)
	m := encodeMeta(ip, ua, userID)
	if len(m) > maxMetaLen {
		return nil, fmt.Errorf("%w: metadata too large", ErrInvalidInput)
	}
	rec := liveRecord(tok.secretDigest(), now, abs, m, values)
	sid := string(tok.sid[:])
	now13 := ms13(now)
	tail := now13 + sid + m
	entry := string(rune(codeLogin)) + now13 + sid + string(zeroSID[:]) + m
	reject := "0"
	if e.cfg.Overflow == RejectNew {
		reject = "1"
	}
	exp := e.expiry(now, abs)
	reply, err := e.run(ctx, OpLogin, scriptLogin, k,
		e.args(now, k, sid, rec, strconv.Itoa(limit), reject, tail, entry, ms13(exp)))
	if err != nil {
		return nil, err
	}
	if status(reply) == -1 {
		sessions, err := e.parseList(string(OpLogin), reply, k)
		if err != nil {
			return nil, err
		}
		return nil, &LimitError{UserID: userID, Limit: limit, Sessions: sessions}
	}
	if status(reply) != 1 {
		return nil, unavailable(string(OpLogin), fmt.Errorf("unexpected login status %d", status(reply)))
	}
	res = &LoginResult{Token: tok.String(), SessionID: publicID(tok.sid)}
	for i := 1; i < len(reply); i++ {
		s, err := replyString(string(OpLogin), reply, i)
		if err != nil || len(s) != sidLen {
			return nil, unavailable(string(OpLogin), fmt.Errorf("bad evicted session ID in reply"))
		}
		res.Evicted = append(res.Evicted, publicID([sidLen]byte([]byte(s))))
	}
	sess, err := e.session(rec, tok.sid, k)
	if err != nil {
		return nil, unavailable(string(OpLogin), err)
	}
	res.Session = sess
	e.touched.put(&tok.sid, now)
	e.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "sessioncap login", slog.String("user", userID),
		slog.String("session", res.SessionID), slog.Any("evicted", res.Evicted), slog.Int("limit", limit))
	return res, nil
}

// session builds a Session from a live record.
func (e *Engine) session(rec string, sid [sidLen]byte, k userKeys) (*Session, error) {
	s := new(Session)
	if err := e.fillSession(s, rec, sid, publicID(sid), k); err != nil {
		return nil, err
	}
	return s, nil
}

// expiry is when a session last seen at last, with absolute expiry abs,
// stops being valid, in ms: expiry(r) in lib.lua.
func (e *Engine) expiry(last, abs int64) int64 {
	if e.cfg.IdleTimeout > 0 {
		return min(abs, last+e.cfg.IdleTimeout.Milliseconds())
	}
	return abs
}

// fillSession is session into a given Session, with the public ID already
// formatted, so Validate can allocate the Session with its call.
func (e *Engine) fillSession(s *Session, rec string, sid [sidLen]byte, id string, k userKeys) error {
	p, err := parseRecord(rec)
	if err != nil {
		return err
	}
	if !p.live {
		return errBadRecord
	}
	exp := e.expiry(p.last, p.abs)
	*s = Session{
		ID:         id,
		UserID:     p.userID,
		CreatedAt:  fromMS(p.created),
		LastSeenAt: fromMS(p.last),
		ExpiresAt:  fromMS(exp),
		AbsoluteAt: fromMS(p.abs),
		IP:         p.ip,
		UserAgent:  p.ua,
		Values:     p.values,
		keys:       k,
		sid:        sid,
		prefixLen:  p.prefixLen,
		valuesRaw:  p.valuesRaw,
	}
	return nil
}

// ended interprets the status codes the token-checked scripts share:
// 0 unknown or expired, 2 a tombstone (evicted or revoked).
func (e *Engine) ended(ctx context.Context, op Op, reply []any, sid [sidLen]byte) error {
	switch status(reply) {
	case 0, 3:
		return ErrExpired
	case 2:
		r, err := replyString(string(op), reply, 1)
		if err != nil {
			return err
		}
		p, err := parseRecord(r)
		if err != nil || p.live {
			return unavailable(string(op), errBadRecord)
		}
		// A tombstone past its TTL that nobody pruned yet reads as expired.
		if e.nowMS(ctx) >= p.at+e.cfg.TombstoneTTL.Milliseconds() {
			return ErrExpired
		}
		return endingError(p, sid)
	}
	return unavailable(string(op), fmt.Errorf("unexpected status %d", status(reply)))
}

// Validate returns the live session a token belongs to, in one round trip
// and one command: a plain HGET of the record while the engine's touch cache
// proves that no idle refresh is due, otherwise one script call that also
// slides the idle timeout (at most once per TouchInterval). Both read the
// master, never a replica. Errors: ErrInvalidToken (no Redis call made), ErrExpired,
// ErrEvicted (*EvictedError), ErrRevoked (*RevokedError), ErrUnavailable.
func (e *Engine) Validate(ctx context.Context, tokenStr string) (s *Session, err error) {
	ctx, call := e.begin(ctx, OpValidate)
	defer func() { call.end(err, 0) }()
	t, err := parseToken(tokenStr)
	if err != nil {
		return nil, err
	}
	v := new(validated)
	c := &v.call
	now := e.nowMS(ctx)
	c.fill(e, t, now)
	if seen, ok := e.touched.get(&t.sid); ok && now-seen < e.cfg.TouchInterval.Milliseconds() {
		return e.validateRead(ctx, v, t, now)
	}
	raw, err := e.evalArgv(ctx, OpValidate, scriptValidate, c.script(e))
	// A live session comes back as its bare record (see validate.lua), one
	// string where an array would cost the reader two more allocations.
	r, live := raw.(string)
	if err != nil || !live {
		reply, err := scriptReply(OpValidate, raw, err)
		if err != nil {
			return nil, err
		}
		return nil, e.ended(ctx, OpValidate, reply, t.sid)
	}
	if err := e.fillSession(&v.Session, r, t.sid, c.id, c.keys); err != nil {
		return nil, unavailable(string(OpValidate), err)
	}
	e.touched.put(&t.sid, v.Session.LastSeenAt.UnixMilli())
	return &v.Session, nil
}

// validateRead is Validate when the touch cache vouches that no touch is
// due: one HGET, and in Go the checks validate.lua makes in Lua. A touch
// can only be due later than the cache says (see touchCache), so this path
// never has to write.
func (e *Engine) validateRead(ctx context.Context, v *validated, t token, now int64) (*Session, error) {
	c := &v.call
	cmd := redis.NewCmd(ctx, c.read()...)
	cmd.SetFirstKeyPos(1)
	_ = e.rdb.Process(ctx, cmd)
	raw, err := cmd.Result()
	e.afterError(err)
	if errors.Is(err, redis.Nil) {
		return nil, ErrExpired
	}
	if err != nil {
		return nil, unavailable(string(OpValidate), err)
	}
	r, ok := raw.(string)
	if !ok {
		return nil, unavailable(string(OpValidate), fmt.Errorf("HGET replied %T, want a string", raw))
	}
	if len(r) < tombMeta {
		return nil, unavailable(string(OpValidate), errBadRecord)
	}
	if r[1:1+digestLen] != c.dig {
		return nil, ErrExpired // another token's session, or none
	}
	if r[0] != kindLive {
		return nil, e.ended(ctx, OpValidate, []any{int64(2), r}, t.sid)
	}
	if err := e.fillSession(&v.Session, r, t.sid, c.id, c.keys); err != nil {
		return nil, unavailable(string(OpValidate), err)
	}
	if v.Session.ExpiresAt.UnixMilli() <= now {
		return nil, ErrExpired
	}
	return &v.Session, nil
}

// Save writes s.Values back to its session. It never revives a session that
// was evicted, revoked or expired meanwhile: that returns the same error
// Validate would. Concurrent Saves of one session are last-writer-wins; use
// Update to read, change and write without losing a concurrent change.
func (e *Engine) Save(ctx context.Context, s *Session) (err error) {
	ctx, call := e.begin(ctx, OpSave)
	defer func() { call.end(err, 0) }()
	return e.save(ctx, s, "")
}

func (e *Engine) save(ctx context.Context, s *Session, expect string) error {
	if s == nil || s.sid == zeroSID || s.prefixLen < headerLen {
		return fmt.Errorf("%w: session did not come from this engine", ErrInvalidInput)
	}
	values, err := encodeValues(s.Values)
	if err != nil {
		return err
	}
	reply, err := e.run(ctx, OpSave, scriptSave, s.keys,
		e.args(e.nowMS(ctx), s.keys, string(s.sid[:]), strconv.Itoa(s.prefixLen), values, expect))
	if err != nil {
		return err
	}
	switch status(reply) {
	case 1:
		s.valuesRaw = values
		return nil
	case 4:
		return ErrConflict
	}
	return e.ended(ctx, OpSave, reply, s.sid)
}

// Update reads the session behind token, lets fn change its values and writes
// them back only if nobody changed them in between, retrying up to
// Config.UpdateAttempts times (then ErrConflict). An error from fn aborts
// without writing and is returned as is.
func (e *Engine) Update(ctx context.Context, token string, fn func(values map[string]string) error) (*Session, error) {
	for attempt := 0; attempt < e.cfg.UpdateAttempts; attempt++ {
		s, err := e.Validate(ctx, token)
		if err != nil {
			return nil, err
		}
		if err := fn(s.Values); err != nil {
			return nil, err
		}
		err = e.save(ctx, s, s.valuesRaw)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	return nil, ErrConflict
}

// Rotate gives the session behind token a new token and kills the old one at
// once, in one round trip. Call it on privilege change or re-authentication,
// so a token captured before cannot ride the upgrade.
func (e *Engine) Rotate(ctx context.Context, token string) (rotated string, err error) {
	ctx, call := e.begin(ctx, OpRotate)
	defer func() { call.end(err, 0) }()
	t, err := parseToken(token)
	if err != nil {
		return "", err
	}
	fresh, err := newToken(t.user)
	if err != nil {
		return "", err
	}
	fresh.sid = t.sid
	k := keysFor(e.cfg.KeyPrefix, t.user)
	reply, err := e.run(ctx, OpRotate, scriptRotate, k,
		e.args(e.nowMS(ctx), k, string(t.sid[:]), t.secretDigest(), fresh.secretDigest()))
	if err != nil {
		return "", err
	}
	if status(reply) != 1 {
		return "", e.ended(ctx, OpRotate, reply, t.sid)
	}
	return fresh.String(), nil
}

// endReply collects the public IDs of the sessions an end script ended.
func endReply(op Op, reply []any) ([]string, error) {
	ids := make([]string, 0, len(reply)-1)
	for i := 1; i < len(reply); i++ {
		s, err := replyString(string(op), reply, i)
		if err != nil {
			return nil, err
		}
		if len(s) != sidLen {
			return nil, unavailable(string(op), errBadRecord)
		}
		ids = append(ids, publicID([sidLen]byte([]byte(s))))
	}
	return ids, nil
}

// endByToken runs the end script in a token-checked mode.
func (e *Engine) endByToken(ctx context.Context, op Op, token, mode, otherCode string) ([]string, error) {
	t, err := parseToken(token)
	if err != nil {
		return nil, err
	}
	k := keysFor(e.cfg.KeyPrefix, t.user)
	reply, err := e.write(ctx, op, scriptEnd, k,
		e.args(e.nowMS(ctx), k, mode, string(t.sid[:]), t.secretDigest(), otherCode, "", ""))
	if err != nil {
		return nil, err
	}
	if status(reply) != 1 {
		return nil, e.ended(ctx, op, reply, t.sid)
	}
	ids, err := endReply(op, reply)
	if err == nil {
		e.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "sessioncap sessions ended", slog.String("op", string(op)),
			slog.String("by", publicID(t.sid)), slog.Any("sessions", ids))
	}
	return ids, err
}

// Logout ends the session behind token (and, with Config.LogoutEverywhere,
// every other session of the same user). A later Validate of the token
// returns a *RevokedError with ReasonLogout until the tombstone expires.
func (e *Engine) Logout(ctx context.Context, token string) (err error) {
	ctx, call := e.begin(ctx, OpLogout)
	defer func() { call.end(err, 0) }()
	others := ""
	if e.cfg.LogoutEverywhere {
		others = string(rune(codeEverywher))
	}
	_, err = e.endByToken(ctx, OpLogout, token, "s", others)
	return err
}

// LogoutOthers is "sign out all other devices": it ends every session of the
// token's user except the token's own, and returns their public IDs.
func (e *Engine) LogoutOthers(ctx context.Context, token string) (ended []string, err error) {
	ctx, call := e.begin(ctx, OpLogoutOthers)
	defer func() { call.end(err, 0) }()
	return e.endByToken(ctx, OpLogoutOthers, token, "o", string(rune(codeOthers)))
}

// endUser runs the end script for one user without a token.
func (e *Engine) endUser(ctx context.Context, op Op, userID, mode string, sid [sidLen]byte, code byte) ([]string, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	k := keysFor(e.cfg.KeyPrefix, userDigest(userID))
	now := e.nowMS(ctx)
	tail := ms13(now) + string(zeroSID[:]) + encodeMeta("", "", userID)
	reply, err := e.write(ctx, op, scriptEnd, k,
		e.args(now, k, mode, string(sid[:]), "", "", tail, string(rune(code))))
	if err != nil {
		return nil, err
	}
	ids, err := endReply(op, reply)
	if err == nil && len(ids) > 0 {
		e.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "sessioncap sessions ended", slog.String("op", string(op)),
			slog.String("user", userID), slog.Any("sessions", ids))
	}
	return ids, err
}

// Revoke ends one session of userID by its public ID, as from a "your
// devices" page or an admin console. ErrNotFound if it is not live.
func (e *Engine) Revoke(ctx context.Context, userID, sessionID string) (err error) {
	ctx, call := e.begin(ctx, OpRevoke)
	defer func() { call.end(err, 0) }()
	sid, err := parsePublicID(sessionID)
	if err != nil {
		return err
	}
	ended, err := e.endUser(ctx, OpRevoke, userID, "i", sid, codeRevoked)
	if err != nil {
		return err
	}
	if len(ended) == 0 {
		return ErrNotFound
	}
	return nil
}

// LogoutAll ends every session of each given user (admin bulk logout) and
// returns how many sessions it ended. Users are independent: each is one
// script call in that user's slot, run concurrently; the first error is
// returned after all calls finish, with the count of what did succeed.
func (e *Engine) LogoutAll(ctx context.Context, userIDs ...string) (ended int, err error) {
	ctx, call := e.begin(ctx, OpLogoutAll)
	defer func() { call.end(err, 0) }()
	for _, u := range userIDs {
		if err := checkUserID(u); err != nil {
			return 0, err
		}
	}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		firstErr error
		sem      = make(chan struct{}, 8)
	)
	for _, u := range userIDs {
		wg.Add(1)
		sem <- struct{}{}
		go func(u string) {
			defer func() { <-sem; wg.Done() }()
			ids, err := e.endUser(ctx, OpLogoutAll, u, "a", zeroSID, codeAdmin)
			mu.Lock()
			defer mu.Unlock()
			ended += len(ids)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}(u)
	}
	wg.Wait()
	return ended, firstErr
}

// Sessions lists the user's live sessions, newest first, with their
// metadata (never their tokens). Listing also drops expired sessions from
// the user's index, so the index heals without keyspace notifications.
func (e *Engine) Sessions(ctx context.Context, userID string) (list []Session, err error) {
	ctx, call := e.begin(ctx, OpSessions)
	defer func() { call.end(err, 0) }()
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	k := keysFor(e.cfg.KeyPrefix, userDigest(userID))
	reply, err := e.run(ctx, OpSessions, scriptList, k, e.args(e.nowMS(ctx), k))
	if err != nil {
		return nil, err
	}
	if status(reply) != 1 {
		return nil, unavailable(string(OpSessions), fmt.Errorf("unexpected status %d", status(reply)))
	}
	return e.parseList(string(OpSessions), reply, k)
}

// parseList reads {status, sid, record, sid, record, ...}.
func (e *Engine) parseList(op string, reply []any, k userKeys) ([]Session, error) {
	if (len(reply)-1)%2 != 0 {
		return nil, unavailable(op, fmt.Errorf("odd session list reply"))
	}
	out := make([]Session, 0, (len(reply)-1)/2)
	for i := 1; i < len(reply); i += 2 {
		sid, err := replyString(op, reply, i)
		if err != nil {
			return nil, err
		}
		rec, err := replyString(op, reply, i+1)
		if err != nil {
			return nil, err
		}
		if len(sid) != sidLen {
			return nil, unavailable(op, errBadRecord)
		}
		s, err := e.session(rec, [sidLen]byte([]byte(sid)), k)
		if err != nil {
			return nil, unavailable(op, err)
		}
		out = append(out, *s)
	}
	return out, nil
}
