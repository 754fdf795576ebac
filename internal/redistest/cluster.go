package redistest

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SlotCount is the number of hash slots in a Redis Cluster.
const SlotCount = 16384

// callTimeout bounds each admin command the helpers send.
const callTimeout = 2 * time.Second

// KeySlot returns the cluster hash slot of key, as CLUSTER KEYSLOT would:
// CRC16 (XMODEM) of the hash tag if the key has a non-empty {tag}, else of
// the whole key, modulo 16384.
func KeySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for k := 0; k < len(key); k++ {
		crc ^= uint16(key[k]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % SlotCount
}

// ClusterOptions shapes a Cluster. Zero fields take the defaults noted.
type ClusterOptions struct {
	Masters           int           // default 3
	ReplicasPerMaster int           // 0 is allowed
	NodeTimeout       time.Duration // cluster-node-timeout, default 1s: failover in 2-3 s
	StartTimeout      time.Duration // bound on StartCluster, default 60s
}

// Cluster is a Redis Cluster of redis-server processes on loopback.
type Cluster struct {
	// Nodes are in start order: the initial masters first, then their
	// replicas. Roles change on failover; ask MasterOf and ReplicasOf.
	Nodes []*Server

	dir  string
	mu   sync.Mutex
	stop bool
}

// NodeInfo is one line of CLUSTER NODES as seen by some node.
type NodeInfo struct {
	ID       string
	Port     int
	Flags    []string
	MasterID string // for a replica
	Slots    [][2]int
}

// Has reports whether the node carries flag (master, slave, fail, ...).
func (n NodeInfo) Has(flag string) bool {
	for _, f := range n.Flags {
		if f == flag {
			return true
		}
	}
	return false
}

// StartCluster starts the nodes, assigns the slots evenly to the masters,
// joins everyone with CLUSTER MEET, attaches the replicas and waits until
// every node reports cluster_state:ok, all agree on who owns every slot and
// every replica's link is up. On failure everything started is stopped.
func StartCluster(o ClusterOptions) (c *Cluster, err error) {
	if !Available() {
		return nil, ErrNoRedis
	}
	if o.Masters == 0 {
		o.Masters = 3
	}
	if o.NodeTimeout == 0 {
		o.NodeTimeout = time.Second
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 60 * time.Second
	}
	deadline := time.Now().Add(o.StartTimeout)
	dir, err := os.MkdirTemp("", "redistest-cluster-")
	if err != nil {
		return nil, err
	}
	c = &Cluster{dir: dir}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w (logs: %s)", err, c.logs())
			c.Stop()
			c = nil
		}
	}()
	n := o.Masters * (1 + o.ReplicasPerMaster)
	for i := 0; i < n; i++ {
		s, err := Start(dir, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.FormatInt(o.NodeTimeout.Milliseconds(), 10))
		if err != nil {
			return c, err
		}
		c.Nodes = append(c.Nodes, s)
	}
	ids := make([]string, n)
	for i, s := range c.Nodes {
		if ids[i], err = CallString(s.Addr(), callTimeout, "CLUSTER", "MYID"); err != nil {
			return c, err
		}
	}
	for m := 0; m < o.Masters; m++ {
		lo, hi := m*SlotCount/o.Masters, (m+1)*SlotCount/o.Masters-1
		a := c.Nodes[m].Addr()
		// Distinct config epochs from the start, as redis-cli does, so the
		// nodes need no epoch-collision round before they agree.
		if _, err := Call(a, callTimeout, "CLUSTER", "SET-CONFIG-EPOCH", strconv.Itoa(m+1)); err != nil {
			return c, err
		}
		if _, err := Call(a, callTimeout, "CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(lo), strconv.Itoa(hi)); err != nil {
			return c, err
		}
	}
	for _, s := range c.Nodes[1:] {
		if _, err := Call(c.Nodes[0].Addr(), callTimeout, "CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(s.Port)); err != nil {
			return c, err
		}
	}
	if err := waitFor(time.Until(deadline), func() error {
		for _, s := range c.Nodes {
			nodes, err := c.nodesFrom(s)
			if err != nil {
				return err
			}
			if len(nodes) != n {
				return fmt.Errorf("node %d knows %d of %d nodes", s.Port, len(nodes), n)
			}
			for _, x := range nodes {
				if x.Has("handshake") || x.Has("noaddr") {
					return fmt.Errorf("node %d: %d still in handshake", s.Port, x.Port)
				}
			}
		}
		return nil
	}); err != nil {
		return c, err
	}
	for r := o.Masters; r < n; r++ {
		master := (r - o.Masters) % o.Masters
		if _, err := Call(c.Nodes[r].Addr(), callTimeout, "CLUSTER", "REPLICATE", ids[master]); err != nil {
			return c, err
		}
	}
	return c, c.WaitHealthy(time.Until(deadline))
}

