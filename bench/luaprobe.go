package main

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/redis/go-redis/v9"
)

// luaProbe times variants of the login script with the arguments the real
// Engine sends. The engine runs Login as usual; a hook swaps the script's
// SHA in each EVALSHA for the variant's, so every variant sees exactly the
// engine's KEYS and ARGV and the same evicting workload (users at cap 3).
// Variants are scripts in bench/luaprobe/*.lua; one whose first line is
// "-- prelude: FILE" runs with that file of the same folder prepended (files
// starting with "_" are such shared preludes, not variants; "lib.lua" is
// the engine's own, lua/lib.lua, and "lib.lua locals" its part before the
// first function). The server
// time per call comes from INFO commandstats.
func luaProbe(ctx context.Context, ctl *redis.Client, addr string, o options) error {
	dir := "luaprobe"
	libDir := filepath.Join("..", "lua")
	if _, err := os.Stat(filepath.Join("bench", "go.mod")); err == nil {
		dir = filepath.Join("bench", "luaprobe")
		libDir = "lua"
	}
	lib, err := os.ReadFile(filepath.Join(libDir, "lib.lua"))
	if err != nil {
		return err
	}
	login, err := os.ReadFile(filepath.Join(libDir, "login.lua"))
	if err != nil {
		return err
	}
	sum := sha1.Sum(append(lib, login...))
	engineSHA := hex.EncodeToString(sum[:])
	files, err := filepath.Glob(filepath.Join(dir, "*.lua"))
	if err != nil {
		return err
	}
	sort.Strings(files)
	type variant struct {
		name, sha string
		usec, cpu []float64
		cmds      float64
	}
	var vs []*variant
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), "_") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if first, _, _ := strings.Cut(string(src), "\n"); strings.HasPrefix(first, "-- prelude: ") {
			// "lib.lua" is the engine's own prelude; "lib.lua locals" is
			// its part before the first function, cut here rather than
			// copied, so the variant follows the engine.
			name, locals := strings.CutSuffix(strings.TrimPrefix(first, "-- prelude: "), " locals")
			from := dir
			if name == "lib.lua" {
				from = libDir
			}
			prelude, err := os.ReadFile(filepath.Join(from, name))
			if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			if locals {
				i := strings.Index(string(prelude), "\nlocal function ")
				if i < 0 {
					return fmt.Errorf("%s: no function in %s", f, name)
				}
				prelude = prelude[:i+1]
			}
			src = append(prelude, src...)
		}
		sha, err := ctl.ScriptLoad(ctx, string(src)).Result()
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if o.only != "" && !strings.Contains(filepath.Base(f), o.only) {
			continue
		}
		vs = append(vs, &variant{name: filepath.Base(f), sha: sha})
	}
	vs = append(vs, &variant{name: "current lua/lib.lua+login.lua", sha: engineSHA})
	c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 64})
	defer c.Close()
	var cur string
	c.AddHook(swapHook{engineSHA: engineSHA, to: &cur})
	users := 1000
	// Many short chunks: a preempted chunk is slow, and the minimum over
	// many finds the undisturbed ones.
	chunks, per := 150, 100
	if o.short {
		chunks = 20
	}
	if err := ctl.FlushAll(ctx).Err(); err != nil {
		return err
	}
	e, err := sessioncapEngine(c, "p", 3)
	if err != nil {
		return err
	}
	// Reach the cap, plus one round so tombstones exist.
	cur = engineSHA
	for i := 0; i < users*4; i++ {
		if _, err := e.Login(ctx, userName(i%users), scMeta(i%users)); err != nil {
			return err
		}
	}
	// Variants take turns in short chunks on the same users, so a noisy
	// neighbour on the shared cores hits them all alike; the minimum over
	// chunks is the least disturbed figure.
	seq := 0
	for ch := 0; ch < chunks; ch++ {
		for _, v := range vs {
			cur = v.sha
			before, err := info(ctx, ctl)
			if err != nil {
				return err
			}
			for k := 0; k < per; k++ {
				i := seq % users
				seq++
				res, err := e.Login(ctx, userName(i), scMeta(i))
				if err != nil {
					return fmt.Errorf("%s: %w", v.name, err)
				}
				if len(res.Evicted) != 1 {
					return fmt.Errorf("%s: login evicted %d, want 1", v.name, len(res.Evicted))
				}
			}
			after, err := info(ctx, ctl)
			if err != nil {
				return err
			}
			v.usec = append(v.usec, scriptUsec(before, after))
			v.cmds = float64(after.commands-before.commands-1) / float64(per)
			v.cpu = append(v.cpu, (after.cpuSec-before.cpuSec)*1e6/float64(per))
		}
	}
	fmt.Println("| variant | evalsha µs/call: min | median | server CPU µs/login: min | median | cmds run/login |\n|---|--:|--:|--:|--:|--:|")
	for _, v := range vs {
		s, c := summarize(v.usec), summarize(v.cpu)
		fmt.Printf("| %s | %.2f | %.2f | %.2f | %.2f | %.1f |\n", v.name, s.lo, s.med, c.lo, c.med, v.cmds)
	}
	// A profiling variant leaves per-section microseconds in "prof".
	if prof, err := ctl.HGetAll(ctx, "prof").Result(); err == nil && len(prof) > 0 {
		fmt.Println("\nprofiling variant, total µs by section:", prof)
	}
	return nil
}

// swapHook points the engine's login EVALSHA at the variant under test.
type swapHook struct {
	engineSHA string
	to        *string
}

func (h swapHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h swapHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		a := cmd.Args()
		if len(a) > 1 && strings.EqualFold(fmt.Sprint(a[0]), "evalsha") && a[1] == h.engineSHA {
			a[1] = *h.to
		}
		return next(ctx, cmd)
	}
}

func (h swapHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
