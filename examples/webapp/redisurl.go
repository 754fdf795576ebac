package main

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/sessioncap/sessioncap"
)

// redisTarget is a parsed -redis URL: options for redis.NewUniversalClient
// and the event mode that suits the topology.
type redisTarget struct {
	opts   *redis.UniversalOptions
	events sessioncap.EventMode
	kind   string // "redis", "sentinel" or "cluster", for the startup log
}

// parseRedisURL understands three schemes:
//
//	redis://[user:password@]host:port[/db]            one server (rediss:// for TLS)
//	redis+sentinel://[user:password@]h1:p1,h2:p2/mymaster[/db]
//	redis+cluster://[user:password@]h1:p1,h2:p2        seed nodes of a Cluster
//
// The multi-host forms are parsed by hand because net/url accepts only one
// host. In the sentinel form the password is the Redis servers'; a
// sentinel_password query parameter sets the Sentinels' own.
func parseRedisURL(raw string) (*redisTarget, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, fmt.Errorf("redis URL %q: want scheme://...", raw)
	}
	switch scheme {
	case "redis", "rediss":
		o, err := redis.ParseURL(raw)
		if err != nil {
			return nil, err
		}
		return &redisTarget{kind: "redis", events: sessioncap.EventsPubSub, opts: &redis.UniversalOptions{
			Addrs: []string{o.Addr}, Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLSConfig,
		}}, nil
	case "redis+sentinel", "redis+cluster":
	default:
		return nil, fmt.Errorf("redis URL %q: unknown scheme %q (redis, rediss, redis+sentinel, redis+cluster)", raw, scheme)
	}
	rest, query, _ := strings.Cut(rest, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("redis URL query: %w", err)
	}
	o := &redis.UniversalOptions{}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		user, pass, _ := strings.Cut(rest[:at], ":")
		if o.Username, err = url.PathUnescape(user); err != nil {
			return nil, err
		}
		if o.Password, err = url.PathUnescape(pass); err != nil {
			return nil, err
		}
		rest = rest[at+1:]
	}
	hosts, path, _ := strings.Cut(rest, "/")
	for _, h := range strings.Split(hosts, ",") {
		if h = strings.TrimSpace(h); h == "" {
			continue
		}
		if !strings.Contains(h, ":") {
			h += ":6379"
			if scheme == "redis+sentinel" {
				h = strings.TrimSuffix(h, "6379") + "26379"
			}
		}
		o.Addrs = append(o.Addrs, h)
	}
	if len(o.Addrs) == 0 {
		return nil, fmt.Errorf("redis URL %q: no host", raw)
	}
	parts := strings.FieldsFunc(path, func(r rune) bool { return r == '/' })
	if scheme == "redis+cluster" {
		if len(parts) > 0 {
			return nil, fmt.Errorf("redis URL %q: a cluster has no master name or database", raw)
		}
		o.IsClusterMode = true
		return &redisTarget{kind: "cluster", events: sessioncap.EventsSharded, opts: o}, nil
	}
	if len(parts) == 0 || len(parts) > 2 {
		return nil, fmt.Errorf("redis URL %q: want redis+sentinel://hosts/mastername[/db]", raw)
	}
	o.MasterName = parts[0]
	if len(parts) == 2 {
		if o.DB, err = strconv.Atoi(parts[1]); err != nil {
			return nil, fmt.Errorf("redis URL %q: bad database %q", raw, parts[1])
		}
	}
	o.SentinelPassword = q.Get("sentinel_password")
	return &redisTarget{kind: "sentinel", events: sessioncap.EventsPubSub, opts: o}, nil
}