// Addrs lists every node's address, for redis.ClusterOptions.Addrs.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		out[i] = s.Addr()
	}
	return out
}

// Node returns the node listening on port, or nil.
func (c *Cluster) Node(port int) *Server {
	for _, s := range c.Nodes {
		if s.Port == port {
			return s
		}
	}
	return nil
}

// NodesView returns CLUSTER NODES as seen by the first live node.
func (c *Cluster) NodesView() ([]NodeInfo, error) {
	var last error = errors.New("redistest: no live node")
	for _, s := range c.Nodes {
		if !s.Alive() {
			continue
		}
		nodes, err := c.nodesFrom(s)
		if err == nil {
			return nodes, nil
		}
		last = err
	}
	return nil, last
}

func (c *Cluster) nodesFrom(s *Server) ([]NodeInfo, error) {
	txt, err := CallString(s.Addr(), callTimeout, "CLUSTER", "NODES")
	if err != nil {
		return nil, err
	}
	return parseNodes(txt)
}

func parseNodes(txt string) ([]NodeInfo, error) {
	var out []NodeInfo
	for _, line := range strings.Split(strings.TrimSpace(txt), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			return nil, fmt.Errorf("redistest: bad CLUSTER NODES line %q", line)
		}
		addr := f[1]
		if i := strings.IndexAny(addr, "@,"); i >= 0 {
			addr = addr[:i]
		}
		port := 0
		if i := strings.LastIndexByte(addr, ':'); i >= 0 {
			port, _ = strconv.Atoi(addr[i+1:])
		}
		n := NodeInfo{ID: f[0], Port: port, Flags: strings.Split(f[2], ",")}
		if f[3] != "-" {
			n.MasterID = f[3]
		}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue // a slot being imported or migrated, not owned
			}
			lo, hi, _ := strings.Cut(r, "-")
			a, err1 := strconv.Atoi(lo)
			b := a
			var err2 error
			if hi != "" {
				b, err2 = strconv.Atoi(hi)
			}
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("redistest: bad slot range %q", r)
			}
			n.Slots = append(n.Slots, [2]int{a, b})
		}
		out = append(out, n)
	}
	return out, nil
}

// ownerIn finds the master that owns slot in one node's view.
func ownerIn(nodes []NodeInfo, slot int) (NodeInfo, bool) {
	for _, n := range nodes {
		if !n.Has("master") || n.Has("fail") {
			continue
		}
		for _, r := range n.Slots {
			if slot >= r[0] && slot <= r[1] {
				return n, true
			}
		}
	}
	return NodeInfo{}, false
}

// MasterOf returns the live master that every live node agrees owns slot.
func (c *Cluster) MasterOf(slot int) (*Server, error) {
	var owner *Server
	for _, s := range c.Nodes {
		if !s.Alive() {
			continue
		}
		nodes, err := c.nodesFrom(s)
		if err != nil {
			return nil, err
		}
		n, ok := ownerIn(nodes, slot)
		if !ok {
			return nil, fmt.Errorf("redistest: node %d sees no owner of slot %d", s.Port, slot)
		}
		o := c.Node(n.Port)
		if o == nil || !o.Alive() {
			return nil, fmt.Errorf("redistest: node %d says slot %d is on %d, which is down", s.Port, slot, n.Port)
		}
		if owner != nil && owner != o {
			return nil, fmt.Errorf("redistest: nodes disagree on slot %d: %d vs %d", slot, owner.Port, o.Port)
		}
		owner = o
	}
	if owner == nil {
		return nil, errors.New("redistest: no live node")
	}
	return owner, nil
}

