package sessioncap

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
)

// The benchmarks run on the real redis-server TestMain started (or the one
// SESSIONCAP_REDIS_ADDR names): miniredis timings say nothing about Redis.
// Run them alone with:
//
//	go test -run '^$' -bench . -benchmem
//
// Each session carries what a browser sign-in would: an IP, a realistic
// user agent and a 200-byte app value, so the record read by Validate and
// the string read by the raw GET have a realistic size.
const (
	benchUA    = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	benchUsers = 1000
)

var benchValue = strings.Repeat("v", 200)

func benchMeta(i int) Meta {
	return Meta{
		IP:        fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255),
		UserAgent: benchUA,
		Values:    map[string]string{"app": benchValue},
	}
}

// benchClient connects to the real Redis or skips loudly: a benchmark that
// silently measured nothing would read as a result.
func benchClient(b *testing.B) *redis.Client {
	b.Helper()
	if realRedis == "" {
		b.Skip("SKIPPED: no real redis-server; benchmarks need one (install redis-server or set SESSIONCAP_REDIS_ADDR)")
	}
	c := redis.NewClient(&redis.Options{Addr: realRedis, PoolSize: 128})
	b.Cleanup(func() { c.Close() })
	return c
}

// dropPrefix deletes a benchmark's keys, so a long -count run on a shared
// server does not grow without bound.
func dropPrefix(b *testing.B, c *redis.Client, prefix string) {
	b.Helper()
	ctx := context.Background()
	iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			c.Unlink(ctx, batch...)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		c.Unlink(ctx, batch...)
	}
	if err := iter.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "bench cleanup of %s: %v\n", prefix, err)
	}
}

// BenchmarkLogin signs in round-robin over benchUsers users. With a cap of 3
// every login after the first three of a user evicts one session, which is
// the expensive path of the login script.
func BenchmarkLogin(b *testing.B) {
	for _, limit := range []int{1, 3} {
		b.Run(fmt.Sprintf("cap%d", limit), func(b *testing.B) {
			c := benchClient(b)
			prefix := "bl" + newPrefix()
			e, err := New(c, Config{MaxSessions: limit, KeyPrefix: prefix})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { dropPrefix(b, c, prefix) })
			users := make([]string, benchUsers)
			metas := make([]Meta, benchUsers)
			for i := range users {
				users[i] = fmt.Sprintf("user-%06d@example.com", i)
				metas[i] = benchMeta(i)
			}
			var seq atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					i := int(seq.Add(1)) % benchUsers
					if _, err := e.Login(ctx, users[i], metas[i]); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkValidate compares Validate with the floor under it: a plain
// go-redis GET of a string as long as the session record, on the same
// server and in the same invocation, so allocations and time per op can be
// read side by side.
func BenchmarkValidate(b *testing.B) {
	c := benchClient(b)
	ctx := context.Background()
	prefix := "bv" + newPrefix()
	b.Cleanup(func() { dropPrefix(b, c, prefix) })
	recLen := 0
	// sessioncap-userkey is the same with Config.UserKey set: Validate then
	// checks the token's digest with a pooled HMAC instead of a SHA-256.
	for _, v := range []struct {
		name string
		key  []byte
	}{{"sessioncap", nil}, {"sessioncap-userkey", testUserKey}} {
		e, err := New(c, Config{KeyPrefix: prefix, UserKey: v.key})
		if err != nil {
			b.Fatal(err)
		}
		tokens := make([]string, benchUsers)
		for i := range tokens {
			res, err := e.Login(ctx, fmt.Sprintf("user-%06d@example.com", i), benchMeta(i))
			if err != nil {
				b.Fatal(err)
			}
			tokens[i] = res.Token
			k := e.keysOf(fmt.Sprintf("user-%06d@example.com", i))
			r, err := c.HGet(ctx, k.data, string(res.Session.sid[:])).Result()
			if err != nil {
				b.Fatal(err)
			}
			recLen = len(r)
		}
		b.Run(v.name, func(b *testing.B) {
			var seq atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					t := tokens[int(seq.Add(1))%benchUsers]
					if _, err := e.Validate(ctx, t); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
	rawKeys := make([]string, benchUsers)
	rec := strings.Repeat("r", recLen)
	for i := range rawKeys {
		rawKeys[i] = fmt.Sprintf("%s:raw:%06d", prefix, i)
		if err := c.Set(ctx, rawKeys[i], rec, 0).Err(); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("record %d bytes", recLen)

	b.Run("rawGET", func(b *testing.B) {
		var seq atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				k := rawKeys[int(seq.Add(1))%benchUsers]
				if _, err := c.Get(ctx, k).Result(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
