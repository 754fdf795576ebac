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
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "webapp:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("webapp", flag.ContinueOnError)
	redisURL := fs.String("redis", os.Getenv("REDIS_URL"),
		"Redis `URL`: redis://host:port, redis+sentinel://h1:p1,h2:p2/master, redis+cluster://h1:p1,h2:p2 (default $REDIS_URL, else in-process miniredis)")
	maxSessions := fs.Int("max-sessions", 1, "live sessions per user (admins are unlimited)")
	overflow := fs.String("overflow", "evict", "at the cap: evict (oldest session is signed out) or reject (new sign-in refused)")
	idle := fs.Duration("idle-timeout", 0, "idle timeout (default 30m)")
	absolute := fs.Duration("absolute-timeout", 0, "absolute timeout (default 24h)")
	addr := fs.String("addr", ":8080", "listen address")
	perSession := fs.Int("streams-per-session", DefaultStreamsPerSession, "open /api/events streams per session; more are answered 429")
	perUser := fs.Int("streams-per-user", DefaultStreamsPerUser, "open /api/events streams per user, over all their sessions; more are answered 429")
	insecure := fs.Bool("insecure-cookies", false, "send the cookie without Secure, for plain HTTP from a host other than localhost")
	if err := fs.Parse(args); err != nil {
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
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	a, err := newApp(appConfig{
		RedisURL: *redisURL, MaxSessions: *maxSessions, Overflow: ov,
		IdleTimeout: *idle, AbsoluteTimeout: *absolute, Insecure: *insecure, Logger: log,
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
	url := "http://localhost:" + portOf(ln.Addr())
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

func portOf(a net.Addr) string {
	_, p, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return p
}
