package sessioncap

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The fault workload: workers log in, validate and log out for a set of
// users while a test breaks Redis underneath, and every answer is checked
// against a model of what each user's sessions must be.
//
// Each user belongs to exactly one worker, so the model of a user is exact:
// its operations are sequential. An operation that fails with ErrUnavailable
// may or may not have happened in Redis; the worker then re-reads the user's
// live sessions (Sessions) before doing anything else for that user, so
// uncertainty never accumulates.
//
// The model only trusts acknowledged answers:
//   - a session that a successful Login listed as evicted, or whose Logout
//     returned nil, must never validate again. If an evicted one does, it is
//     a wrong answer unless the login that evicted it was itself lost by the
//     failover (its own token no longer validates): asynchronous replication
//     can lose the newest writes, and that is reported, not hidden.
//   - with WaitReplicas set, a Logout that returned nil was on a replica
//     before it returned, so its session coming back is always wrong.

type sessState int

const (
	stLive    sessState = iota
	stEvicted           // listed as evicted by a successful Login
	stRevoked           // Logout returned nil (replicated when WaitReplicas > 0)
	stRevokedUnreplicated
	stGone // absent from a resync: ended by an operation whose answer was lost
)

type wSession struct {
	id, token string
	state     sessState
	by        *wSession // the login that evicted it
}

type wUser struct {
	id    string
	live  []*wSession // oldest first; sessions without a token came from a lost answer
	all   []*wSession // every session we hold a token for
	dirty bool
}

// opFailure is one operation that returned an error meaning "Redis did not
// answer" (ErrUnavailable, or ErrNotReplicated for endings).
type opFailure struct {
	at, start time.Time
	op        string
	err       error
}

type workload struct {
	t       testing.TB
	e       *Engine
	users   []*wUser
	workers int
	cap     func(user string) int
	timeout time.Duration // per-operation context deadline

	ops, okOps   atomic.Int64
	mu           sync.Mutex
	failures     []opFailure
	unreplicated int      // logouts that returned ErrNotReplicated
	wrong        []string // wrong answers: the test fails on any
	anomalies    []string // answers explained by retried or lost writes, by kind below
	kinds        map[string]int
	suspects     [][2]*wSession
	untyped      []error
}

func newWorkload(t testing.TB, e *Engine, prefix string, users, workers int, capFor func(string) int) *workload {
	w := &workload{t: t, e: e, workers: workers, cap: capFor, timeout: 2 * time.Second, kinds: map[string]int{}}
	for i := 0; i < users; i++ {
		w.users = append(w.users, &wUser{id: fmt.Sprintf("%s-user-%d", prefix, i)})
	}
	return w
}

func (w *workload) wrongf(format string, args ...any) {
	w.mu.Lock()
	w.wrong = append(w.wrong, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
	w.mu.Unlock()
}

// Anomaly kinds: answers that disagree with the model for a reason outside
// the engine's answer itself.
const (
	// A write ran twice: go-redis retries a command after io.EOF, so when
	// a server executed a script and died (or the connection reset) before
	// replying, the retry runs it again. The scripts are idempotent under
	// such a retry, but a retried Login reports none of the evictions its
	// first run made, so the model can miss one.
	anRetried = "retried write"
	// An acknowledged write was lost: a new session is gone (ErrExpired).
	anVanished = "vanished"
	// An acknowledged ending was lost: an ended session is live again.
	anRevived = "revived"
)

func (w *workload) anomalyf(kind, format string, args ...any) {
	w.mu.Lock()
	w.anomalies = append(w.anomalies, kind+": "+fmt.Sprintf(format, args...))
	w.kinds[kind]++
	w.mu.Unlock()
}

// failed records an error that is not a domain answer, and notes it if it
// is not typed as the package promises.
func (w *workload) failed(op string, start time.Time, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failures = append(w.failures, opFailure{at: time.Now(), start: start, op: op, err: err})
	if !typedUnavailable(err) && !errors.Is(err, ErrNotReplicated) {
		w.untyped = append(w.untyped, err)
	}
}

// typedUnavailable checks the promise about Redis failures: the error matches
// ErrUnavailable and still carries its cause, which is not just the sentinel.
func typedUnavailable(err error) bool {
	if !errors.Is(err, ErrUnavailable) {
		return false
	}
	var ue *unavailableError
	if !errors.As(err, &ue) || ue.cause == nil || errors.Is(ue.cause, ErrUnavailable) {
		return false
	}
	return strings.Contains(err.Error(), ue.cause.Error())
}

// run drives the workload until stop is closed or maxDuration passes.
func (w *workload) run(stop <-chan struct{}, maxDuration time.Duration) {
	deadline := time.Now().Add(maxDuration)
	var wg sync.WaitGroup
	for i := 0; i < w.workers; i++ {
		var mine []*wUser
		for j := i; j < len(w.users); j += w.workers {
			mine = append(mine, w.users[j])
		}
		wg.Add(1)
		go func(seed uint64, mine []*wUser) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 7))
			for n := 0; n < 1_000_000 && time.Now().Before(deadline); n++ {
				select {
				case <-stop:
					return
				default:
				}
				if !w.step(rng, mine[n%len(mine)]) {
					time.Sleep(20 * time.Millisecond) // do not spin while Redis is down
				}
			}
		}(uint64(i), mine)
	}
	wg.Wait()
}

