package sessioncap

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestConfigChangeRevivesNothing: a session idle past a 30 min idle timeout
// stays expired after a redeploy with 2 h, on the script path and on the
// HGET path; one still live when the new timeout arrives takes it at its
// next refresh.
func TestConfigChangeRevivesNothing(t *testing.T) {
	backends(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		old := b.engine(t, Config{MaxSessions: 3, IdleTimeout: 30 * time.Minute})
		idled := mustLogin(t, old, "redeploy", Meta{})
		b.clock.Add(20 * time.Minute)
		active := mustLogin(t, old, "redeploy", Meta{})
		b.clock.Add(25 * time.Minute) // idled: 45 min idle; active: 25 min
		for _, touch := range []int{DefaultTouchCacheSize, NoTouchCache} {
			redeployed := b.engine(t, Config{MaxSessions: 3, IdleTimeout: 2 * time.Hour, TouchCacheSize: touch})
			if _, err := redeployed.Validate(ctx, idled.Token); !errors.Is(err, ErrExpired) {
				t.Fatalf("touch cache %d: a session idle past its 30 min timeout, after a redeploy with 2 h: %v, want ErrExpired", touch, err)
			}
		}
		redeployed := b.engine(t, Config{MaxSessions: 3, IdleTimeout: 2 * time.Hour, TouchCacheSize: NoTouchCache})
		s := validOK(t, redeployed, active.Token) // refreshed under the new timeout
		if want := b.clock.Now().Add(2 * time.Hour); !s.ExpiresAt.Equal(want) {
			t.Fatalf("refreshed under 2 h: expires %v, want %v", s.ExpiresAt, want)
		}
		b.clock.Add(time.Hour)
		validOK(t, redeployed, active.Token)
		if n := liveCount(t, redeployed, "redeploy"); n != 1 {
			t.Fatalf("%d live sessions, want the active one", n)
		}
	})
}

// TestOldRecordFormatReadsAsExpired: a record of format 1 (first byte 'L')
// is a session this version does not read: its holder is told it expired,
// never that Redis is unavailable.
func TestOldRecordFormatReadsAsExpired(t *testing.T) {
	backends(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		for _, touch := range []int{DefaultTouchCacheSize, NoTouchCache} {
			e := b.engine(t, Config{TouchCacheSize: touch})
			res := mustLogin(t, e, "format-1", Meta{})
			tok, _ := parseToken(res.Token)
			k := e.keysOf("format-1")
			r, err := b.client.HGet(ctx, k.data, string(tok.sid[:])).Result()
			if err != nil {
				t.Fatal(err)
			}
			old := string(kindLiveV1) + r[1:offIdle] + r[offMetaLen:]
			if err := b.client.HSet(ctx, k.data, string(tok.sid[:]), old).Err(); err != nil {
				t.Fatal(err)
			}
			if _, err := e.Validate(ctx, res.Token); !errors.Is(err, ErrExpired) {
				t.Fatalf("touch cache %d: a format-1 record: %v, want ErrExpired", touch, err)
			}
			if err := e.Logout(ctx, res.Token); !errors.Is(err, ErrExpired) {
				t.Fatalf("Logout of a format-1 record: %v, want ErrExpired", err)
			}
		}
	})
}
