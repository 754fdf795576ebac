package redistest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SentinelOptions shapes a Sentinel set. Zero fields take the defaults noted.
type SentinelOptions struct {
	Replicas        int           // default 1
	Sentinels       int           // default 3, quorum is a majority
	DownAfter       time.Duration // down-after-milliseconds, default 1s
	FailoverTimeout time.Duration // failover-timeout, default 3s
	StartTimeout    time.Duration // bound on StartSentinel, default 60s
}

// Sentinel is a primary, its replicas and the Sentinels that watch them,
// all on loopback.
type Sentinel struct {
	// MasterName is the name the Sentinels monitor, for
	// redis.FailoverOptions.MasterName.
	MasterName string
	// Data holds the primary first, then the replicas, in start order.
	// Roles change on failover; ask Primary.
	Data      []*Server
	Sentinels []*Server

	dir    string
	quorum int
	mu     sync.Mutex
	stop   bool
}

// StartSentinel starts a primary, its replicas and the Sentinels, and waits
// until every replica's link is up, every Sentinel knows every replica and
// the other Sentinels, and SENTINEL CKQUORUM passes.
func StartSentinel(o SentinelOptions) (s *Sentinel, err error) {
	if !Available() {
		return nil, ErrNoRedis
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.Sentinels == 0 {
		o.Sentinels = 3
	}
	if o.DownAfter == 0 {
		o.DownAfter = time.Second
	}
	if o.FailoverTimeout == 0 {
		o.FailoverTimeout = 3 * time.Second
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 60 * time.Second
	}
	deadline := time.Now().Add(o.StartTimeout)
	dir, err := os.MkdirTemp("", "redistest-sentinel-")
	if err != nil {
		return nil, err
	}
	s = &Sentinel{MasterName: "sessioncap", dir: dir, quorum: o.Sentinels/2 + 1}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w (logs: %s)", err, s.logs())
			s.Stop()
			s = nil
		}
	}()
	primary, err := Start(dir)
	if err != nil {
		return s, err
	}
	s.Data = append(s.Data, primary)
	for i := 0; i < o.Replicas; i++ {
		r, err := Start(dir, "--replicaof", "127.0.0.1", strconv.Itoa(primary.Port))
		if err != nil {
			return s, err
		}
		s.Data = append(s.Data, r)
	}
	for i := 0; i < o.Sentinels; i++ {
		port, err := FreePort()
		if err != nil {
			return s, err
		}
		d := filepath.Join(dir, strconv.Itoa(port))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return s, err
		}
		conf := filepath.Join(d, "sentinel.conf")
		// Sentinel rewrites its config file, so each gets its own.
		body := strings.Join([]string{
			"port " + strconv.Itoa(port),
			"bind 127.0.0.1",
			"dir " + d,
			"logfile " + filepath.Join(d, "log"),
			fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d %d", s.MasterName, primary.Port, s.quorum),
			fmt.Sprintf("sentinel down-after-milliseconds %s %d", s.MasterName, o.DownAfter.Milliseconds()),
			fmt.Sprintf("sentinel failover-timeout %s %d", s.MasterName, o.FailoverTimeout.Milliseconds()),
		}, "\n") + "\n"
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			return s, err
		}
		sn := &Server{Port: port, Dir: d, args: []string{conf, "--sentinel"}}
		if err := sn.start(); err != nil {
			return s, err
		}
		s.Sentinels = append(s.Sentinels, sn)
	}
	return s, s.WaitReady(time.Until(deadline))
}

// SentinelAddrs lists the Sentinels, for redis.FailoverOptions.SentinelAddrs.
func (s *Sentinel) SentinelAddrs() []string {
	out := make([]string, len(s.Sentinels))
	for i, sn := range s.Sentinels {
		out[i] = sn.Addr()
	}
	return out
}

// Node returns the data node listening on port, or nil.
func (s *Sentinel) Node(port int) *Server {
	for _, d := range s.Data {
		if d.Port == port {
			return d
		}
	}
	return nil
}

// Primary returns the data node every live Sentinel names as the primary,
// provided that node is alive and says it is a master.
func (s *Sentinel) Primary() (*Server, error) {
	var p *Server
	for _, sn := range s.Sentinels {
		if !sn.Alive() {
			continue
		}
		v, err := Call(sn.Addr(), callTimeout, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.MasterName)
		if err != nil {
			return nil, err
		}
		a, ok := v.([]any)
		if !ok || len(a) != 2 {
			return nil, fmt.Errorf("sentinel %d: no primary", sn.Port)
		}
		port, _ := strconv.Atoi(fmt.Sprint(a[1]))
		n := s.Node(port)
		if n == nil {
			return nil, fmt.Errorf("sentinel %d names unknown primary %v", sn.Port, a)
		}
		if p != nil && p != n {
			return nil, fmt.Errorf("sentinels disagree: %d vs %d", p.Port, n.Port)
		}
		p = n
	}
	if p == nil {
		return nil, errors.New("redistest: no live sentinel")
	}
	if !p.Alive() {
		return nil, fmt.Errorf("primary %d is down", p.Port)
	}
	if role, err := s.role(p); err != nil || role != "master" {
		return nil, fmt.Errorf("primary %d says role %q (%v)", p.Port, role, err)
	}
	return p, nil
}