// start runs the workload in the background until stop is called or
// maxDuration passes. The first stop closes stopped and waits for the
// workers to end; a later one (say, deferred after an explicit stop) only
// waits.
func (w *workload) start(maxDuration time.Duration) (stopped <-chan struct{}, stop func()) {
	ch, done := make(chan struct{}), make(chan struct{})
	go func() { w.run(ch, maxDuration); close(done) }()
	var once sync.Once
	return ch, func() { once.Do(func() { close(ch) }); <-done }
}

// failureSpan returns the first and last failure times and their count.
func (w *workload) failureSpan() (first, last time.Time, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range w.failures {
		if first.IsZero() || f.at.Before(first) {
			first = f.at
		}
		if f.at.After(last) {
			last = f.at
		}
	}
	return first, last, len(w.failures)
}

// step does one operation for u and reports whether it succeeded.
func (w *workload) step(rng *rand.Rand, u *wUser) bool {
	ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
	defer cancel()
	w.ops.Add(1)
	start := time.Now()
	if u.dirty {
		list, err := w.e.Sessions(ctx, u.id)
		if err != nil {
			w.failed("sessions", start, err)
			return false
		}
		w.resync(u, list)
		w.okOps.Add(1)
		return true
	}
	var withToken []*wSession
	for _, s := range u.live {
		if s.token != "" {
			withToken = append(withToken, s)
		}
	}
	r := rng.Float64()
	switch {
	case len(u.all) == 0 || r < 0.35:
		res, err := w.e.Login(ctx, u.id, Meta{IP: "10.0.0.1", UserAgent: "workload"})
		if err != nil {
			w.failed("login", start, err)
			u.dirty = true
			return false
		}
		w.loggedIn(u, res)
	case r < 0.85 || len(withToken) == 0:
		// Validate a recent session, live or ended: the ended ones are
		// where a wrong "valid" would show.
		s := u.all[len(u.all)-1-rng.IntN(min(len(u.all), 6))]
		got, err := w.e.Validate(ctx, s.token)
		if isRedisFailure(err) {
			w.failed("validate", start, err)
			return false
		}
		w.validated(u, s, got, err)
	default:
		s := withToken[rng.IntN(len(withToken))]
		err := w.e.Logout(ctx, s.token)
		switch {
		case err == nil:
			w.ended(u, s, stRevoked)
		case errors.Is(err, ErrNotReplicated):
			w.mu.Lock()
			w.unreplicated++
			w.mu.Unlock()
			w.ended(u, s, stRevokedUnreplicated)
		case isRedisFailure(err):
			w.failed("logout", start, err)
			u.dirty = true
			return false
		default:
			w.anomalyf(anRetried, "logout of live session %s of %s: %v", s.id, u.id, err)
			u.dirty = true
		}
	}
	w.okOps.Add(1)
	return true
}

// isRedisFailure tells an error that says nothing about the session apart
// from a domain answer (expired, evicted, revoked).
func isRedisFailure(err error) bool {
	if err == nil {
		return false
	}
	return !errors.Is(err, ErrExpired) && !errors.Is(err, ErrEvicted) && !errors.Is(err, ErrRevoked)
}

func (w *workload) ended(u *wUser, s *wSession, st sessState) {
	s.state = st
	for i, x := range u.live {
		if x == s {
			u.live = append(u.live[:i:i], u.live[i+1:]...)
			return
		}
	}
}

