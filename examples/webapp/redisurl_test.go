package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sessioncap/sessioncap"
)

func TestParseRedisURL(t *testing.T) {
	t.Parallel()
	type want struct {
		kind   string
		addrs  string
		master string
		db     int
		user   string
		pass   string
		sentPW string
		read   time.Duration
		dial   time.Duration
		pool   int
		events sessioncap.EventMode
		tls    bool
	}
	for _, tc := range []struct {
		in string
		want
	}{
		{"redis://localhost:6379/2", want{kind: "redis", addrs: "localhost:6379", db: 2, events: sessioncap.EventsPubSub}},
		{"redis://:s3cret@10.0.0.1:6380", want{kind: "redis", addrs: "10.0.0.1:6380", pass: "s3cret", events: sessioncap.EventsPubSub}},
		{"rediss://u:p@cache.example:6380/1?read_timeout=250ms&dial_timeout=2&pool_size=7",
			want{kind: "redis", addrs: "cache.example:6380", db: 1, user: "u", pass: "p", read: 250 * time.Millisecond,
				dial: 2 * time.Second, pool: 7, events: sessioncap.EventsPubSub, tls: true}},
		{"redis+sentinel://h1:26379,h2:26380/mymaster", want{kind: "sentinel", addrs: "h1:26379,h2:26380", master: "mymaster", events: sessioncap.EventsPubSub}},
		{"redis+sentinel://u:p%40ss@h1,h2/mymaster/3?sentinel_password=sp&read_timeout=1s",
			want{kind: "sentinel", addrs: "h1:26379,h2:26379", master: "mymaster", db: 3, user: "u", pass: "p@ss", sentPW: "sp",
				read: time.Second, events: sessioncap.EventsPubSub}},
		{"redis+cluster://h1:7000,h2:7001", want{kind: "cluster", addrs: "h1:7000,h2:7001", events: sessioncap.EventsSharded}},
		{"redis+cluster://:pw@h1:7000,h2?read_timeout=300ms&pool_size=3",
			want{kind: "cluster", addrs: "h1:7000,h2:6379", pass: "pw", read: 300 * time.Millisecond, pool: 3, events: sessioncap.EventsSharded}},
		{"redis+cluster://h1:7000", want{kind: "cluster", addrs: "h1:7000", events: sessioncap.EventsSharded}},
	} {
		got, err := parseRedisURL(tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		var g want
		g.kind, g.addrs, g.events = got.kind, strings.Join(got.addrs, ","), got.events
		ctxTimeout := false
		switch {
		case got.single != nil:
			o := got.single
			g.db, g.user, g.pass, g.read, g.dial, g.pool, g.tls = o.DB, o.Username, o.Password, o.ReadTimeout, o.DialTimeout, o.PoolSize, o.TLSConfig != nil
			ctxTimeout = o.ContextTimeoutEnabled
		case got.failover != nil:
			o := got.failover
			g.master, g.db, g.user, g.pass, g.sentPW, g.read, g.dial, g.pool = o.MasterName, o.DB, o.Username, o.Password, o.SentinelPassword, o.ReadTimeout, o.DialTimeout, o.PoolSize
			ctxTimeout = o.ContextTimeoutEnabled
		case got.cluster != nil:
			o := got.cluster
			g.user, g.pass, g.read, g.dial, g.pool = o.Username, o.Password, o.ReadTimeout, o.DialTimeout, o.PoolSize
			ctxTimeout = o.ContextTimeoutEnabled
		}
		if g != tc.want {
			t.Fatalf("%s:\n got %+v\nwant %+v", tc.in, g, tc.want)
		}
		if !ctxTimeout {
			t.Fatalf("%s: ContextTimeoutEnabled not set", tc.in)
		}
	}
	for _, bad := range []string{"localhost:6379", "http://x", "redis+sentinel://h1", "redis+cluster:///", "redis+cluster://h1/0",
		"redis+sentinel://h1/m/notanumber", "redis://h1?read_timeout=soon", "redis+cluster://h1?nonsense=1",
		"redis+sentinel://h1/m?bogus=2"} {
		if _, err := parseRedisURL(bad); err == nil {
			t.Fatalf("%s: no error", bad)
		}
	}
}

// TestRedisLoggerIsStructured: go-redis's own lines come out of the app's
// slog handler, tagged, without go-redis's prefix.
func TestRedisLoggerIsStructured(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := slogRedisLogger{slog.New(slog.NewJSONHandler(&buf, nil))}
	l.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %v", 5, "refused")
	out := buf.String()
	for _, want := range []string{`"level":"WARN"`, `"component":"go-redis"`, `"msg":"connection pool: failed to dial after 5 attempts: refused"`} {
		if !strings.Contains(out, want) {
			t.Fatalf("log line %s lacks %s", out, want)
		}
	}
}
