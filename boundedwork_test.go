package sessioncap

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap/internal/redistest"
)

// commandStats reads INFO commandstats: for each command, its integer
// figures (calls, usec, rejected_calls, failed_calls) by name.
func commandStats(t *testing.T, rdb *redis.Client) map[string]map[string]int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]int64{}
	for _, l := range strings.Split(info, "\r\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(l, "cmdstat_"), ":")
		if !ok || !strings.HasPrefix(l, "cmdstat_") {
			continue
		}
		fields := map[string]int64{}
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				fields[k] = n
			}
		}
		out[name] = fields
	}
	return out
}

// scriptStats reads the calls and microseconds Redis spent in script calls
// (FCALL, or EVALSHA for the EVAL form), and the commands scripts issued
// from inside (everything but those, EVAL and the INFO/CONFIG the test
// sends itself).
func scriptStats(t *testing.T, rdb *redis.Client) (calls, usec, inner int64) {
	t.Helper()
	for name, f := range commandStats(t, rdb) {
		switch name {
		case "evalsha", "fcall":
			calls, usec = calls+f["calls"], usec+f["usec"]
		case "eval", "info", "config|resetstat", "script|load", "function|load":
		default:
			inner += f["calls"]
		}
	}
	return calls, usec, inner
}

// TestLoginScriptTimeAtTheCeiling: an evicting sign-in of a user who holds
// the most sessions the ceiling allows (1,000) issues at most 4 more
// commands from inside the script than one for a user with one session,
// and costs Redis at most 3× as much: it reads and rewrites a few blocks of the
// index, never all of it. Script time is Redis's own (INFO commandstats),
// in interleaved rounds. The index walked in Lua on every call measured
// 26× here, and the same two orders kept as one 45 KB string 14×
// (bench/NOTES.md, fifth round).
func TestLoginScriptTimeAtTheCeiling(t *testing.T) {
	const loginCeilingRatio = 3
	needRedisServer(t, "script time at the session ceiling")
	if testing.Short() {
		t.Skip("-short: fills one user to the ceiling and times 4,000 sign-ins")
	}
	ctx := context.Background()
	rdb := ownRedis(t)
	e, err := New(rdb, Config{HistoryLimit: 10, Now: newClock().Now,
		Limiter: LimitFunc(func(_ context.Context, u string) (int, error) {
			if u == "big" {
				return DefaultSessionCeiling, nil
			}
			return 1, nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	meta := Meta{IP: "203.0.113.7", UserAgent: strings.Repeat("Mozilla/5.0 ", 9), Values: map[string]string{"v": strings.Repeat("x", 200)}}
	for range DefaultSessionCeiling {
		mustLogin(t, e, "big", meta)
	}
	mustLogin(t, e, "small", meta)
	round := func(user string, n int) (perCall, innerPerCall float64) {
		if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		for range n {
			res := mustLogin(t, e, user, meta)
			if len(res.Evicted) != 1 {
				t.Fatalf("%s: a sign-in at the cap evicted %d, want 1", user, len(res.Evicted))
			}
		}
		calls, usec, inner := scriptStats(t, rdb)
		if calls != int64(n) {
			t.Fatalf("%s: %d script calls for %d sign-ins", user, calls, n)
		}
		return float64(usec) / float64(calls), float64(inner) / float64(calls)
	}
	// Each side's cost is its quietest round: on a shared machine a round
	// is only ever slowed, by a preemption in the middle of a script, never
	// sped up. Rounds come in attempts of 7, a few seconds apart, until
	// the ratio holds or 4 attempts have run: in CI the first seconds of
	// the package overlap other packages' tests on the two cores, and the
	// large index, with more memory to touch, is slowed more than the
	// small one (2.80× to 2.95× in CI's plain step before the eighth
	// round's short last blocks, against 2.76× to 2.89× quiet; 2.26× to
	// 2.31× quiet since). An index walked in full measured 26× (see
	// above), so no quiet moment hides a real regression.
	small, big := math.Inf(1), math.Inf(1)
	var inner string
	ratio, attempts := math.Inf(1), 0
	for attempts < 4 && ratio > loginCeilingRatio {
		if attempts > 0 {
			time.Sleep(3 * time.Second)
		}
		attempts++
		for range 7 {
			s, si := round("small", 300)
			b, bi := round("big", 300)
			// A large index reads a few blocks more than a small one: a
			// constant, not a share of the sessions.
			if bi > si+4 {
				t.Fatalf("a sign-in issues %.2f commands from inside the script at 1,000 sessions and %.2f at one", bi, si)
			}
			inner = fmt.Sprintf("%.2f at one session, %.2f at 1,000", si, bi)
			small, big = min(small, s), min(big, b)
		}
		ratio = big / small
	}
	t.Logf("evicting login script (quietest of %d rounds of 300): %.1f µs at one session, %.1f µs at %d: %.2f×; commands from inside: %s",
		7*attempts, small, big, DefaultSessionCeiling, ratio, inner)
	// Not under the race detector, whose instrumented tests in other
	// packages keep the cores busy for the whole step.
	if ratio > loginCeilingRatio && !raceEnabled {
		t.Fatalf("a sign-in at %d sessions costs %.2f× one at a single session, want at most %d×", DefaultSessionCeiling, ratio, loginCeilingRatio)
	}
	if n := liveCount(t, e, "big"); n != DefaultSessionCeiling {
		t.Fatalf("%d live sessions after the rounds, want %d", n, DefaultSessionCeiling)
	}
	// What a user at the ceiling costs (the README's worst case).
	k := e.keysOf("big")
	var total int64
	for _, key := range []string{k.data, k.hist} {
		n, err := rdb.MemoryUsage(ctx, key, 0).Result()
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	t.Logf("a user at the ceiling (%d sessions, HistoryLimit 10) holds %d bytes (MEMORY USAGE ... SAMPLES 0)", DefaultSessionCeiling, total)
}

// BenchmarkValidateWhileOneAccountSignsIn: another user's Validate while
// 8 goroutines sign one account in at the ceiling (1,000 sessions, every
// sign-in evicting): the p50 and p99 it reports are what one heavy account
// costs everyone else on the same Redis. A timed test would be noise on a
// shared machine; read the figures with
//
//	go test -run '^$' -bench ValidateWhileOneAccountSignsIn -benchtime 3000x .
func BenchmarkValidateWhileOneAccountSignsIn(b *testing.B) {
	b.ReportAllocs()
	if !redistest.Available() {
		b.Skip("SKIPPED: no real redis-server; this benchmark needs one")
	}
	srv, err := redistest.Start(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Stop)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 16})
	b.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	e, err := New(rdb, Config{MaxSessions: DefaultSessionCeiling, Now: newClock().Now})
	if err != nil {
		b.Fatal(err)
	}
	meta := Meta{IP: "203.0.113.7", UserAgent: "load", Values: map[string]string{"v": strings.Repeat("x", 200)}}
	for range DefaultSessionCeiling {
		mustLogin(b, e, "hot", meta)
	}
	other := mustLogin(b, e, "other", meta)
	var stop atomic.Bool
	var wg sync.WaitGroup
	var logins atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if _, err := e.Login(ctx, "hot", meta); err != nil {
					b.Error(err)
					return
				}
				logins.Add(1)
			}
		}()
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := e.Validate(ctx, other.Token); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	stop.Store(true)
	wg.Wait()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(logins.Load())/float64(b.N), "logins/validate")
}