func (w *workload) loggedIn(u *wUser, res *LoginResult) {
	n := &wSession{id: res.SessionID, token: res.Token}
	for _, id := range res.Evicted {
		var found *wSession
		for _, s := range u.live {
			if s.id == id {
				found = s
			}
		}
		if found == nil {
			w.anomalyf(anRetried, "login of %s evicted %s, which the model does not hold live", u.id, id)
			u.dirty = true
			continue
		}
		w.ended(u, found, stEvicted)
		found.by = n
	}
	u.live = append(u.live, n)
	u.all = append(u.all, n)
	if c := w.cap(u.id); len(u.live) > c {
		// The model missed an eviction (a retried login); Redis itself is
		// checked against the cap by capChecker and exactLiveCheck.
		w.anomalyf(anRetried, "after a login the model holds %d live sessions of %s, cap %d (evicted %d)", len(u.live), u.id, c, len(res.Evicted))
		u.dirty = true
	}
}

func (w *workload) validated(u *wUser, s *wSession, got *Session, err error) {
	switch {
	case err == nil:
		if got.ID != s.id || got.UserID != u.id {
			w.wrongf("Validate of %s returned session %s of %q", s.id, got.ID, got.UserID)
			return
		}
		switch s.state {
		case stLive:
			return
		case stEvicted:
			// Judged at the end: wrong unless the evicting login was lost.
			w.mu.Lock()
			w.suspects = append(w.suspects, [2]*wSession{s, s.by})
			w.mu.Unlock()
		case stRevoked:
			if w.e.cfg.WaitReplicas > 0 {
				w.wrongf("logged-out session %s of %s (logout acknowledged by a replica) validated again", s.id, u.id)
			} else {
				w.anomalyf(anRevived, "logged-out session %s of %s came back (logout lost, WaitReplicas off)", s.id, u.id)
			}
		case stRevokedUnreplicated:
			w.anomalyf(anRevived, "logged-out session %s of %s came back (logout returned ErrNotReplicated)", s.id, u.id)
		case stGone:
			w.anomalyf(anRevived, "session %s of %s, gone after an unanswered operation, came back", s.id, u.id)
		}
		u.dirty = true
	case errors.Is(err, ErrEvicted), errors.Is(err, ErrRevoked):
		if s.state == stLive {
			w.anomalyf(anRetried, "live session %s of %s ended unseen: %v", s.id, u.id, err)
			u.dirty = true
		}
		if errors.Is(err, ErrRevoked) && s.state == stEvicted {
			w.wrongf("evicted session %s of %s reads as revoked: %v", s.id, u.id, err)
		}
		if errors.Is(err, ErrEvicted) && (s.state == stRevoked || s.state == stRevokedUnreplicated) {
			w.wrongf("logged-out session %s of %s reads as evicted: %v", s.id, u.id, err)
		}
	case errors.Is(err, ErrExpired):
		// Nothing here expires within a test run: the session vanished.
		w.anomalyf(anVanished, "session %s of %s (model state %d) vanished: %v", s.id, u.id, s.state, err)
		if s.state == stLive {
			u.dirty = true
		}
	}
}

// resync rebuilds u's live list from Redis after an unanswered operation.
func (w *workload) resync(u *wUser, list []Session) {
	byID := map[string]*wSession{}
	for _, s := range u.all {
		byID[s.id] = s
	}
	inRedis := map[string]bool{}
	var live []*wSession
	for i := len(list) - 1; i >= 0; i-- { // Sessions is newest first
		id := list[i].ID
		inRedis[id] = true
		s := byID[id]
		switch {
		case s == nil:
			s = &wSession{id: id} // created by a login whose answer was lost
		case s.state == stEvicted:
			w.mu.Lock()
			w.suspects = append(w.suspects, [2]*wSession{s, s.by})
			w.mu.Unlock()
		case s.state == stRevoked && w.e.cfg.WaitReplicas > 0:
			w.wrongf("logged-out session %s of %s (logout acknowledged by a replica) is live again", id, u.id)
		case s.state != stLive:
			w.anomalyf(anRevived, "ended session %s of %s (state %d) is live again", id, u.id, s.state)
		}
		s.state = stLive
		live = append(live, s)
	}
	for _, s := range u.live {
		if !inRedis[s.id] {
			s.state = stGone
		}
	}
	u.live = live
	u.dirty = false
	if c := w.cap(u.id); len(live) > c {
		w.wrongf("%s holds %d live sessions, cap %d", u.id, len(live), c)
	}
}

// judge settles the suspects: an evicted session that validated again is a
// wrong answer unless the login that evicted it was lost with it.
func (w *workload) judge(ctx context.Context) {
	for _, p := range w.suspects {
		victim, evictor := p[0], p[1]
		_, err := w.e.Validate(ctx, evictor.token)
		if errors.Is(err, ErrExpired) {
			w.anomalies = append(w.anomalies, fmt.Sprintf(
				"%s: evicted session %s came back together with the loss of the login %s that evicted it", anRevived, victim.id, evictor.id))
			w.kinds[anRevived]++
			continue
		}
		w.wrong = append(w.wrong, fmt.Sprintf(
			"evicted session %s validated although its evicting login %s survives (%v)", victim.id, evictor.id, err))
	}
}

