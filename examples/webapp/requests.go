package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"time"
)

// DefaultRequestTimeout bounds each request's work, its Redis calls
// included: the client has ContextTimeoutEnabled, so a stalled server
// fails the request after this long (503) instead of after go-redis's own
// read timeouts and retries.
const DefaultRequestTimeout = 5 * time.Second

type streamCtxKey struct{}

// withDeadline gives every request a context deadline of d (default
// DefaultRequestTimeout). An event stream outlives any deadline once open:
// it takes its lifetime from streamContext, while its session check and
// subscription still run under the deadline.
func withDeadline(d time.Duration, next http.Handler) http.Handler {
	if d <= 0 {
		d = DefaultRequestTimeout
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parent := r.Context()
		ctx, cancel := context.WithTimeout(parent, d)
		defer cancel()
		ctx = context.WithValue(ctx, streamCtxKey{}, parent)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// streamContext is the request's context without withDeadline's deadline:
// it ends when the client goes away or the server shuts down.
func streamContext(r *http.Request) context.Context {
	if p, ok := r.Context().Value(streamCtxKey{}).(context.Context); ok {
		return p
	}
	return r.Context()
}

// cookieWillDrop reports a request whose browser will drop the session
// cookie: the cookie is Secure (with the __Host- prefix), and the page came
// over plain HTTP from a host that is not loopback. Browsers make an
// exception for localhost and 127.0.0.0/8 only, so anywhere else sign-in
// would silently return an empty form; the pages say so instead.
func (a *app) cookieWillDrop(r *http.Request) bool {
	if a.cfg.Insecure || r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		return false
	}
	return !loopbackHost(r.Host)
}

// loopbackHost reports whether a Host header names this machine the way
// browsers treat as a secure context: localhost, *.localhost, or a
// loopback IP.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