// resendOnce is a go-redis hook that, when armed, runs the next script
// call twice and keeps the second reply: what go-redis does when the first
// reply is lost on the wire and it resends the command.
type resendOnce struct {
	redistest.PassHook
	armed atomic.Bool
}

func (h *resendOnce) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if isScriptCall(cmd.Name()) && h.armed.CompareAndSwap(true, false) {
			if err := next(ctx, cmd); err != nil {
				return err
			}
		}
		return next(ctx, cmd)
	}
}

// TestLogoutAllInChunks: LogoutAll of a user with hundreds of sessions ends
// them in bounded chunks (one script call per logoutAllChunk), and reports
// the true count even when a chunk was run twice because its reply was
// lost. Every session is ended; none is left valid.
func TestLogoutAllInChunks(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		resend := &resendOnce{}
		b.client.AddHook(resend)
		e := b.engine(t, Config{MaxSessions: Unlimited})
		// The end script is loaded first on the user's own node (a Cluster
		// has several), so no NOSCRIPT fallback is counted below.
		if _, err := e.LogoutAll(ctx, "many"); err != nil {
			t.Fatal(err)
		}
		const n = 2*logoutAllChunk + 50
		toks := make([]string, n)
		for i := range toks {
			toks[i] = mustLogin(t, e, "many", Meta{UserAgent: fmt.Sprint("device ", i)}).Token
		}
		b.count.reset()
		resend.armed.Store(true)
		got, err := e.LogoutAll(ctx, "many")
		if err != nil {
			t.Fatal(err)
		}
		if got != n {
			t.Fatalf("LogoutAll with a resent chunk reported %d, want %d", got, n)
		}
		// 3 chunks of at most logoutAllChunk, the first two in one call
		// (run twice by the hook, as a resend would), the last in another.
		if trips := b.count.trips.Load(); trips != 2 {
			t.Fatalf("LogoutAll of %d sessions took %d calls, want 2 (3 chunks, one resent)", n, trips)
		}
		for i, tok := range toks {
			if _, err := e.Validate(ctx, tok); !errors.Is(err, ErrRevoked) && !errors.Is(err, ErrExpired) {
				t.Fatalf("session %d after LogoutAll: %v, want it ended", i, err)
			}
		}
		if c := liveCount(t, e, "many"); c != 0 {
			t.Fatalf("%d sessions live after LogoutAll", c)
		}
		// A second LogoutAll finds nothing and says so.
		if got, err := e.LogoutAll(ctx, "many"); err != nil || got != 0 {
			t.Fatalf("second LogoutAll: %d, %v, want 0", got, err)
		}
	})
}