// report checks the assertions every fault test shares and logs the
// figures. failures must be typed; wrong answers fail the test.
func (w *workload) report(t *testing.T, what string) {
	t.Helper()
	w.judge(context.Background())
	t.Logf("%s: %d operations, %d ok, %d failed (unavailable), %d logouts not replicated, anomalies %v",
		what, w.ops.Load(), w.okOps.Load(), len(w.failures), w.unreplicated, w.kinds)
	for i, a := range w.anomalies {
		if i == 10 {
			t.Logf("  ... %d more anomalies", len(w.anomalies)-10)
			break
		}
		t.Logf("  anomaly: %s", a)
	}
	for i, e := range w.untyped {
		if i == 5 {
			break
		}
		t.Errorf("untyped error (want errors.Is ErrUnavailable with its cause): %T %v", e, e)
	}
	for i, s := range w.wrong {
		if i == 20 {
			t.Errorf("... %d more wrong answers", len(w.wrong)-20)
			break
		}
		t.Errorf("WRONG ANSWER: %s", s)
	}
}

// redisLiveCount reads one user's live sessions straight from Redis, not
// through the engine: the index's size and the number of live records in
// the data hash. Both must respect the cap.
func redisLiveCount(ctx context.Context, c redis.Cmdable, prefix, user string) (index, records int, err error) {
	k := keysFor(prefix, userDigest(user))
	ids, _, err := indexIDs(ctx, c, k)
	if err != nil {
		return 0, 0, err
	}
	n := len(ids)
	vals, err := hashRecords(ctx, c, k)
	if err != nil {
		return 0, 0, err
	}
	for _, v := range vals {
		if len(v) > 0 && v[0] == kindLive {
			records++
		}
	}
	return int(n), records, nil
}

// capChecker reads every user's live count from Redis every interval until
// stop, and records any count above the cap. Reads that fail (Redis down)
// are skipped: they cannot show a breach.
type capChecker struct {
	reads, breaches atomic.Int64
	mu              sync.Mutex
	first           []string
}

func (cc *capChecker) check(ctx context.Context, c redis.Cmdable, prefix string, users []*wUser, capFor func(string) int) {
	for _, u := range users {
		idx, recs, err := redisLiveCount(ctx, c, prefix, u.id)
		if err != nil {
			continue
		}
		cc.reads.Add(1)
		if c := capFor(u.id); idx > c || recs > c {
			cc.breaches.Add(1)
			cc.mu.Lock()
			if len(cc.first) < 10 {
				cc.first = append(cc.first, fmt.Sprintf("%s: index %d, live records %d, cap %d", u.id, idx, recs, c))
			}
			cc.mu.Unlock()
		}
	}
}

func (cc *capChecker) loop(c redis.Cmdable, prefix string, users []*wUser, capFor func(string) int, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		cc.check(ctx, c, prefix, users, capFor)
		cancel()
	}
}

func (cc *capChecker) assert(t *testing.T) {
	t.Helper()
	t.Logf("cap read from Redis %d times, %d breaches", cc.reads.Load(), cc.breaches.Load())
	if cc.breaches.Load() > 0 {
		t.Errorf("cap breached: %v", cc.first)
	}
	if cc.reads.Load() == 0 {
		t.Errorf("the cap was never read from Redis")
	}
}

// exactLiveCheck reads every user once more after the run and requires the
// index and the records to agree and to respect the cap.
func exactLiveCheck(t *testing.T, c redis.Cmdable, prefix string, users []*wUser, capFor func(string) int) {
	t.Helper()
	ctx := context.Background()
	created := 0
	for _, u := range users {
		created += len(u.all)
		idx, recs, err := redisLiveCount(ctx, c, prefix, u.id)
		if err != nil {
			t.Fatalf("reading %s from Redis: %v", u.id, err)
		}
		if idx != recs {
			t.Errorf("%s: index holds %d sessions but %d live records exist", u.id, idx, recs)
		}
		if cp := capFor(u.id); idx > cp {
			t.Errorf("%s: %d live sessions in Redis, cap %d", u.id, idx, cp)
		}
	}
	// Zero live sessions at the end is a legitimate state (a one-user
	// workload often ends on a logout), so "did anything happen" is asked
	// of the sessions created, not of those still live.
	if created == 0 {
		t.Errorf("the workload created no session: the checks above saw nothing")
	}
}
