package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/sessioncap/sessioncap"
)

// redisTarget is a parsed -redis URL: the options of go-redis's own URL
// parser for the topology, and the event mode that suits it. Exactly one
// of single, failover and cluster is set.
type redisTarget struct {
	single   *redis.Options
	failover *redis.FailoverOptions
	cluster  *redis.ClusterOptions
	events   sessioncap.EventMode
	kind     string   // "redis", "sentinel" or "cluster", for the startup log
	addrs    []string // the server, Sentinel or seed addresses, for the startup log
}

// client builds the go-redis client for t.
func (t *redisTarget) client() redis.UniversalClient {
	switch {
	case t.cluster != nil:
		return redis.NewClusterClient(t.cluster)
	case t.failover != nil:
		return redis.NewFailoverClient(t.failover)
	}
	return redis.NewClient(t.single)
}

// parseRedisURL understands three schemes:
//
//	redis://[user:password@]host:port[/db][?options]           one server (rediss:// for TLS)
//	redis+sentinel://[user:password@]h1:p1,h2:p2/mymaster[/db][?options]
//	redis+cluster://[user:password@]h1:p1,h2:p2[?options]      seed nodes of a Cluster
//
// Each is handed to go-redis's own parser (redis.ParseURL,
// redis.ParseFailoverURL, redis.ParseClusterURL), so every option those
// accept in the query works here too and is kept: dial_timeout,
// read_timeout, write_timeout, pool_size, max_retries and the rest, as
// documented by go-redis. The multi-host forms are rewritten into the
// single-host-plus-addr= form go-redis parses, because net/url accepts only
// one host. In the sentinel form the user and password are the Redis
// servers'; a sentinel_password (and sentinel_username) query parameter
// sets the Sentinels' own.
//
// Every client gets ContextTimeoutEnabled, so a request's deadline bounds
// its Redis calls, whatever the URL says.
func parseRedisURL(raw string) (*redisTarget, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, fmt.Errorf("redis URL %q: want scheme://host:port", raw)
	}
	switch scheme {
	case "redis", "rediss":
		o, err := redis.ParseURL(raw)
		if err != nil {
			return nil, fmt.Errorf("redis URL: %w", err)
		}
		o.ContextTimeoutEnabled = true
		return &redisTarget{kind: "redis", events: sessioncap.EventsPubSub, single: o, addrs: []string{o.Addr}}, nil
	case "redis+sentinel", "redis+cluster":
	default:
		return nil, fmt.Errorf("redis URL %q: unknown scheme %q (redis, rediss, redis+sentinel, redis+cluster)", raw, scheme)
	}
	rest, query, _ := strings.Cut(rest, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("redis URL query: %w", err)
	}
	var userinfo *url.Userinfo
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		u, err := url.Parse("redis://" + rest[:at+1] + "host")
		if err != nil {
			return nil, fmt.Errorf("redis URL %q: bad user or password", raw)
		}
		userinfo = u.User
		rest = rest[at+1:]
	}
	hosts, path, _ := strings.Cut(rest, "/")
	defPort := "6379"
	if scheme == "redis+sentinel" {
		defPort = "26379"
	}
	var addrs []string
	for _, h := range strings.Split(hosts, ",") {
		if h = strings.TrimSpace(h); h == "" {
			continue
		}
		if !strings.Contains(strings.TrimPrefix(h, "["), ":") || strings.HasSuffix(h, "]") {
			h += ":" + defPort
		}
		addrs = append(addrs, h)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("redis URL %q: no host", raw)
	}
	for _, a := range addrs[1:] {
		q.Add("addr", a)
	}
	parts := strings.FieldsFunc(path, func(r rune) bool { return r == '/' })

	if scheme == "redis+cluster" {
		if len(parts) > 0 {
			return nil, fmt.Errorf("redis URL %q: a cluster has no master name or database", raw)
		}
		u := &url.URL{Scheme: "redis", User: userinfo, Host: addrs[0], RawQuery: q.Encode()}
		o, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return nil, fmt.Errorf("redis URL: %w", err)
		}
		o.ContextTimeoutEnabled = true
		return &redisTarget{kind: "cluster", events: sessioncap.EventsSharded, cluster: o, addrs: o.Addrs}, nil
	}

	if len(parts) == 0 || len(parts) > 2 {
		return nil, fmt.Errorf("redis URL %q: want redis+sentinel://hosts/mastername[/db]", raw)
	}
	q.Set("master_name", parts[0])
	// go-redis reads the URL's user and password as the Sentinels' and the
	// servers' from the query; this scheme has always meant the opposite.
	sentinelUser, sentinelPass := q.Get("sentinel_username"), q.Get("sentinel_password")
	q.Del("sentinel_username")
	q.Del("sentinel_password")
	u := &url.URL{Scheme: "redis", Host: addrs[0], RawQuery: q.Encode()}
	if len(parts) == 2 {
		u.Path = "/" + parts[1]
	}
	o, err := redis.ParseFailoverURL(u.String())
	if err != nil {
		return nil, fmt.Errorf("redis URL: %w", err)
	}
	if userinfo != nil {
		o.Username = userinfo.Username()
		o.Password, _ = userinfo.Password()
	}
	o.SentinelUsername, o.SentinelPassword = sentinelUser, sentinelPass
	o.ContextTimeoutEnabled = true
	return &redisTarget{kind: "sentinel", events: sessioncap.EventsPubSub, failover: o, addrs: o.SentinelAddrs}, nil
}

// slogRedisLogger sends go-redis's own log lines (pool dial failures,
// Sentinel and Cluster topology changes) through the app's slog logger, so
// they are structured like every other line instead of interleaving in
// go-redis's own format. Install it with redis.SetLogger; go-redis has one
// logger per process.
type slogRedisLogger struct{ log *slog.Logger }

func (l slogRedisLogger) Printf(ctx context.Context, format string, v ...any) {
	msg := strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: ")
	l.log.Log(ctx, slog.LevelWarn, msg, slog.String("component", "go-redis"))
}
