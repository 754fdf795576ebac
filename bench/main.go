// Command bench runs sessioncap side by side with the Redis floor (plain
// GET and SET of a same-size record) and its peers (scs with its go-redis
// store, and a port of the Django one-session-per-user recipe), in one
// process against one redis-server, and prints a markdown table.
//
//	cd bench                  # bench is its own module, so scs never
//	go run .                  # becomes a dependency of the library
//	go run . -short           # under a minute
//	go run . -redis 127.0.0.1:6379 -json out.json
//
// The server is flushed between phases: point -redis only at a throwaway
// server. Without -redis a private redis-server is started on loopback.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap"
	"github.com/sessioncap/sessioncap/internal/redistest"
)

type options struct {
	addr     string
	jsonPath string
	short    bool
	duration time.Duration
	runs     int
	conc     []int
	users    int
	memN     int
	outDir   string
	only     string
	skipMem  bool
	skipLoad bool
	replot   string
}

func main() {
	var o options
	var concFlag string
	flag.StringVar(&o.addr, "redis", "", "address of a throwaway redis-server (it is FLUSHALLed); default: start one")
	flag.StringVar(&o.jsonPath, "json", "", "also write the figures as JSON to this file")
	flag.BoolVar(&o.short, "short", false, "short cells, one run, 20,000 sessions for memory: under a minute")
	flag.DurationVar(&o.duration, "d", 0, "measured time per cell (default 3s, 400ms with -short)")
	flag.IntVar(&o.runs, "runs", 0, "runs of the whole grid; medians and min-max are reported (default 3, 1 with -short)")
	flag.StringVar(&concFlag, "c", "1,16,64", "client concurrency levels")
	flag.IntVar(&o.users, "users", 0, "users per load cell (default 5000, 1000 with -short)")
	flag.IntVar(&o.memN, "mem", 0, "sessions for the memory phase (default 100000, 20000 with -short)")
	flag.StringVar(&o.outDir, "out", "", "directory for the SVG chart (default bench/results)")
	flag.StringVar(&o.only, "only", "", "run only rows whose name contains one of these comma-separated strings")
	flag.BoolVar(&o.skipMem, "nomem", false, "skip the memory phase")
	flag.BoolVar(&o.skipLoad, "noload", false, "skip the load phase")
	flag.StringVar(&o.replot, "replot", "", "redraw the chart from a -json file and exit")
	flag.Parse()
	for _, f := range strings.Split(concFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 256 {
			fatalf("bad -c %q", concFlag)
		}
		o.conc = append(o.conc, n)
	}
	def := func(v *time.Duration, full, short time.Duration) {
		if *v == 0 {
			*v = full
			if o.short {
				*v = short
			}
		}
	}
	defInt := func(v *int, full, short int) {
		if *v == 0 {
			*v = full
			if o.short {
				*v = short
			}
		}
	}
	def(&o.duration, 3*time.Second, 400*time.Millisecond)
	defInt(&o.runs, 3, 1)
	defInt(&o.users, 5000, 1000)
	defInt(&o.memN, 100000, 20000)
	if o.outDir == "" {
		o.outDir = "results"
		if _, err := os.Stat(filepath.Join("bench", "go.mod")); err == nil {
			o.outDir = filepath.Join("bench", "results")
		}
	}
	if o.replot != "" {
		if err := replot(o); err != nil {
			fatalf("%v", err)
		}
		return
	}
	start := time.Now()
	if err := run(o); err != nil {
		fatalf("%v", err)
	}
	fmt.Fprintf(os.Stderr, "bench: done in %s\n", time.Since(start).Round(time.Second))
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(1)
}

