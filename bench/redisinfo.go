package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// serverStats is the part of INFO a cell's figures are computed from.
// Everything is read on the server, so a contender cannot under-report its
// own traffic.
type serverStats struct {
	commands   int64   // total_commands_processed: includes commands run inside scripts
	reads      int64   // total_reads_processed: one per request batch read from a socket
	cpuSec     float64 // used_cpu_sys + used_cpu_user of the server process
	usedMemory int64
	clientsMem int64 // mem_clients_normal: the query and reply buffers of normal connections
	cmdstats   map[string]cmdStat
}

type cmdStat struct {
	calls int64
	usec  int64
}

func parseInfo(s string) serverStats {
	st := serverStats{cmdstats: map[string]cmdStat{}}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch k {
		case "total_commands_processed":
			st.commands, _ = strconv.ParseInt(v, 10, 64)
		case "total_reads_processed":
			st.reads, _ = strconv.ParseInt(v, 10, 64)
		case "used_cpu_sys", "used_cpu_user":
			f, _ := strconv.ParseFloat(v, 64)
			st.cpuSec += f
		case "used_memory":
			st.usedMemory, _ = strconv.ParseInt(v, 10, 64)
		case "mem_clients_normal":
			st.clientsMem, _ = strconv.ParseInt(v, 10, 64)
		}
		if name, ok := strings.CutPrefix(k, "cmdstat_"); ok {
			var c cmdStat
			for _, f := range strings.Split(v, ",") {
				fk, fv, _ := strings.Cut(f, "=")
				switch fk {
				case "calls":
					c.calls, _ = strconv.ParseInt(fv, 10, 64)
				case "usec":
					c.usec, _ = strconv.ParseInt(fv, 10, 64)
				}
			}
			st.cmdstats[name] = c
		}
	}
	return st
}

// info reads the sections the figures need over the control connection.
func info(ctx context.Context, ctl *redis.Client) (serverStats, error) {
	s, err := ctl.Info(ctx, "stats", "cpu", "memory", "commandstats").Result()
	if err != nil {
		return serverStats{}, err
	}
	return parseInfo(s), nil
}

// scriptUsec is the mean server time of one script call between two
// snapshots: fcall (the engine's function library), evalsha and eval (the
// EVAL form and its NOSCRIPT fallback), which is what `INFO commandstats`
// reports as usec_per_call when stats were reset.
func scriptUsec(a, b serverStats) float64 {
	var calls, usec int64
	for _, n := range []string{"fcall", "evalsha", "eval"} {
		calls += b.cmdstats[n].calls - a.cmdstats[n].calls
		usec += b.cmdstats[n].usec - a.cmdstats[n].usec
	}
	if calls == 0 {
		return 0
	}
	return float64(usec) / float64(calls)
}

// counter is a go-redis hook counting what the client sends: commands, and
// round trips (a pipeline is one).
type counter struct {
	cmds, trips atomic.Int64
}

func (c *counter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.cmds.Add(1)
		c.trips.Add(1)
		return next(ctx, cmd)
	}
}

func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.cmds.Add(int64(len(cmds)))
		c.trips.Add(1)
		return next(ctx, cmds)
	}
}

// configSet sets a server parameter, for the tuned memory row.
func configSet(ctx context.Context, ctl *redis.Client, k, v string) error {
	if err := ctl.ConfigSet(ctx, k, v).Err(); err != nil {
		return fmt.Errorf("CONFIG SET %s %s: %w", k, v, err)
	}
	return nil
}
