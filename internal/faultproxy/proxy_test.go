package faultproxy

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// echo starts a line echo server and returns its address.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, msg string) (string, error) {
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSuffix(line, "\n"), err
}

func TestProxyFaults(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs last, after the echo server stops
	p, err := New(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := roundTrip(c, "hello"); err != nil || got != "hello" {
		t.Fatalf("plain: %q, %v", got, err)
	}

	p.SetLatency(100 * time.Millisecond)
	start := time.Now()
	if got, err := roundTrip(c, "slow"); err != nil || got != "slow" {
		t.Fatalf("latency: %q, %v", got, err)
	}
	// Two hops each way: at least 200 ms. A lower bound cannot flake on a
	// slow machine.
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("round trip with 100ms latency took %v", d)
	}
	p.SetLatency(0)

	p.SetBandwidth(20 << 10) // 20 KiB/s: 10 KiB needs ~0.5 s each way
	start = time.Now()
	big := strings.Repeat("x", 10<<10)
	if got, err := roundTrip(c, big); err != nil || got != big {
		t.Fatalf("bandwidth: %d bytes, %v", len(got), err)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("10 KiB twice at 20 KiB/s took %v", d)
	}
	p.SetBandwidth(0)

	p.SetBlackhole(true)
	_ = c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := roundTrip2(c, "lost"); err == nil {
		t.Fatal("a black-holed request was answered")
	}
	p.SetBlackhole(false)

	if n := p.ResetAll(); n != 2 {
		t.Errorf("ResetAll closed %d connections, want 2 (client and upstream)", n)
	}
	if _, err := roundTrip(c, "after reset"); err == nil {
		t.Fatal("a reset connection still works")
	}
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got, err := roundTrip(c2, "again"); err != nil || got != "again" {
		t.Fatalf("new connection after reset: %q, %v", got, err)
	}
}

// roundTrip2 is roundTrip without resetting the deadline.
func roundTrip2(c net.Conn, msg string) (string, error) {
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}