func run(o options) error {
	ctx := context.Background()
	addr := o.addr
	if addr == "" {
		if !redistest.Available() {
			return fmt.Errorf("redis-server is not on PATH; install it or pass -redis")
		}
		dir, err := os.MkdirTemp("", "sessioncap-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		srv, err := redistest.Start(dir)
		if err != nil {
			return err
		}
		defer srv.Stop()
		addr = srv.Addr()
	}
	ctl := redis.NewClient(&redis.Options{Addr: addr})
	defer ctl.Close()
	ver, err := serverVersion(ctx, ctl)
	if err != nil {
		return err
	}
	rep := report{
		Command:     "cd bench && go run . " + strings.Join(os.Args[1:], " "),
		When:        time.Now().UTC().Format(time.RFC3339),
		Redis:       ver,
		GoVersion:   runtime.Version(),
		CPUs:        runtime.NumCPU(),
		Concurrency: o.conc,
		CellSeconds: o.duration.Seconds(),
		Runs:        o.runs,
		Users:       o.users,
	}
	if err := ctl.FlushAll(ctx).Err(); err != nil {
		return err
	}
	env := &env{clients: map[string]*redis.Client{}, counts: map[string]*counter{}}
	for _, g := range []string{"raw", "sessioncap", "scs", "naive", "cached", "pipelined", "duplex"} {
		o := &redis.Options{Addr: addr, PoolSize: 256, MinIdleConns: 64}
		if g == "cached" {
			// go-redis's client-side cache as sessioncap.CacheConfig sizes
			// it (MaxStaleness 1 s), for Config.CachedValidate.
			o.Protocol, o.ClientSideCacheConfig = 3, sessioncap.CacheConfig()
		}
		c := redis.NewClient(o)
		defer c.Close()
		cnt := &counter{}
		c.AddHook(cnt)
		env.clients[g], env.counts[g] = c, cnt
	}
	if env.recLen, err = recordLen(ctx, env.clients["sessioncap"]); err != nil {
		return err
	}
	rep.RecordBytes = env.recLen
	if !o.skipLoad {
		if err := loadPhase(ctx, ctl, env, o, &rep); err != nil {
			return err
		}
	}
	if !o.skipMem {
		if rep.Memory, err = memoryPhase(ctx, ctl, env, o.memN); err != nil {
			return err
		}
	}
	rep.EvictMisses = evictMiss.Load()
	if err := rep.write(os.Stdout, o); err != nil {
		return err
	}
	if !o.skipLoad {
		if err := os.MkdirAll(o.outDir, 0o755); err != nil {
			return err
		}
		// A -short run does not overwrite the chart of a full one.
		name := "throughput.svg"
		if o.short {
			name = "throughput-short.svg"
		}
		svg := filepath.Join(o.outDir, name)
		if err := os.WriteFile(svg, []byte(rep.svg()), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "bench: wrote %s\n", svg)
	}
	if o.jsonPath != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.jsonPath, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func serverVersion(ctx context.Context, ctl *redis.Client) (string, error) {
	s, err := ctl.Info(ctx, "server").Result()
	if err != nil {
		return "", fmt.Errorf("redis at %s: %w", ctl.Options().Addr, err)
	}
	for _, l := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "redis_version:"); ok {
			return v, nil
		}
	}
	return "unknown", nil
}

// recordLen is the size of one sessioncap record with the benchmark's
// metadata, which the raw floor rows store and read.
func recordLen(ctx context.Context, c *redis.Client) (int, error) {
	e, err := sessioncapEngine(c, "probe", 1)
	if err != nil {
		return 0, err
	}
	if _, err := e.Login(ctx, userName(0), scMeta(0)); err != nil {
		return 0, err
	}
	keys, err := c.Keys(ctx, "probe:*:d").Result()
	if err != nil || len(keys) != 1 {
		return 0, fmt.Errorf("record probe: %v %v", keys, err)
	}
	// The record is the hash's one field with a 16-byte session ID for a
	// name; the others are the index fields.
	all, err := c.HGetAll(ctx, keys[0]).Result()
	if err != nil {
		return 0, fmt.Errorf("record probe: %v", err)
	}
	n := 0
	for f, v := range all {
		if len(f) == 16 {
			n = len(v)
		}
	}
	if n == 0 {
		return 0, fmt.Errorf("record probe: no record in %q", keys[0])
	}
	return n, c.FlushAll(ctx).Err()
}

// cell is one measured (row, concurrency, run).
type cell struct {
	Ops         int64   `json:"ops"`
	Errors      int64   `json:"errors"`
	Seconds     float64 `json:"seconds"`
	OpsPerSec   float64 `json:"ops_per_sec"`
	P50us       float64 `json:"p50_us"`
	P99us       float64 `json:"p99_us"`
	TripsPerOp  float64 `json:"round_trips_per_op"`   // server: total_reads_processed delta
	SentPerOp   float64 `json:"commands_sent_per_op"` // client hook
	ClientTrips float64 `json:"client_round_trips_per_op"`
	RunPerOp    float64 `json:"commands_run_per_op"`  // server: total_commands_processed, inner script calls included
	CPUusPerOp  float64 `json:"server_cpu_us_per_op"` // used_cpu_sys+user delta
	ScriptUs    float64 `json:"script_usec_per_call"` // fcall + evalsha + eval usec_per_call, sessioncap rows
	CacheHits   float64 `json:"cache_hits_per_op"`    // go-redis client-side cache hits per op, cached rows
	FirstError  string  `json:"first_error,omitempty"`
}

// selected reports whether -only lets the row named name run.
func (o options) selected(name string) bool {
	if o.only == "" {
		return true
	}
	for _, s := range strings.Split(o.only, ",") {
		if s != "" && strings.Contains(name, s) {
			return true
		}
	}
	return false
}