// TestSessionsPaging: SessionsPage walks a user's sessions newest first in
// pages of the asked size, each one script call, and ends with an empty
// cursor; the pages together are exactly what Sessions returns. A cursor
// whose session ended between two pages resumes where it was without
// skipping a session. A malformed cursor or limit is ErrInvalidInput
// before any Redis call.
func TestSessionsPaging(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		e := b.engine(t, Config{MaxSessions: Unlimited})
		const n = 250
		ids := make([]string, n)
		for i := range ids {
			ids[i] = mustLogin(t, e, "pager", Meta{UserAgent: fmt.Sprint("device ", i)}).SessionID
			b.clock.Add(time.Millisecond)
		}
		all, err := e.Sessions(ctx, "pager")
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != n {
			t.Fatalf("Sessions listed %d, want %d", len(all), n)
		}
		for i, s := range all {
			if s.ID != ids[n-1-i] {
				t.Fatalf("Sessions[%d] is %s, want %s (newest first)", i, s.ID, ids[n-1-i])
			}
		}
		var paged []string
		cursor, pages := "", 0
		for {
			b.count.reset()
			p, err := e.SessionsPage(ctx, "pager", cursor, 100)
			if err != nil {
				t.Fatal(err)
			}
			if trips := b.count.trips.Load(); trips != 1 {
				t.Fatalf("one page took %d round trips", trips)
			}
			pages++
			for _, s := range p.Sessions {
				paged = append(paged, s.ID)
			}
			if p.Next == "" {
				break
			}
			cursor = p.Next
		}
		if pages != 3 || !slices.Equal(paged, reverse(ids)) {
			t.Fatalf("%d pages listing %d sessions; want 3 pages, the same as Sessions", pages, len(paged))
		}

		// The first page's last session ends before the second page.
		p1, err := e.SessionsPage(ctx, "pager", "", 100)
		if err != nil {
			t.Fatal(err)
		}
		last := p1.Sessions[len(p1.Sessions)-1].ID
		if err := e.Revoke(ctx, "pager", last); err != nil {
			t.Fatal(err)
		}
		p2, err := e.SessionsPage(ctx, "pager", p1.Next, 100)
		if err != nil {
			t.Fatal(err)
		}
		if want := ids[n-101]; p2.Sessions[0].ID != want {
			t.Fatalf("after the cursor's session ended, the next page starts at %s, want %s", p2.Sessions[0].ID, want)
		}

		b.count.reset()
		for _, c := range []string{"x", "abc.1", p1.Next + "x", strings.Split(p1.Next, ".")[0] + ".-1"} {
			if _, err := e.SessionsPage(ctx, "pager", c, 10); !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("cursor %q: %v, want ErrInvalidInput", c, err)
			}
		}
		for _, l := range []int{-1, MaxSessionsPage + 1} {
			if _, err := e.SessionsPage(ctx, "pager", "", l); !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("limit %d: %v, want ErrInvalidInput", l, err)
			}
		}
		if b.count.cmds.Load() != 0 {
			t.Fatal("a malformed cursor or limit reached Redis")
		}
	})
}

