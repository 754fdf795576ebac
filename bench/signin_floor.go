package main

import (
	"context"
	_ "embed"
	"fmt"
	"strings"
	"time"
)

// signinFloorLib is a bench-only function library whose one function runs
// the commands of the engine's evicting sign-in without its logic, so the
// table shows how much of the login script's time is the commands
// themselves (bench/NOTES.md, tenth round).
//
//go:embed signin_floor.lua
var signinFloorLib string

// signinFloor loads the library and returns the operation: user u's k-th
// sign-in writes session k, evicts k-1 and drops k-2's tombstone, with the
// login's 2 keys and 18 arguments.
func signinFloor(ctx context.Context, env *env, users int) (func(ctx context.Context, i int) error, error) {
	c := env.clients["raw"]
	if err := c.FunctionLoadReplace(ctx, signinFloorLib).Err(); err != nil {
		return nil, fmt.Errorf("FUNCTION LOAD bench floor: %w", err)
	}
	p := env.prefix("rawf")
	rec := strings.Repeat("r", env.recLen)
	sid := func(u, k int) string { return fmt.Sprintf("%08d%08d", u, k) }
	return func(ctx context.Context, i int) error {
		u, k := i%users, i/users
		tag := fmt.Sprintf("%s:{%022d}", p, u)
		now := fmt.Sprint(time.Now().UnixMilli())
		args := []any{now, "1800000", "0", "7776000000", "", tag + ":e", "86400000", "16",
			sid(u, k), rec, "1", "0", strings.Repeat("m", 71), "", now,
			sid(u, k-1), sid(u, k-2), "4"}
		return c.FCall(ctx, "signin_floor", []string{tag + ":d", tag + ":h"}, args...).Err()
	}, nil
}