func loadPhase(ctx context.Context, ctl *redis.Client, env *env, o options, rep *report) error {
	rows := map[string]*row{}
	for _, w := range workloads {
		if !o.selected(w.name) {
			continue
		}
		r := &row{Name: w.name, Group: w.group, Kind: w.kind, Cells: map[int][]cell{}}
		rows[w.name] = r
		rep.Rows = append(rep.Rows, r)
	}
	total := o.runs * len(o.conc) * len(rep.Rows)
	done := 0
	for run := 0; run < o.runs; run++ {
		for _, c := range o.conc {
			for _, w := range workloads {
				r := rows[w.name]
				if r == nil {
					continue
				}
				done++
				fmt.Fprintf(os.Stderr, "bench: [%d/%d] run %d, c=%d, %s\n", done, total, run+1, c, w.name)
				cl, err := measure(ctx, ctl, env, w, c, o)
				if err != nil {
					return fmt.Errorf("%s c=%d: %w", w.name, c, err)
				}
				r.Cells[c] = append(r.Cells[c], cl)
			}
			// Each cell leaves its keys behind; drop them so memory and
			// hash sizes do not drift across the grid.
			if err := ctl.FlushAll(ctx).Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

// measure prepares a workload, warms it up, and runs it for o.duration at
// concurrency c, with server snapshots taken right around the timed part.
func measure(ctx context.Context, ctl *redis.Client, env *env, w workload, c int, o options) (cell, error) {
	op, err := w.prepare(ctx, env, o.users)
	if err != nil {
		return cell{}, err
	}
	warm := max(o.duration/10, 100*time.Millisecond)
	drive(ctx, op, c, warm, 0)
	cnt := env.counts[w.group]
	before, err := info(ctx, ctl)
	if err != nil {
		return cell{}, err
	}
	c0, t0 := cnt.cmds.Load(), cnt.trips.Load()
	h0 := env.clients[w.group].CSCStats().Hits
	res := drive(ctx, op, c, o.duration, 1<<30)
	c1, t1 := cnt.cmds.Load(), cnt.trips.Load()
	h1 := env.clients[w.group].CSCStats().Hits
	after, err := info(ctx, ctl)
	if err != nil {
		return cell{}, err
	}
	out := cell{Ops: res.ops, Errors: res.errors, Seconds: res.elapsed.Seconds(), FirstError: res.firstErr}
	if res.ops == 0 {
		return out, fmt.Errorf("no operation completed: %s", res.firstErr)
	}
	n := float64(res.ops)
	out.OpsPerSec = n / res.elapsed.Seconds()
	out.P50us, out.P99us = res.quantile(0.50), res.quantile(0.99)
	// The INFO call that took the second snapshot is one read and one
	// command of its own.
	out.TripsPerOp = float64(after.reads-before.reads-1) / n
	out.RunPerOp = float64(after.commands-before.commands-1) / n
	out.SentPerOp = float64(c1-c0) / n
	out.ClientTrips = float64(t1-t0) / n
	out.CPUusPerOp = (after.cpuSec - before.cpuSec) * 1e6 / n
	out.ScriptUs = scriptUsec(before, after)
	out.CacheHits = float64(h1-h0) / n
	if res.errors > 0 {
		fmt.Fprintf(os.Stderr, "bench:   %d errors, first: %s\n", res.errors, res.firstErr)
	}
	return out, nil
}

type driveResult struct {
	ops, errors int64
	elapsed     time.Duration
	lat         []time.Duration
	firstErr    string
}

func (r driveResult) quantile(q float64) float64 {
	if len(r.lat) == 0 {
		return 0
	}
	i := min(int(q*float64(len(r.lat))), len(r.lat)-1)
	return float64(r.lat[i]) / float64(time.Microsecond)
}

// drive runs op on c goroutines until d has passed. Each op's latency is
// kept (up to maxSamples per worker) for exact quantiles.
func drive(ctx context.Context, op func(context.Context, int) error, c int, d time.Duration, maxSamples int) driveResult {
	type part struct {
		ops, errs int64
		lat       []time.Duration
		err       error
	}
	parts := make([]part, c)
	var seq atomicCounter
	deadline := time.Now().Add(d)
	start := time.Now()
	doneCh := make(chan struct{})
	for w := 0; w < c; w++ {
		go func(p *part) {
			defer func() { doneCh <- struct{}{} }()
			if maxSamples > 0 {
				p.lat = make([]time.Duration, 0, 4096)
			}
			for time.Now().Before(deadline) {
				i := seq.next()
				t := time.Now()
				err := op(ctx, i)
				el := time.Since(t)
				p.ops++
				if err != nil {
					p.errs++
					if p.err == nil {
						p.err = err
					}
				}
				if len(p.lat) < maxSamples {
					p.lat = append(p.lat, el)
				}
			}
		}(&parts[w])
	}
	for w := 0; w < c; w++ {
		<-doneCh
	}
	res := driveResult{elapsed: time.Since(start)}
	for _, p := range parts {
		res.ops += p.ops
		res.errors += p.errs
		res.lat = append(res.lat, p.lat...)
		if p.err != nil && res.firstErr == "" {
			res.firstErr = p.err.Error()
		}
	}
	slices.Sort(res.lat)
	return res
}

// replot redraws the chart of an earlier run from its -json output, so a
// change to the drawing does not need a new run.
func replot(o options) error {
	b, err := os.ReadFile(o.replot)
	if err != nil {
		return err
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		return err
	}
	svg := filepath.Join(o.outDir, "throughput.svg")
	if err := os.WriteFile(svg, []byte(rep.svg()), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: wrote %s\n", svg)
	return nil
}
