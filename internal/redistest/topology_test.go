package redistest

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"
)

// report counts the tests that ran on each backend (see Report.Finish).
var report = NewReport("redistest", BackendRedis, BackendCluster, BackendSentinel)

func TestMain(m *testing.M) { os.Exit(report.Finish(m.Run())) }

// needServer records t under backend, and skips it (or, with
// SESSIONCAP_REQUIRE_REDIS=1, fails it) when redis-server is missing.
func needServer(t *testing.T, backend string) {
	t.Helper()
	if !Available() {
		report.Missing(t, backend, "redis-server is not on PATH (apt-get install redis-server)")
	}
	report.Use(t, backend)
}

// TestKeySlotReferenceValues checks KeySlot without a server: the CRC16
// check value and slots from the Redis Cluster specification, and the
// hash-tag rule (the first '{' and the next '}', a non-empty tag).
func TestKeySlotReferenceValues(t *testing.T) {
	for key, want := range map[string]int{
		"123456789":      0x31C3, // CRC16/XMODEM's check value, below 16384
		"foo":            12182,
		"bar":            5061,
		"{user1000}.a":   KeySlot("user1000"),
		"foo{}{bar}":     KeySlot("foo{}{bar}"), // empty tag: whole key hashes
		"foo{{bar}}zap":  KeySlot("{bar"),
		"foo{bar}{zap}":  KeySlot("bar"),
		"session:{u1}:x": KeySlot("u1"),
	} {
		if got := KeySlot(key); got != want {
			t.Errorf("KeySlot(%q) = %d, want %d", key, got, want)
		}
	}
}

func TestKeySlotMatchesRedis(t *testing.T) {
	needServer(t, BackendRedis)
	dir := t.TempDir()
	s, err := Start(dir, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	keys := []string{"", "a", "foo", "user:{42}:x", "{}x", "x{}{y}", "{{a}}", "sc:{AbCd_-09}:d", "\x00\xff{\n}", "abc{def"}
	for i := 0; i < 200; i++ {
		keys = append(keys, fmt.Sprintf("k%d{t%d}", i, i*7919))
	}
	for _, k := range keys {
		got, err := CallString(s.Addr(), time.Second, "CLUSTER", "KEYSLOT", k)
		if err != nil {
			t.Fatal(err)
		}
		if want := strconv.Itoa(KeySlot(k)); got != want {
			t.Errorf("KeySlot(%q) = %s, redis says %s", k, want, got)
		}
	}
}

func TestClusterLifecycle(t *testing.T) {
	report.FullTier(t, BackendCluster) // starts a 6-node cluster
	needServer(t, BackendCluster)
	start := time.Now()
	c, err := StartCluster(ClusterOptions{ReplicasPerMaster: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	t.Logf("3+3 cluster up in %v", time.Since(start).Round(time.Millisecond))
	slot := KeySlot("{lifecycle}")
	old, err := c.MasterOf(slot)
	if err != nil {
		t.Fatal(err)
	}
	if reps, err := c.ReplicasOf(old); err != nil || len(reps) != 1 {
		t.Fatalf("ReplicasOf = %v, %v; want one replica", reps, err)
	}
	t0 := time.Now()
	c.Kill(old)
	nw, err := c.WaitPromotion(slot, old, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("slot %d moved from %d to %d in %v", slot, old.Port, nw.Port, time.Since(t0).Round(time.Millisecond))
	if err := c.Rejoin(old, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// Move the slot to a third master, with a key in it.
	if _, err := Call(nw.Addr(), time.Second, "SET", "{lifecycle}k", "v"); err != nil {
		t.Fatal(err)
	}
	var to *Server
	for _, n := range c.Nodes {
		if r, _ := Call(n.Addr(), time.Second, "ROLE"); r.([]any)[0] == "master" && n != nw {
			to = n
			break
		}
	}
	if err := c.MigrateSlot(slot, to); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got, err := c.MasterOf(slot); err != nil || got != to {
		t.Fatalf("after migration slot on %v (%v), want %d", got, err, to.Port)
	}
	if v, err := CallString(to.Addr(), time.Second, "GET", "{lifecycle}k"); err != nil || v != "v" {
		t.Fatalf("key after migration: %q, %v", v, err)
	}
	dir := c.dir
	c.Stop()
	for _, n := range c.Nodes {
		if n.Alive() {
			t.Errorf("node %d still alive after Stop", n.Port)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cluster dir %s not removed: %v", dir, err)
	}
}

func TestSentinelLifecycle(t *testing.T) {
	report.FullTier(t, BackendSentinel) // starts a Sentinel set
	needServer(t, BackendSentinel)
	start := time.Now()
	s, err := StartSentinel(SentinelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	t.Logf("primary+replica+3 sentinels up in %v", time.Since(start).Round(time.Millisecond))
	old, err := s.Primary()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	old.Kill()
	nw, err := s.WaitFailover(old, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("primary moved from %d to %d in %v", old.Port, nw.Port, time.Since(t0).Round(time.Millisecond))
	if err := s.Rejoin(old, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if reps, err := s.Replicas(); err != nil || len(reps) != 1 || reps[0] != old {
		t.Fatalf("after rejoin replicas = %v, %v; want the old primary", reps, err)
	}
	dir := s.dir
	s.Stop()
	for _, n := range append(s.Data, s.Sentinels...) {
		if n.Alive() {
			t.Errorf("process on %d still alive after Stop", n.Port)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("dir %s not removed: %v", dir, err)
	}
}
