// Command webapp is sessioncap's demo: a small site with sign-in, a "your
// devices" page, an admin console and a JSON API, where each user may hold
// a capped number of live sessions.
//
//	cd examples/webapp                   # its own module
//	go run .                             # in-process miniredis
//	go run . -redis redis://localhost:6379 -max-sessions 2
//
// See the README for the flags, the demo accounts and the -redis URL forms.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap"
	"github.com/sessioncap/sessioncap/extra/sessioncapotel"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "webapp:", err)
		os.Exit(1)
	}
}

// DefaultAddr is where the demo listens unless -addr says otherwise: the
// loopback interface only, since its accounts have well-known passwords.
const DefaultAddr = "127.0.0.1:8080"

const usageHeader = `Usage: webapp [flags]

The sessioncap demo: sign-in, "your devices", an admin console and a JSON API.
It listens on ` + DefaultAddr + ` only, and its demo accounts have well-known
passwords. To reach it from another machine, listen on every interface
(-addr :8080) and either serve it over HTTPS (for example behind a
TLS-terminating proxy), or, on a trusted network over plain HTTP, add
-insecure-cookies: browsers drop the default Secure cookie over plain HTTP
from any host but localhost.

Flags:
`

// run parses the flags and serves until SIGINT or SIGTERM. -h prints the
// usage to stderr and returns nil, so it exits 0.
func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("webapp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHeader)
		fs.PrintDefaults()
	}
	redisURL := fs.String("redis", os.Getenv("REDIS_URL"),
		"Redis `URL`: redis://host:port, redis+sentinel://h1:p1,h2:p2/master, redis+cluster://h1:p1,h2:p2 (default $REDIS_URL, else in-process miniredis)")
	maxSessions := fs.Int("max-sessions", 1, "live sessions per user (admins are unlimited)")
	overflow := fs.String("overflow", "evict", "at the cap: evict (oldest session is signed out) or reject (new sign-in refused)")
	idle := fs.Duration("idle-timeout", 0, "idle timeout (default 30m)")
	absolute := fs.Duration("absolute-timeout", 0, "absolute timeout (default 24h)")
	addr := fs.String("addr", DefaultAddr, "listen `address`; :8080 listens on every interface (see above before you do)")
	reqTimeout := fs.Duration("request-timeout", DefaultRequestTimeout, "deadline of each request's Redis calls (event streams excepted once open)")
	perSession := fs.Int("streams-per-session", DefaultStreamsPerSession, "open /api/events streams per session; more are answered 429")
	perUser := fs.Int("streams-per-user", DefaultStreamsPerUser, "open /api/events streams per user, over all their sessions; more are answered 429")
	insecure := fs.Bool("insecure-cookies", false, "send the cookie without Secure, for plain HTTP from a host other than localhost")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var ov sessioncap.Overflow
	switch *overflow {
	case "evict":
		ov = sessioncap.EvictOldest
	case "reject":
		ov = sessioncap.RejectNew
	default:
		return fmt.Errorf("-overflow %q: use evict or reject", *overflow)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	// go-redis logs on its own (dial failures, topology changes); route it
	// through the same handler so every line is structured alike.
	redis.SetLogger(slogRedisLogger{log})

	a, err := newApp(appConfig{
		RedisURL: *redisURL, MaxSessions: *maxSessions, Overflow: ov,
		IdleTimeout: *idle, AbsoluteTimeout: *absolute, Insecure: *insecure, Logger: log, RequestTimeout: *reqTimeout,
		StreamsPerSession: *perSession, StreamsPerUser: *perUser,
		// Spans go to the global OpenTelemetry provider: a no-op until the
		// app installs an exporter, so wiring them costs next to nothing.
		Tracer:     sessioncapotel.NewTracer(),
		Instrument: func(c redis.UniversalClient) error { return redisotel.InstrumentTracing(c) },
	})
	if err != nil {
		return err
	}
	defer a.Close()
	if *redisURL == "" {
		log.Warn("no -redis URL or REDIS_URL given: running on an in-process miniredis, sessions are lost on exit")
	}
	log.Info("sessions stored in " + a.backend)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 10 * time.Second}
	url := "http://" + ln.Addr().String()
	if isLoopback(ln.Addr()) {
		url = "http://localhost:" + portOf(ln.Addr())
	}
	log.Info("listening on "+url, "max_sessions", *maxSessions, "overflow", ov.String(), "insecure_cookies", *insecure)
	if !*insecure {
		log.Info("cookies are Secure with the __Host- prefix: browsers accept them over plain HTTP only on localhost; use -insecure-cookies otherwise")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Event streams never end by themselves; close them rather than wait.
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// isLoopback reports whether a listener is reachable from this machine only.
func isLoopback(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}

func portOf(a net.Addr) string {
	_, p, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return p
}
