package sessioncap

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestMalformedInputNeverReachesRedis(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		e := b.engine(t, Config{})
		good := mustLogin(t, e, "alice", Meta{}).Token
		tokens := map[string]string{
			"empty":          "",
			"short":          good[:86],
			"long":           good + "A",
			"oversized":      strings.Repeat("A", 1<<20),
			"bad character":  good[:40] + "." + good[41:],
			"padding":        good[:85] + "==",
			"space":          " " + good[1:],
			"NUL":            good[:10] + "\x00" + good[11:],
			"wrong version":  "Ag" + good[2:],
			"non-canonical":  good[:86] + nonCanonicalLast(good[86]),
			"standard b64":   strings.NewReplacer("-", "+", "_", "/").Replace(good[:86]) + "+",
			"unicode":        strings.Repeat("é", 43) + "A",
			"bearer prefix":  "Bearer " + good[:80],
			"hex-ish secret": strings.Repeat("0", 87),
		}
		for name, tok := range tokens {
			if tok == good {
				continue
			}
			b.count.reset()
			if _, err := e.Validate(ctx, tok); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("%s: Validate = %v, want ErrInvalidToken", name, err)
			}
			for op, f := range map[string]func() error{
				"Logout":       func() error { return e.Logout(ctx, tok) },
				"LogoutOthers": func() error { _, err := e.LogoutOthers(ctx, tok); return err },
				"Rotate":       func() error { _, err := e.Rotate(ctx, tok); return err },
				"Update": func() error {
					_, err := e.Update(ctx, tok, func(map[string]string) error { return nil })
					return err
				},
			} {
				if err := f(); !errors.Is(err, ErrInvalidToken) {
					t.Errorf("%s: %s = %v, want ErrInvalidToken", name, op, err)
				}
			}
			if n := b.count.cmds.Load(); n != 0 {
				t.Errorf("%s: %d Redis commands sent for a malformed token", name, n)
			}
		}
		b.count.reset()
		for _, u := range []string{"", strings.Repeat("x", maxUserIDLen+1)} {
			if _, err := e.Login(ctx, u, Meta{}); !errors.Is(err, ErrInvalidUserID) {
				t.Errorf("Login(%d-byte user) = %v", len(u), err)
			}
			if _, err := e.Sessions(ctx, u); !errors.Is(err, ErrInvalidUserID) {
				t.Errorf("Sessions(%d-byte user) = %v", len(u), err)
			}
			if _, err := e.LogoutAll(ctx, "ok", u); !errors.Is(err, ErrInvalidUserID) {
				t.Errorf("LogoutAll(..., %d-byte user) = %v", len(u), err)
			}
		}
		if err := e.Revoke(ctx, "alice", "not-a-uuid"); !errors.Is(err, ErrInvalidSessionID) {
			t.Errorf("Revoke(bad ID) = %v", err)
		}
		if n := b.count.cmds.Load(); n != 0 {
			t.Errorf("%d Redis commands sent for invalid user or session IDs", n)
		}
		// A wrong secret for a real session is indistinguishable from none.
		p, _ := parseToken(good)
		p.secret[0] ^= 1
		if _, err := e.Validate(ctx, p.String()); !errors.Is(err, ErrExpired) {
			t.Errorf("wrong secret: %v, want ErrExpired", err)
		}
		validOK(t, e, good)
	})
}

// nonCanonicalLast returns a different last character that decodes to the
// same bytes under a lenient decoder (the unused low bits set).
func nonCanonicalLast(c byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, c)
	return string(alphabet[i^1])
}

func TestRedisDownIsATypedErrorNeverValid(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		// A token minted while Redis was up, checked while it is down.
		tok := mustLogin(t, b.engine(t, Config{}), "alice", Meta{}).Token
		down := redis.NewClient(&redis.Options{Addr: deadAddr(t), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
		defer down.Close()
		e, err := New(down, Config{Now: b.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		checkDown := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("%s with Redis down: %v, want ErrUnavailable", op, err)
			}
			var opErr *net.OpError
			if !errors.As(err, &opErr) {
				t.Errorf("%s: the cause (a *net.OpError) is not wrapped: %v", op, err)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "sessioncap: ") {
				t.Errorf("%s: message %q lacks the package prefix", op, err)
			}
		}
		s, err := e.Validate(ctx, tok)
		if s != nil {
			t.Fatal("Validate returned a session while Redis was down")
		}
		checkDown("Validate", err)
		_, err = e.Login(ctx, "alice", Meta{})
		checkDown("Login", err)
		checkDown("Logout", e.Logout(ctx, tok))
		_, err = e.Sessions(ctx, "alice")
		checkDown("Sessions", err)
		_, err = e.LogoutAll(ctx, "alice", "bob")
		checkDown("LogoutAll", err)
		_, err = e.History(ctx, "alice", 0, 10)
		checkDown("History", err)
	})
}

