package sessioncap

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// canWait reports whether write can pin a connection of client to the
// primary of a slot: go-redis offers that on these two client types only
// (a failover client is a *redis.Client).
func canWait(client redis.UniversalClient) bool {
	switch client.(type) {
	case *redis.Client, *redis.ClusterClient:
		return true
	}
	return false
}

// write runs a script that ends sessions. With WaitReplicas set it pins one
// connection to the primary that owns the user's slot, runs the script and
// then WAIT on that same connection: WAIT only counts the writes made on its
// own connection, so a pooled client would wait for nothing.
func (e *Engine) write(ctx context.Context, op Op, s *luaScript, k userKeys, args []any) ([]any, error) {
	if e.cfg.WaitReplicas == 0 {
		return e.run(ctx, op, s, k, args)
	}
	var node *redis.Client
	switch c := e.rdb.(type) {
	case *redis.ClusterClient:
		n, err := c.MasterForKey(ctx, k.data)
		if err != nil {
			return nil, unavailable(string(op), err)
		}
		node = n
	case *redis.Client:
		node = c
	default: // New refuses such a client (see canWait)
		return nil, fmt.Errorf("%w: WaitReplicas with a %T", ErrInvalidConfig, e.rdb)
	}
	conn := node.Conn()
	defer conn.Close()
	reply, err := e.runOn(ctx, conn, op, s, k, args)
	if err != nil {
		return nil, err
	}
	n, err := conn.Wait(ctx, e.cfg.WaitReplicas, e.cfg.WaitTimeout).Result()
	if err != nil {
		return reply, unavailable(string(op), err)
	}
	if int(n) < e.cfg.WaitReplicas {
		return reply, fmt.Errorf("%w: %d of %d", ErrNotReplicated, n, e.cfg.WaitReplicas)
	}
	return reply, nil
}