func reverse(s []string) []string {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

// TestIndexRebuiltFromRecords: a live index that is missing while live
// records exist (the previous format kept it in field "i"), or that is
// damaged, is rebuilt from the records at the next call: the cap still
// holds, the oldest session is the one evicted, and every session that
// validates can be ended. A missing index never means "no sessions".
func TestIndexRebuiltFromRecords(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		damage := map[string]func(k userKeys, ids []string, exps []int64) error{
			"previous format": func(k userKeys, ids []string, exps []int64) error {
				// Format 2's index: ID + expiry, in sign-in order.
				var old strings.Builder
				for i, id := range ids {
					old.WriteString(id + ms13(exps[i]))
				}
				return b.client.HSet(ctx, k.data, "i", old.String()).Err()
			},
			"missing": func(userKeys, []string, []int64) error { return nil },
			"not entries": func(k userKeys, _ []string, _ []int64) error {
				return b.client.HSet(ctx, k.data, "j", "garbage").Err()
			},
			"both sizes": func(k userKeys, _ []string, _ []int64) error {
				return b.client.HSet(ctx, k.data, "j", strings.Repeat("x", lEntryLen+xEntryLen), "k", "0").Err()
			},
		}
		for name, harm := range damage {
			e := b.engine(t, Config{MaxSessions: 2})
			user := "rebuild " + name
			first := mustLogin(t, e, user, Meta{UserAgent: "first"})
			b.clock.Add(time.Millisecond)
			second := mustLogin(t, e, user, Meta{UserAgent: "second"})
			k := e.keysOf(user)
			ids, exps, err := indexIDs(ctx, b.client, k)
			if err != nil || len(ids) != 2 {
				t.Fatalf("index before the damage: %d sessions, %v", len(ids), err)
			}
			if err := b.client.HDel(ctx, k.data, "j", "k").Err(); err != nil {
				t.Fatal(err)
			}
			if err := harm(k, ids, exps); err != nil {
				t.Fatal(err)
			}
			b.clock.Add(time.Millisecond)
			third := mustLogin(t, e, user, Meta{UserAgent: "third"})
			if len(third.Evicted) != 1 || third.Evicted[0] != first.SessionID {
				t.Fatalf("%s index: the sign-in evicted %v, want the oldest (%s)", name, third.Evicted, first.SessionID)
			}
			if _, err := e.Validate(ctx, first.Token); !errors.Is(err, ErrEvicted) {
				t.Fatalf("%s index: the oldest session: %v, want ErrEvicted", name, err)
			}
			validOK(t, e, second.Token)
			ids, _, err = indexIDs(ctx, b.client, k)
			if err != nil || len(ids) != 2 {
				t.Fatalf("%s index: rebuilt index holds %d sessions (%v), want 2", name, len(ids), err)
			}
			if n, _ := b.client.HExists(ctx, k.data, "i").Result(); n {
				t.Fatalf("%s index: the previous format's index is still there", name)
			}
			if n, err := e.LogoutAll(ctx, user); err != nil || n != 2 {
				t.Fatalf("%s index: LogoutAll ended %d (%v), want 2", name, n, err)
			}
		}

		// A large index whose header is damaged while its blocks remain:
		// the rebuilt index numbers its blocks past the old ones, which go.
		e := b.engine(t, Config{MaxSessions: Unlimited})
		const n = 3 * blockMax
		for range n {
			mustLogin(t, e, "rebuild large", Meta{UserAgent: "many"})
		}
		k := e.keysOf("rebuild large")
		if err := b.client.HSet(ctx, k.data, "k", "damaged").Err(); err != nil {
			t.Fatal(err)
		}
		mustLogin(t, e, "rebuild large", Meta{UserAgent: "one more"})
		// indexIDs also fails on a block field the directory does not list.
		ids, _, err := indexIDs(ctx, b.client, k)
		if err != nil || len(ids) != n+1 {
			t.Fatalf("large index rebuilt: %d sessions (%v), want %d", len(ids), err, n+1)
		}
	})
}
