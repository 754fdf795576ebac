package sessioncap

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessioncap/sessioncap/internal/redistest"
)

// Redis replicates asynchronously: a write is acknowledged to the client
// before any replica has it. If the primary dies in that moment and a
// replica is promoted, the write is gone. For sessioncap that means:
//
//   - a session that was just created may vanish (its token reads as
//     ErrExpired): the user signs in again;
//   - a session that was just ended (logout, revoke, eviction) may come back
//     to life: the one outcome that matters for security.
//
// Config.WaitReplicas closes the second hole for deliberate endings: Logout,
// LogoutOthers, LogoutAll and Revoke run WAIT on the connection that made
// the write and return only once that many replicas have it, or
// ErrNotReplicated after WaitTimeout. These tests check both halves against
// a replica stopped with SIGSTOP, and read the replica directly.

func TestWaitReplicasSentinel(t *testing.T) {
	if testing.Short() {
		t.Skip("pauses a replica")
	}
	s := sharedSentinel(t)
	client := newFailoverClient(s)
	defer client.Close()
	replicas, err := s.Replicas()
	if err != nil || len(replicas) != 1 {
		t.Fatalf("replicas: %v, %v", replicas, err)
	}
	checkWaitReplicas(t, client, func(string) (*redistest.Server, []string) { return replicas[0], nil })
	if err := s.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestWaitReplicasCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("pauses a replica")
	}
	c := sharedCluster(t)
	client := newClusterClient(c)
	defer client.Close()
	checkWaitReplicas(t, client, func(key string) (*redistest.Server, []string) {
		m, err := c.MasterOfKey(key)
		if err != nil {
			t.Fatal(err)
		}
		reps, err := c.ReplicasOf(m)
		if err != nil || len(reps) != 1 {
			t.Fatalf("replicas of %d: %v, %v", m.Port, reps, err)
		}
		return reps[0], []string{"READONLY"}
	})
	if err := c.WaitHealthy(30 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// checkWaitReplicas needs replicaOf to name the one replica of the primary
// that holds key, and the command that lets a client read from it.
func checkWaitReplicas(t *testing.T, client redis.UniversalClient, replicaOf func(key string) (*redistest.Server, []string)) {
	ctx := context.Background()
	prefix := newPrefix()
	const user = "wait-replicas-user"
	k := keysFor(prefix, userDigest(user))
	replica, prelude := replicaOf(k.data)
	onReplica := func(res *LoginResult) string {
		t.Helper()
		sid, err := parsePublicID(res.SessionID)
		if err != nil {
			t.Fatal(err)
		}
		var cmds [][]string
		if prelude != nil {
			cmds = append(cmds, prelude)
		}
		cmds = append(cmds, []string{"HGET", k.data, string(sid[:])})
		out, err := redistest.CallMany(replica.Addr(), 2*time.Second, cmds...)
		if err != nil {
			t.Fatalf("reading the replica: %v", err)
		}
		v := out[len(out)-1]
		if re, ok := v.(redistest.ReplyError); ok {
			t.Fatalf("reading the replica: %v", re)
		}
		r, _ := v.(string)
		return r
	}
	resumed := false
	pause := func() {
		t.Helper()
		if err := replica.Pause(); err != nil {
			t.Fatal(err)
		}
		resumed = false
	}
	resume := func() {
		if !resumed {
			resumed = true
			_ = replica.Resume()
		}
	}
	defer resume()

	// 1. WaitReplicas=1: Logout does not return while the replica is
	// stopped, returns nil once it runs again, and by then the replica has
	// the tombstone.
	e, err := New(client, Config{KeyPrefix: prefix, MaxSessions: 5, WaitReplicas: 1, WaitTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	res := mustLogin(t, e, user, Meta{})
	pause()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- e.Logout(ctx, res.Token) }()
	select {
	case err := <-done:
		t.Fatalf("Logout returned (%v) after %v while the only replica was stopped", err, time.Since(start))
	case <-time.After(400 * time.Millisecond):
	}
	resume()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Logout once the replica ran again: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Logout still blocked 15 s after the replica resumed")
	}
	t.Logf("Logout with WaitReplicas=1 returned %v after the replica was stopped, once it resumed", time.Since(start).Round(time.Millisecond))
	if r := onReplica(res); len(r) == 0 || r[0] != codeLogout {
		t.Fatalf("replica holds %q for the logged-out session, want a logout tombstone", r)
	}

	// 2. The replica stays stopped: ErrNotReplicated after WaitTimeout, and
	// the ending did happen on the primary.
	e2, err := New(client, Config{KeyPrefix: prefix, MaxSessions: 5, WaitReplicas: 1, WaitTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	res2 := mustLogin(t, e2, user, Meta{})
	pause()
	start = time.Now()
	err = e2.Logout(ctx, res2.Token)
	took := time.Since(start)
	resume()
	if !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("Logout with the replica stopped: %v, want ErrNotReplicated", err)
	}
	if took > 300*time.Millisecond+2*time.Second {
		t.Errorf("Logout took %v with WaitTimeout 300ms", took)
	}
	if _, err := e2.Validate(ctx, res2.Token); !errors.Is(err, ErrRevoked) {
		t.Fatalf("Validate after an unreplicated Logout: %v, want ErrRevoked (the primary has it)", err)
	}
	t.Logf("Logout with the replica stopped: %v after %v", err, took.Round(time.Millisecond))

	// 3. Without WaitReplicas the same Logout returns at once with the
	// replica stopped: at that moment only the primary knows the session
	// ended, which is the window a failover can reopen.
	e0, err := New(client, Config{KeyPrefix: prefix, MaxSessions: 5})
	if err != nil {
		t.Fatal(err)
	}
	res3 := mustLogin(t, e0, user, Meta{})
	pause()
	err = e0.Logout(ctx, res3.Token)
	resume()
	if err != nil {
		t.Fatalf("Logout without WaitReplicas, replica stopped: %v", err)
	}
}
