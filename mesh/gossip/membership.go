package gossip

import (
	"math/rand"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/dogwood/dogwood/mesh/gossip/proto"
	"github.com/dogwood/dogwood/mesh/record"
)

// Membership: who is in the cluster and in which state. memberlist owns failure
// detection; this file turns its delegate callbacks (delegates.go) into host statuses
// for the Sink, keeps joining and reconnecting, and answers "who is alive" for
// dissemination, anti-entropy and RPC.
//
// Statuses come from events, never from memberlist's log text:
//   - alive: NotifyJoin, and NotifyAlive (an alive message about the host: its join,
//     or its refutation of a suspicion), an acknowledged probe, or any message from it;
//   - suspect: our own probe of it failed (see suspicion.go);
//   - failed / left: NotifyLeave, left when the host announced it was leaving.

// membership turns memberlist's events into member statuses and keeps what a send
// needs to find a member: the alive and suspect members as the events left them
// (copies, so a send does not copy memberlist's list), and addresses learnt from
// messages of hosts membership has not told us about yet.
type membership struct {
	g *Gossip

	mu    sync.RWMutex
	nodes map[string]memberlist.Node

	learnMu sync.Mutex
	learned map[string]netip.AddrPort
	leaving map[string]bool // hosts that announced a graceful leave
}

func newMembership(g *Gossip) *membership {
	return &membership{g: g, nodes: map[string]memberlist.Node{}, learned: map[string]netip.AddrPort{}, leaving: map[string]bool{}}
}

// LocalAddr is the address and port memberlist advertises.
func (g *Gossip) LocalAddr() (net.IP, uint16) {
	n := g.ml.LocalNode()
	return n.Addr, n.Port
}

