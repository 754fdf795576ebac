// Package redistest starts real redis-server processes on loopback for
// sessioncap's tests and benchmarks. Each server gets a free port below
// 22768 (outside Linux's ephemeral range, and low enough that a cluster bus
// port, +10000, stays below 32768), no persistence, and is killed by PID when
// the caller stops it.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNoRedis is returned when redis-server is not on PATH.
var ErrNoRedis = errors.New("redistest: redis-server not found on PATH")

// Available reports whether redis-server is on PATH.
func Available() bool {
	_, err := exec.LookPath("redis-server")
	return err == nil
}

var portMu sync.Mutex
var nextPort = 20000 + (os.Getpid()*37)%2000

// FreePort returns a loopback port in [20000, 22767] that nothing listens on,
// and whose +10000 cluster-bus port is free too.
func FreePort() (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	for tries := 0; tries < 2768; tries++ {
		p := nextPort
		nextPort++
		if nextPort > 22767 {
			nextPort = 20000
		}
		if portFree(p) && portFree(p+10000) {
			return p, nil
		}
	}
	return 0, errors.New("redistest: no free port in 20000-22767")
}

func portFree(p int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// Server is one redis-server process.
type Server struct {
	Port int
	Dir  string
	cmd  *exec.Cmd
	args []string
	done chan struct{}
}

// Addr is host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// Start launches redis-server with extra arguments (for example
// "--cluster-enabled", "yes") in a fresh directory under dir, and waits until
// it answers PING.
func Start(dir string, extra ...string) (*Server, error) {
	if !Available() {
		return nil, ErrNoRedis
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	return StartOn(dir, port, extra...)
}

// StartOn is Start on a given port.
func StartOn(dir string, port int, extra ...string) (*Server, error) {
	d := filepath.Join(dir, strconv.Itoa(port))
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, err
	}
	s := &Server{Port: port, Dir: d}
	s.args = append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--dir", d, "--logfile", filepath.Join(d, "log"), "--save", "", "--appendonly", "no"}, extra...)
	return s, s.start()
}

func (s *Server) start() error {
	s.cmd = exec.Command("redis-server", s.args...)
	// If the test binary dies without stopping its servers (a fuzz worker
	// killed by its coordinator, a -timeout panic, a SIGKILL), the kernel
	// kills them too, so no redis-server outlives the tests.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	s.done = make(chan struct{})
	if err := s.cmd.Start(); err != nil {
		return err
	}
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(s.cmd, s.done)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := Ping(s.Addr()); err == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("redistest: redis-server on %d exited at start: %s", s.Port, s.LogTail())
		case <-time.After(20 * time.Millisecond):
		}
	}
	s.Kill()
	return fmt.Errorf("redistest: redis-server on %d did not answer PING: %s", s.Port, s.LogTail())
}

// Restart starts the server again on the same port and directory, after Kill.
func (s *Server) Restart() error { return s.start() }

// PID of the running process.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Kill sends SIGKILL and waits for the process to go.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
	}
}

// Alive reports whether the process is still running.
func (s *Server) Alive() bool {
	if s.cmd == nil || s.done == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Pause freezes the process with SIGSTOP: it keeps its sockets open but
// answers nothing, like a server stuck in a long pause or a partitioned
// replica. Resume undoes it; Kill works on a paused process too.
func (s *Server) Pause() error { return s.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues a paused process with SIGCONT.
func (s *Server) Resume() error { return s.cmd.Process.Signal(syscall.SIGCONT) }

// Stop is Kill: the servers hold nothing worth a clean shutdown.
func (s *Server) Stop() { s.Kill() }

// LogTail returns the last lines of the server log, for failure messages.
func (s *Server) LogTail() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

// Ping sends a RESP PING to addr and waits for PONG.
func Ping(addr string) error {
	_, err := Do(addr, "PING")
	return err
}

// Do sends one command over a fresh connection and returns the first reply
// line, without a Redis client library, so the harness does not depend on
// the code under test.
func Do(addr string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, "-") {
		return "", errors.New(line[1:])
	}
	return line, nil
}