// MasterOfKey is MasterOf(KeySlot(key)).
func (c *Cluster) MasterOfKey(key string) (*Server, error) { return c.MasterOf(KeySlot(key)) }

// ReplicasOf returns the live replicas of master, in the view of master.
func (c *Cluster) ReplicasOf(master *Server) ([]*Server, error) {
	nodes, err := c.nodesFrom(master)
	if err != nil {
		return nil, err
	}
	var id string
	for _, n := range nodes {
		if n.Has("myself") {
			id = n.ID
		}
	}
	var out []*Server
	for _, n := range nodes {
		if n.MasterID == id && n.Has("slave") && !n.Has("fail") {
			if s := c.Node(n.Port); s != nil && s.Alive() {
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// ID returns a node's cluster ID.
func (c *Cluster) ID(s *Server) (string, error) {
	return CallString(s.Addr(), callTimeout, "CLUSTER", "MYID")
}

// WaitHealthy waits until every live node reports cluster_state:ok, all of
// them agree on a live owner for every slot, and every live replica's link
// to its master is up.
func (c *Cluster) WaitHealthy(timeout time.Duration) error {
	return waitFor(timeout, c.healthy)
}

func (c *Cluster) healthy() error {
	var ref map[int]int // slot range start -> owner port, from the first node
	for _, s := range c.Nodes {
		if !s.Alive() {
			continue
		}
		info, err := CallString(s.Addr(), callTimeout, "CLUSTER", "INFO")
		if err != nil {
			return err
		}
		if st := infoField(info, "cluster_state"); st != "ok" {
			return fmt.Errorf("node %d: cluster_state %q", s.Port, st)
		}
		nodes, err := c.nodesFrom(s)
		if err != nil {
			return err
		}
		owners := map[int]int{}
		covered := 0
		var self NodeInfo
		for _, n := range nodes {
			if n.Has("myself") {
				self = n
			}
			if !n.Has("master") || n.Has("fail") || n.Has("fail?") {
				continue
			}
			if len(n.Slots) > 0 {
				if o := c.Node(n.Port); o == nil || !o.Alive() {
					return fmt.Errorf("node %d: master %d is down but not failed yet", s.Port, n.Port)
				}
			}
			for _, r := range n.Slots {
				owners[r[0]] = n.Port
				covered += r[1] - r[0] + 1
			}
		}
		if covered != SlotCount {
			return fmt.Errorf("node %d: %d slots covered", s.Port, covered)
		}
		if ref == nil {
			ref = owners
		} else if fmt.Sprint(ref) != fmt.Sprint(owners) {
			return fmt.Errorf("node %d disagrees on slot owners", s.Port)
		}
		if self.Has("slave") {
			repl, err := CallString(s.Addr(), callTimeout, "INFO", "replication")
			if err != nil {
				return err
			}
			if infoField(repl, "master_link_status") != "up" {
				return fmt.Errorf("replica %d: link to master not up", s.Port)
			}
		}
	}
	if ref == nil {
		return errors.New("no live node")
	}
	return nil
}

// Kill sends SIGKILL to one node.
func (c *Cluster) Kill(s *Server) { s.Kill() }

// WaitPromotion waits after old was killed until a live node owns slot in
// every live node's view and the cluster is healthy again, and returns the
// new owner.
func (c *Cluster) WaitPromotion(slot int, old *Server, timeout time.Duration) (*Server, error) {
	var owner *Server
	err := waitFor(timeout, func() error {
		o, err := c.MasterOf(slot)
		if err != nil {
			return err
		}
		if o == old {
			return fmt.Errorf("slot %d still on %d", slot, old.Port)
		}
		owner = o
		return c.healthy()
	})
	if err != nil {
		return nil, fmt.Errorf("redistest: promotion for slot %d: %w (logs: %s)", slot, err, c.logs())
	}
	return owner, nil
}

// Rejoin restarts a killed node in its old directory (its nodes.conf
// survives, its data does not) and waits until it is back in the cluster as
// a replica with its link up.
func (c *Cluster) Rejoin(s *Server, timeout time.Duration) error {
	if err := s.Restart(); err != nil {
		return err
	}
	return waitFor(timeout, func() error {
		role, err := Call(s.Addr(), callTimeout, "ROLE")
		if err != nil {
			return err
		}
		if a, ok := role.([]any); !ok || len(a) == 0 || a[0] != "slave" {
			return fmt.Errorf("node %d: role %v", s.Port, role)
		}
		return c.healthy()
	})
}

// BeginMigration marks slot as migrating from one master to another:
// IMPORTING on the target first, then MIGRATING on the source, the order
// redis-cli uses so that no ASK redirect points at a node not yet expecting
// it.
func (c *Cluster) BeginMigration(slot int, from, to *Server) error {
	fromID, err := c.ID(from)
	if err != nil {
		return err
	}
	toID, err := c.ID(to)
	if err != nil {
		return err
	}
	s := strconv.Itoa(slot)
	if _, err := Call(to.Addr(), callTimeout, "CLUSTER", "SETSLOT", s, "IMPORTING", fromID); err != nil {
		return err
	}
	_, err = Call(from.Addr(), callTimeout, "CLUSTER", "SETSLOT", s, "MIGRATING", toID)
	return err
}

// MoveKeys MIGRATEs every key of slot from one master to another, in
// batches of up to batch keys, until the source has none left. It returns
// how many keys it moved.
func (c *Cluster) MoveKeys(slot int, from, to *Server, batch int) (int, error) {
	moved := 0
	for round := 0; round < 1000; round++ {
		v, err := Call(from.Addr(), callTimeout, "CLUSTER", "GETKEYSINSLOT", strconv.Itoa(slot), strconv.Itoa(batch))
		if err != nil {
			return moved, err
		}
		keys, _ := v.([]any)
		if len(keys) == 0 {
			return moved, nil
		}
		args := []string{"MIGRATE", "127.0.0.1", strconv.Itoa(to.Port), "", "0", "5000", "KEYS"}
		for _, k := range keys {
			args = append(args, k.(string))
		}
		if _, err := Call(from.Addr(), 10*time.Second, args...); err != nil {
			return moved, err
		}
		moved += len(keys)
	}
	return moved, errors.New("redistest: slot never emptied")
}

// FinishMigration gives slot to its new owner on every live master, target
// first, as redis-cli does, so the source learns last and keeps redirecting
// with ASK until then.
func (c *Cluster) FinishMigration(slot int, to *Server) error {
	toID, err := c.ID(to)
	if err != nil {
		return err
	}
	s := strconv.Itoa(slot)
	if _, err := Call(to.Addr(), callTimeout, "CLUSTER", "SETSLOT", s, "NODE", toID); err != nil {
		return err
	}
	for _, n := range c.Nodes {
		if n == to || !n.Alive() {
			continue
		}
		role, err := Call(n.Addr(), callTimeout, "ROLE")
		if err != nil {
			return err
		}
		if a, ok := role.([]any); ok && len(a) > 0 && a[0] == "master" {
			if _, err := Call(n.Addr(), callTimeout, "CLUSTER", "SETSLOT", s, "NODE", toID); err != nil {
				return err
			}
		}
	}
	return nil
}

// MigrateSlot moves slot and its keys to another master in one go.
func (c *Cluster) MigrateSlot(slot int, to *Server) error {
	from, err := c.MasterOf(slot)
	if err != nil {
		return err
	}
	if from == to {
		return nil
	}
	if err := c.BeginMigration(slot, from, to); err != nil {
		return err
	}
	if _, err := c.MoveKeys(slot, from, to, 100); err != nil {
		return err
	}
	return c.FinishMigration(slot, to)
}

// Stop kills every node by PID and removes the cluster's directory. It is
// safe to call twice.
func (c *Cluster) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stop {
		return
	}
	c.stop = true
	for _, s := range c.Nodes {
		s.Kill()
	}
	os.RemoveAll(c.dir)
}

// logs summarises every node's log tail, for error messages.
func (c *Cluster) logs() string {
	var b strings.Builder
	for _, s := range c.Nodes {
		fmt.Fprintf(&b, "[%d] %s ", s.Port, s.LogTail())
	}
	return b.String()
}
