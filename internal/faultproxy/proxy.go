// Package faultproxy is a TCP proxy for tests that injects the network
// faults a Redis client meets in production: added latency, a bandwidth
// limit, a black hole (bytes accepted, nothing forwarded) and connection
// resets. Settings change at run time and apply to open connections.
package faultproxy

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards every connection accepted on Addr to a target address.
type Proxy struct {
	ln     net.Listener
	target string

	latency   atomic.Int64 // ns added before each forwarded chunk
	bandwidth atomic.Int64 // bytes per second per direction, 0 = unlimited
	blackhole atomic.Bool

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// New listens on a loopback port and forwards to target.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients should dial instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetLatency delays every chunk of bytes, in both directions, by d.
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }

// SetBandwidth limits each direction of each connection to n bytes per
// second; 0 removes the limit.
func (p *Proxy) SetBandwidth(n int64) { p.bandwidth.Store(n) }

// SetBlackhole makes the proxy swallow bytes without forwarding them (on)
// or forward them again (off), like a peer that stopped answering without
// closing the connection.
func (p *Proxy) SetBlackhole(on bool) { p.blackhole.Store(on) }

// ResetAll closes every open connection with an RST, as a crashed peer or a
// middlebox dropping state would. New connections are still accepted.
func (p *Proxy) ResetAll() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
		delete(p.conns, c)
		n++
	}
	return n
}

// Open reports how many connections (client and upstream sides) are open.
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close stops accepting, resets every connection and waits for every
// goroutine of the proxy to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.ResetAll()
	p.wg.Wait()
	return err
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	if !p.track(client) {
		_ = client.Close()
		return
	}
	defer p.untrack(client)
	up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		return
	}
	if !p.track(up) {
		_ = up.Close()
		return
	}
	defer p.untrack(up)
	var inner sync.WaitGroup
	inner.Add(2)
	go func() { defer inner.Done(); p.pump(up, client); _ = up.Close(); _ = client.Close() }()
	go func() { defer inner.Done(); p.pump(client, up); _ = up.Close(); _ = client.Close() }()
	inner.Wait()
}

// pump copies src to dst chunk by chunk, applying the current faults.
func (p *Proxy) pump(dst, src net.Conn) {
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if d := time.Duration(p.latency.Load()); d > 0 {
				time.Sleep(d)
			}
			if !p.blackhole.Load() {
				if err := p.write(dst, buf[:n]); err != nil {
					return
				}
			}
		}
		if err != nil {
			return // EOF or a reset: the caller closes both sides
		}
	}
}

func (p *Proxy) write(dst net.Conn, b []byte) error {
	for len(b) > 0 {
		chunk := b
		if bw := p.bandwidth.Load(); bw > 0 {
			// Send at most 1/20 s worth at a time, then wait that long.
			step := max(bw/20, 1)
			if int64(len(chunk)) > step {
				chunk = chunk[:step]
			}
			time.Sleep(time.Duration(int64(len(chunk)) * int64(time.Second) / bw))
		}
		if _, err := dst.Write(chunk); err != nil {
			return err
		}
		b = b[len(chunk):]
	}
	return nil
}