// Replicas returns the live data nodes that are not the primary.
func (s *Sentinel) Replicas() ([]*Server, error) {
	p, err := s.Primary()
	if err != nil {
		return nil, err
	}
	var out []*Server
	for _, d := range s.Data {
		if d != p && d.Alive() {
			out = append(out, d)
		}
	}
	return out, nil
}

func (s *Sentinel) role(n *Server) (string, error) {
	v, err := Call(n.Addr(), callTimeout, "ROLE")
	if err != nil {
		return "", err
	}
	a, ok := v.([]any)
	if !ok || len(a) == 0 {
		return "", fmt.Errorf("bad ROLE reply %v", v)
	}
	r, _ := a[0].(string)
	return r, nil
}

// WaitReady waits until the Sentinels agree on a live primary, every other
// live data node replicates from it with its link up and is known to every
// Sentinel, and the quorum is reachable.
func (s *Sentinel) WaitReady(timeout time.Duration) error {
	return waitFor(timeout, s.ready)
}

func (s *Sentinel) ready() error {
	p, err := s.Primary()
	if err != nil {
		return err
	}
	for _, d := range s.Data {
		if d == p || !d.Alive() {
			continue
		}
		info, err := CallString(d.Addr(), callTimeout, "INFO", "replication")
		if err != nil {
			return err
		}
		if infoField(info, "master_port") != strconv.Itoa(p.Port) || infoField(info, "master_link_status") != "up" {
			return fmt.Errorf("replica %d: not linked to %d", d.Port, p.Port)
		}
		for _, sn := range s.Sentinels {
			if !sn.Alive() {
				continue
			}
			v, err := Call(sn.Addr(), callTimeout, "SENTINEL", "REPLICAS", s.MasterName)
			if err != nil {
				return err
			}
			if !knows(v, d.Port) {
				return fmt.Errorf("sentinel %d does not know replica %d yet", sn.Port, d.Port)
			}
		}
	}
	for _, sn := range s.Sentinels {
		if !sn.Alive() {
			continue
		}
		v, err := Call(sn.Addr(), callTimeout, "SENTINEL", "SENTINELS", s.MasterName)
		if err != nil {
			return err
		}
		if a, _ := v.([]any); len(a) < len(s.Sentinels)-1 {
			return fmt.Errorf("sentinel %d knows %d other sentinels", sn.Port, len(a))
		}
	}
	for _, sn := range s.Sentinels {
		if sn.Alive() {
			_, err := Call(sn.Addr(), callTimeout, "SENTINEL", "CKQUORUM", s.MasterName)
			return err
		}
	}
	return errors.New("no live sentinel")
}

// knows reports whether a SENTINEL REPLICAS reply lists a healthy replica on
// port (flags without s_down or disconnected).
func knows(v any, port int) bool {
	list, _ := v.([]any)
	for _, item := range list {
		fields, _ := item.([]any)
		m := map[string]string{}
		for i := 0; i+1 < len(fields); i += 2 {
			k, _ := fields[i].(string)
			val, _ := fields[i+1].(string)
			m[k] = val
		}
		if m["port"] == strconv.Itoa(port) && !strings.Contains(m["flags"], "s_down") &&
			!strings.Contains(m["flags"], "disconnected") {
			return true
		}
	}
	return false
}

// WaitFailover waits after old was killed until the Sentinels agree on a
// new live primary that says it is a master, and returns it.
func (s *Sentinel) WaitFailover(old *Server, timeout time.Duration) (*Server, error) {
	var p *Server
	err := waitFor(timeout, func() error {
		n, err := s.Primary()
		if err != nil {
			return err
		}
		if n == old {
			return fmt.Errorf("primary still %d", old.Port)
		}
		p = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redistest: failover: %w (logs: %s)", err, s.logs())
	}
	return p, nil
}

// Rejoin restarts a killed data node (empty: nothing is persisted) and
// waits until the Sentinels have turned it into a replica of the current
// primary with its link up.
func (s *Sentinel) Rejoin(n *Server, timeout time.Duration) error {
	if err := n.Restart(); err != nil {
		return err
	}
	return s.WaitReady(timeout)
}

// Stop kills every process by PID and removes the directory. It is safe to
// call twice.
func (s *Sentinel) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop {
		return
	}
	s.stop = true
	for _, n := range append(append([]*Server{}, s.Sentinels...), s.Data...) {
		n.Kill()
	}
	os.RemoveAll(s.dir)
}

func (s *Sentinel) logs() string {
	var b strings.Builder
	for _, n := range append(append([]*Server{}, s.Data...), s.Sentinels...) {
		fmt.Fprintf(&b, "[%d] %s ", n.Port, n.LogTail())
	}
	return b.String()
}