// A server that accepts connections and never answers: every call must
// return by its context deadline with a typed error. Serial: it measures
// how long each call takes.
func TestHungRedisHonoursTheDeadline(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	stop := make(chan struct{})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() { defer conns.Done(); <-stop; c.Close() }()
		}
	}()
	defer func() { l.Close(); close(stop); conns.Wait() }()
	client := redis.NewClient(&redis.Options{Addr: l.Addr().String(), MaxRetries: -1,
		ContextTimeoutEnabled: true, ReadTimeout: 5 * time.Second})
	defer client.Close()
	e, err := New(client, Config{})
	if err != nil {
		t.Fatal(err)
	}
	tok := token{}.String()
	for _, d := range []time.Duration{50 * time.Millisecond, 200 * time.Millisecond} {
		c, cancel := context.WithTimeout(ctx, d)
		start := time.Now()
		s, err := e.Validate(c, tok)
		took := time.Since(start)
		cancel()
		if s != nil || !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Validate on a hung server = %v, %v", s, err)
		}
		if !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
			t.Errorf("cause is not a deadline or timeout: %v", err)
		}
		if took > d+2*time.Second {
			t.Errorf("deadline %v, returned after %v", d, took)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// fakeRedis answers HELLO with an error (so go-redis speaks RESP2), any
// CLIENT command with +OK, and everything else with reply.
func fakeRedis(t *testing.T, reply string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					args, err := readCommand(r)
					if err != nil {
						return
					}
					out := reply
					switch strings.ToUpper(args[0]) {
					case "HELLO":
						out = "-ERR unknown command 'HELLO'\r\n"
					case "CLIENT", "PING":
						out = "+OK\r\n"
					}
					if _, err := io.WriteString(c, out); err != nil {
						return
					}
				}
			}(c)
		}
	}()
	return l.Addr().String()
}

// readCommand reads one RESP array of bulk strings.
func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(line, "*") {
		return nil, errors.New("not an array")
	}
	var n int
	for _, c := range strings.TrimSpace(line[1:]) {
		n = n*10 + int(c-'0')
	}
	args := make([]string, 0, n)
	for i := 0; i < n; i++ {
		if _, err := r.ReadString('\n'); err != nil { // $len
			return nil, err
		}
		v, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		args = append(args, strings.TrimRight(v, "\r\n"))
	}
	return args, nil
}

func TestGarbageRepliesAreErrorsNotSessions(t *testing.T) {
	t.Parallel()
	good := token{}.String()
	for name, reply := range map[string]string{
		"integer":            ":42\r\n",
		"bulk":               "$3\r\nabc\r\n",
		"nil":                "$-1\r\n",
		"empty array":        "*0\r\n",
		"string status":      "*1\r\n$1\r\nx\r\n",
		"ok without record":  "*1\r\n:1\r\n",
		"ok, integer record": "*2\r\n:1\r\n:5\r\n",
		"ok, junk record":    "*2\r\n:1\r\n$3\r\nabc\r\n",
		"ok, truncated":      "*2\r\n:1\r\n$60\r\nL0123456789abcdef1772359200000177235920000017724456000000099\r\n",
		"tomb, junk":         "*2\r\n:2\r\n$4\r\nEabc\r\n",
		"unknown status":     "*1\r\n:9\r\n",
		"error":              "-ERR something broke\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			client := redis.NewClient(&redis.Options{Addr: fakeRedis(t, reply), MaxRetries: -1})
			defer client.Close()
			e, err := New(client, Config{})
			if err != nil {
				t.Fatal(err)
			}
			s, err := e.Validate(ctx, good)
			if s != nil || !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Validate = %v, %v; want ErrUnavailable", s, err)
			}
			// The same reply to the HGET that Validate sends when the touch
			// cache vouches for the session. Only a nil there is a real
			// answer ("no such session").
			p, _ := parseToken(good)
			e.touched.put(&p.sid, e.nowMS(context.Background()))
			s, err = e.Validate(ctx, good)
			if name == "nil" {
				if !errors.Is(err, ErrExpired) {
					t.Fatalf("Validate (HGET path) = %v; want ErrExpired", err)
				}
			} else if s != nil || !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Validate (HGET path) = %v, %v; want ErrUnavailable", s, err)
			}
			// {1} alone is Login's real "no evictions" reply, and {1, x}
			// is Sessions' real list shape, so only the rest must fail.
			if _, err := e.Login(ctx, "alice", Meta{}); !errors.Is(err, ErrUnavailable) && name != "ok without record" {
				t.Fatalf("Login = %v; want ErrUnavailable", err)
			}
			if _, err := e.Sessions(ctx, "alice"); !errors.Is(err, ErrUnavailable) && name != "ok without record" {
				t.Fatalf("Sessions = %v; want ErrUnavailable", err)
			}
		})
	}
}