func (m *membership) joinLoop(targets []string) {
	g := m.g
	defer g.wg.Done()
	backoff := 200 * time.Millisecond
	for {
		n, err := g.ml.Join(targets)
		if n > 0 {
			g.log.Info("joined cluster", "contacted", n)
			// A host that restarts under its name and address is still held as
			// left or failed by the others, at an incarnation its fresh memberlist
			// does not beat: the join's push/pull told the seeds an older alive,
			// which they ignore, and the state they answered made this host
			// refute with a higher one. That refutation travels only by gossip,
			// and when it misses a seed the seed holds the host left until its
			// next periodic push/pull (30 s). A second exchange with the seeds
			// carries it to them directly.
			g.ml.Join(targets)
			return
		}
		g.log.Warn("join failed, retrying", "targets", strings.Join(targets, ","), errAttr(err), "in", backoff)
		select {
		case <-g.ctx.Done():
			return
		case <-time.After(backoff):
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

// reconnectInterval is how often we try to reach hosts the catalog knows but
// membership has declared failed. memberlist stops gossiping to dead nodes after
// GossipToTheDeadTime (30 s), so without this a partition longer than that would
// never heal on its own (serf does the same).
const reconnectInterval = 10 * time.Second

func (m *membership) reconnectLoop() {
	g := m.g
	defer g.wg.Done()
	t := time.NewTicker(g.cfg.ReconnectInterval)
	defer t.Stop()
	// A restarted host (an upgrade, a reboot) reaches the hosts its catalog knows at
	// once: with no --join, as the first host of a cluster usually has, it would
	// otherwise sit alone for a whole interval while the others hold it as left.
	first := time.After(time.Second)
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
		case <-first:
		}
		live := map[string]bool{}
		for _, n := range m.alive(false) {
			live[n.Name] = true
		}
		var targets []string
		for _, h := range g.state.Failed() {
			if h.Name == g.cfg.Name || live[h.Name] || !h.Addr.IsValid() || h.Addr.Port() == 0 {
				continue
			}
			targets = append(targets, h.Addr.String())
		}
		if len(targets) == 0 {
			continue
		}
		// Join contacts each target over TCP (push/pull); unreachable ones just fail.
		if n, err := g.ml.Join(targets); n > 0 {
			g.log.Info("reconnected to failed hosts", "contacted", n)
		} else {
			g.log.Debug("reconnect", "targets", len(targets), errAttr(err))
		}
	}
}

// Member is one host as membership sees it.
type Member struct {
	Name   string
	Addr   net.IP
	Port   uint16
	Status string
}

// Members lists hosts memberlist knows, dead and left ones included while it keeps them.
func (g *Gossip) Members() []Member {
	var out []Member
	for _, n := range g.ml.Members() {
		out = append(out, Member{Name: n.Name, Addr: n.Addr, Port: n.Port, Status: g.state.Status(n.Name)})
	}
	return out
}

func (m *membership) alive(self bool) []*memberlist.Node {
	g := m.g
	<-g.ready
	var out []*memberlist.Node
	for _, n := range g.ml.Members() {
		if n.Name == g.cfg.Name && !self {
			continue
		}
		if n.State == memberlist.StateAlive || n.State == memberlist.StateSuspect {
			out = append(out, n)
		}
	}
	return out
}

// AliveNames are the names of alive and suspect members, this host included.
func (g *Gossip) AliveNames() []string { return g.members.aliveNames(true) }

// aliveNames are the names of alive and suspect members (with this host when self).
func (m *membership) aliveNames(self bool) []string {
	alive := m.alive(self)
	names := make([]string, 0, len(alive))
	for _, n := range alive {
		names = append(names, n.Name)
	}
	return names
}

func (m *membership) node(name string) *memberlist.Node {
	g := m.g
	<-g.ready
	m.mu.RLock()
	n, ok := m.nodes[name]
	m.mu.RUnlock()
	if ok {
		return &n
	}
	// Membership spreads by gossip, so a host can hear from a newcomer before it
	// hears about it; answer it at the address it told us.
	m.learnMu.Lock()
	ap, ok := m.learned[name]
	m.learnMu.Unlock()
	if ok {
		return &memberlist.Node{Name: name, Addr: net.IP(ap.Addr().AsSlice()), Port: ap.Port()}
	}
	return nil
}

// learn remembers the gossip address a host sent from (bounded: only names that are
// or were hosts of the cluster matter, and the map is cleared when it grows large).
func (m *membership) learn(name, addr string) {
	g := m.g
	if name == "" || addr == "" || name == g.cfg.Name {
		return
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return
	}
	m.learnMu.Lock()
	if len(m.learned) > 4096 {
		clear(m.learned)
	}
	m.learned[name] = ap
	m.learnMu.Unlock()
}

func (g *Gossip) selfAddr() string {
	<-g.ready
	n := g.ml.LocalNode()
	ip, ok := netip.AddrFromSlice(n.Addr)
	if !ok {
		return ""
	}
	return netip.AddrPortFrom(ip.Unmap(), n.Port).String()
}

// markLeaving records a leave intent. If memberlist already reported the host gone
// (the intent arrived late), its status is corrected to left.
func (m *membership) markLeaving(name string) {
	g := m.g
	m.learnMu.Lock()
	m.leaving[name] = true
	m.learnMu.Unlock()
	if !m.isMember(name) && g.state.Status(name) == record.StatusFailed {
		g.sink.SetStatus(name, record.StatusLeft)
	}
}

// isMember reports whether memberlist counts name as a live member (g.node also
// answers hosts only learned from their messages).
func (m *membership) isMember(name string) bool {
	g := m.g
	<-g.ready
	for _, n := range g.ml.Members() {
		if n.Name == name {
			return true
		}
	}
	return false
}

// takeLeaving reports and clears whether name announced a graceful leave.
func (m *membership) takeLeaving(name string) bool {
	m.learnMu.Lock()
	defer m.learnMu.Unlock()
	ok := m.leaving[name]
	delete(m.leaving, name)
	return ok
}

func (g *Gossip) nodeMeta(limit int) []byte { return encodeMeta(g.cfg.HostID, limit) }

// setMember keeps nodes in step with membership's events (node).
func (m *membership) setMember(n *memberlist.Node, live bool) {
	m.mu.Lock()
	if live {
		m.nodes[n.Name] = *n
	} else {
		delete(m.nodes, n.Name)
	}
	m.mu.Unlock()
}

func (m *membership) onJoin(n *memberlist.Node) {
	g := m.g
	m.setMember(n, true)
	g.versions.Observe(n.Name, n.Meta)
	m.takeLeaving(n.Name) // back: a stale intent must not mark a later failure as left
	returning := g.state.Get(record.ID{Kind: record.KindHost, Key: n.Name}) != nil && !record.Live(g.state.Status(n.Name))
	g.sink.SetStatus(n.Name, record.StatusAlive)
	g.metrics.events.WithLabelValues("join").Inc()
	if n.Name != g.cfg.Name {
		g.log.Info("member joined", "member", n.Name, "addr", n.Address())
	}
	g.tree.memberChanged(n.Name, true)
	if !returning || n.Name == g.cfg.Name {
		return
	}
	// Periodic rounds must not be skipped for tree traffic while what it missed
	// or made meanwhile is compared (proto.AntiEntropy.NoteReturn).
	g.ae.returned.Store(time.Now().UnixNano())
	if g.cfg.Name < n.Name && !g.closed.Load() && proto.ExchangeOnReturn(int(g.tree.fleet.Load()), rand.Float64()) {
		// A host that comes back may have missed changes, or have changes we
		// missed: compare digests right away rather than waiting for the next round.
		// One exchange repairs both sides, so only the lower name starts it, and
		// only a few members in all (ExchangeOnReturn), or a healed partition
		// would start an exchange per pair of hosts across it. A host joining for
		// the first time is caught up by the push/pull of its join.
		go g.ae.start(n.Name)
	}
}

func (m *membership) onLeave(n *memberlist.Node) {
	g := m.g
	m.setMember(n, false)
	g.versions.Gone(n.Name)
	// n.State is not usable here: memberlist never updates the embedded Node's State
	// (nodeState.State shadows it). The leave intent (msgLeaving) tells left apart.
	status := record.StatusFailed
	if m.takeLeaving(n.Name) {
		status = record.StatusLeft
	}
	g.sink.SetStatus(n.Name, status)
	g.metrics.events.WithLabelValues(status).Inc()
	switch {
	case n.Name == g.cfg.Name: // our own leave: the agent logs it
	case status == record.StatusLeft:
		g.log.Info("member left", "member", n.Name, "addr", n.Address())
	default:
		g.log.Info("member failed", "member", n.Name, "addr", n.Address())
	}
	g.tree.memberChanged(n.Name, false)
}

func (m *membership) onUpdate(n *memberlist.Node) {
	g := m.g
	m.setMember(n, true)
	g.versions.Observe(n.Name, n.Meta)
	m.onAlive(n.Name)
}

// onAlive ends a suspicion: the host answered a probe, refuted, or spoke to us. Only
// suspect turns alive here; failed and left change on join events alone.
func (m *membership) onAlive(name string) {
	g := m.g
	if g.state.Status(name) == record.StatusSuspect {
		g.sink.SetStatus(name, record.StatusAlive)
	}
}

// onSuspect starts a suspicion; it only ever turns alive into suspect.
func (m *membership) onSuspect(name string) {
	g := m.g
	if g.state.Status(name) == record.StatusAlive {
		g.sink.SetStatus(name, record.StatusSuspect)
	}
}
