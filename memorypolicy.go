package sessioncap

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// MemoryPolicy is what CheckMemoryPolicy found on one Redis master.
type MemoryPolicy struct {
	// Addr is the master's address ("" for a client that names none).
	Addr string
	// Policy is its maxmemory-policy, as CONFIG GET reports it.
	Policy string
	// MaxMemory is its maxmemory in bytes; 0 means no limit.
	MaxMemory int64
	// SilentSignOuts reports that Redis may evict whole users when memory
	// is full: their sessions stop being valid (the engine fails closed)
	// with no tombstone to say why. True for every allkeys-* and
	// volatile-* policy under a maxmemory; every key the engine writes has
	// a TTL, so the volatile policies apply to it too. With noeviction,
	// a full Redis refuses sign-ins, and Validate, Logout, Revoke and
	// LogoutAll keep working (an ending may lose its why).
	SilentSignOuts bool
}

// CheckMemoryPolicy reads maxmemory and maxmemory-policy from every master
// the client reaches (CONFIG GET, which some managed services refuse: that
// is an ErrUnavailable), and logs one warning through Config.Logger for
// each master whose policy can sign users out silently. No policy can make
// the engine unsafe (losing any subset of a user's keys fails closed; see
// README), so this is a check to run at start-up, not a gate.
func (e *Engine) CheckMemoryPolicy(ctx context.Context) ([]MemoryPolicy, error) {
	var (
		mu  sync.Mutex
		out []MemoryPolicy
	)
	read := func(ctx context.Context, c *redis.Client) error {
		p, err := memoryPolicyOf(ctx, c)
		if err != nil {
			return err
		}
		mu.Lock()
		out = append(out, p)
		mu.Unlock()
		return nil
	}
	var err error
	switch c := e.rdb.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, read)
	case *redis.Client:
		err = read(ctx, c)
	default:
		return nil, fmt.Errorf("%w: CheckMemoryPolicy needs a *redis.Client or *redis.ClusterClient, not %T", ErrInvalidInput, e.rdb)
	}
	if err != nil {
		return nil, unavailable("check_memory_policy", err)
	}
	for _, p := range out {
		if p.SilentSignOuts {
			e.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "sessioncap: Redis may evict users when memory is full, signing them out without a reason",
				slog.String("addr", p.Addr), slog.String("maxmemory-policy", p.Policy), slog.Int64("maxmemory", p.MaxMemory))
		}
	}
	return out, nil
}

// memoryPolicyOf reads one server's policy.
func memoryPolicyOf(ctx context.Context, c *redis.Client) (MemoryPolicy, error) {
	p := MemoryPolicy{Addr: c.Options().Addr}
	for _, name := range []string{"maxmemory", "maxmemory-policy"} {
		m, err := c.ConfigGet(ctx, name).Result()
		if err != nil {
			return p, err
		}
		v, ok := m[name]
		if !ok {
			return p, fmt.Errorf("CONFIG GET %s: no value", name)
		}
		if name == "maxmemory" {
			if p.MaxMemory, err = strconv.ParseInt(v, 10, 64); err != nil {
				return p, fmt.Errorf("CONFIG GET maxmemory: %q", v)
			}
		} else {
			p.Policy = v
		}
	}
	p.SilentSignOuts = p.MaxMemory > 0 && (strings.HasPrefix(p.Policy, "allkeys-") || strings.HasPrefix(p.Policy, "volatile-"))
	return p, nil
}
