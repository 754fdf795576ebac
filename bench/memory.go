package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

type atomicCounter struct{ n atomic.Int64 }

func (c *atomicCounter) next() int { return int(c.n.Add(1) - 1) }

// memRow is Redis memory per live session for one way of storing them.
type memRow struct {
	Name            string  `json:"name"`
	Users           int     `json:"users"`
	SessionsPerUser int     `json:"sessions_per_user"`
	Sessions        int     `json:"sessions"`
	BytesPerSession float64 `json:"bytes_per_session"`
	Tuned           string  `json:"tuned,omitempty"`
}

// memoryPhase stores n sessions per contender on an empty server and
// divides the used_memory growth by n. Growth, not a total, so the server's
// own baseline (about 1 MB) is not charged to anybody.
func memoryPhase(ctx context.Context, ctl *redis.Client, env *env, n int) ([]memRow, error) {
	type spec struct {
		name    string
		perUser int
		tuned   string
		fill    func(ctx context.Context, users, perUser int) error
	}
	raw := func(ctx context.Context, users, _ int) error {
		c := env.clients["raw"]
		rec := strings.Repeat("r", env.recLen)
		return parallel(ctx, users, func(ctx context.Context, i int) error {
			return c.Set(ctx, fmt.Sprintf("raw:%d", i), rec, 24*time.Hour).Err()
		})
	}
	// scCap signs perUser sessions in per user under a cap of limit, or of
	// perUser when limit is 0.
	scCap := func(limit int) func(ctx context.Context, users, perUser int) error {
		return func(ctx context.Context, users, perUser int) error {
			n := limit
			if n == 0 {
				n = perUser
			}
			e, err := sessioncapEngine(env.clients["sessioncap"], "sc", n)
			if err != nil {
				return err
			}
			return parallel(ctx, users*perUser, func(ctx context.Context, i int) error {
				_, err := e.Login(ctx, userName(i%users), scMeta(i))
				return err
			})
		}
	}
	sc, sc3 := scCap(0), scCap(3)
	scsFill := func(ctx context.Context, users, _ int) error {
		sm := scsManager(env.clients["scs"], "scs")
		return parallel(ctx, users, func(ctx context.Context, i int) error {
			_, err := scsLogin(ctx, sm, i)
			return err
		})
	}
	naiveFill := func(ctx context.Context, users, _ int) error {
		nv := &naive{c: env.clients["naive"], p: "nv"}
		return parallel(ctx, users, func(ctx context.Context, i int) error {
			_, err := nv.login(ctx, i)
			return err
		})
	}
	const tuned = "hash-max-listpack-value 1024"
	specs := []spec{
		{"raw SET of the record (floor)", 1, "", raw},
		{"sessioncap, cap 1", 1, "", sc},
		{"sessioncap, cap 3, 2 per user", 2, "", sc3},
		{"sessioncap, cap 3, 3 per user", 3, "", sc},
		{"sessioncap, cap 1", 1, tuned, sc},
		{"sessioncap, cap 3, 2 per user", 2, tuned, sc3},
		{"sessioncap, cap 3, 3 per user", 3, tuned, sc},
		{"scs (go-redis store)", 1, "", scsFill},
		{"naive (Django recipe)", 1, "", naiveFill},
	}
	var out []memRow
	for _, s := range specs {
		users := n / s.perUser
		sessions := users * s.perUser
		if err := ctl.FlushAll(ctx).Err(); err != nil {
			return nil, err
		}
		val := "64"
		if s.tuned != "" {
			val = "1024"
		}
		if err := configSet(ctx, ctl, "hash-max-listpack-value", val); err != nil {
			return nil, err
		}
		before, err := settled(ctx, ctl)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "bench: memory: %s%s, %d users x %d\n", s.name, suffix(s.tuned), users, s.perUser)
		if err := s.fill(ctx, users, s.perUser); err != nil {
			return nil, fmt.Errorf("memory %s: %w", s.name, err)
		}
		after, err := settled(ctx, ctl)
		if err != nil {
			return nil, err
		}
		// The connections' buffers are not the sessions' (see settled).
		stored := (after.usedMemory - after.clientsMem) - (before.usedMemory - before.clientsMem)
		fmt.Fprintf(os.Stderr, "bench: memory: %s%s: %d bytes stored; client buffers %+d bytes, not counted\n",
			s.name, suffix(s.tuned), stored, after.clientsMem-before.clientsMem)
		out = append(out, memRow{
			Name: s.name, Users: users, SessionsPerUser: s.perUser, Sessions: sessions,
			BytesPerSession: float64(stored) / float64(sessions),
			Tuned:           s.tuned,
		})
	}
	if err := configSet(ctx, ctl, "hash-max-listpack-value", "64"); err != nil {
		return nil, err
	}
	return out, ctl.FlushAll(ctx).Err()
}

// settled reads INFO once used_memory and the connections' memory
// (mem_clients_normal) have held still for a second. The bench keeps
// hundreds of connections open, and Redis sizes each one's reply buffer
// and recounts its memory in its client cron, a second or more after the
// traffic that changed it: a baseline read too early once carried 5 MB
// that the fill then freed (53 bytes a session too few), and client
// buffers counted as stored moved every row by ±13 bytes between runs.
func settled(ctx context.Context, ctl *redis.Client) (serverStats, error) {
	prev, err := info(ctx, ctl)
	if err != nil {
		return prev, err
	}
	for range 10 {
		select {
		case <-ctx.Done():
			return prev, ctx.Err()
		case <-time.After(time.Second):
		}
		cur, err := info(ctx, ctl)
		if err != nil {
			return cur, err
		}
		if d := cur.usedMemory - prev.usedMemory; d > -16<<10 && d < 16<<10 && cur.clientsMem == prev.clientsMem {
			return cur, nil
		}
		prev = cur
	}
	// A server that never holds still (someone else's traffic) still gets
	// a figure, marked as such, rather than a failed run.
	fmt.Fprintln(os.Stderr, "bench: memory: used_memory did not hold still for 10 s; figure read anyway")
	return prev, nil
}

func suffix(t string) string {
	if t == "" {
		return ""
	}
	return " (tuned: " + t + ")"
}