func TestCorruptRecordIsAnErrorNotAPanic(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, b *backend) {
		e := b.engine(t, Config{})
		r := mustLogin(t, e, "alice", Meta{})
		k, sid := r.Session.keys, r.Session.sid
		p, _ := parseToken(r.Token)
		valid := liveRecord(p.secretDigest(), t0.UnixMilli(), t0.Add(time.Hour).UnixMilli(), 0, encodeMeta("", "", "alice"), "\x00")
		for name, rec := range map[string]string{
			"meta length past the end": valid[:offMetaLen] + "9999" + valid[offMeta:],
			"values cut":               valid[:len(valid)-1],
			"bad timestamp":            valid[:17] + "17723592000x0" + valid[30:],
			"extra bytes":              valid + "junk",
		} {
			if err := b.client.HSet(ctx, k.data, string(sid[:]), rec).Err(); err != nil {
				t.Fatal(err)
			}
			s, err := e.Validate(ctx, r.Token)
			if s != nil || !errors.Is(err, ErrUnavailable) {
				t.Errorf("%s: Validate = %v, %v; want ErrUnavailable", name, s, err)
			}
		}
		if err := b.client.HSet(ctx, k.data, string(sid[:]), valid).Err(); err != nil {
			t.Fatal(err)
		}
		validOK(t, e, r.Token)
	})
}

// TestScriptCacheFlushCostsOneRetry is serial, its topologies in turn:
// SCRIPT FLUSH and FUNCTION FLUSH on a shared redis-server, Cluster or
// Sentinel would cost other tests a retry and break their command counts.
// The call that finds its script gone reloads it and runs it again, once.
func TestScriptCacheFlushCostsOneRetry(t *testing.T) {
	backendsInTurn(t, func(t *testing.T, b *backend) {
		stats := &Stats{}
		e := b.engine(t, Config{Observer: stats})
		r := mustLogin(t, e, "alice", Meta{})
		validOK(t, e, r.Token)
		before := stats.Snapshot().ScriptRetries
		if err := flushScripts(ctx, b.client); err != nil {
			t.Fatal(err)
		}
		b.clock.Add(e.cfg.TouchInterval) // a refresh is due: the script runs
		b.count.reset()
		validOK(t, e, r.Token)
		// EVALSHA, then EVAL; or FCALL, FUNCTION LOAD, FCALL (a Cluster
		// loads on each master through ForEachMaster, on the masters' own
		// clients, which the cluster client's hook does not see).
		want, how := int64(2), "EVALSHA, then EVAL"
		if e.functions() {
			want, how = 3, "FCALL, FUNCTION LOAD, FCALL"
			if _, ok := b.client.(*redis.ClusterClient); ok {
				want, how = 2, "FCALL twice"
			}
		}
		if got := b.count.cmds.Load(); got != want {
			t.Fatalf("Validate after the flush sent %d commands, want %d (%s)", got, want, how)
		}
		if got := stats.Snapshot().ScriptRetries - before; got != 1 {
			t.Fatalf("%d script retries observed, want 1", got)
		}
		b.count.reset()
		validOK(t, e, r.Token)
		if got := b.count.cmds.Load(); got != 1 {
			t.Fatalf("once reloaded, Validate sent %d commands, want 1", got)
		}
	})
}
