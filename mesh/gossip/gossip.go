// Package gossip owns how catalog records travel between hosts: membership and
// failure detection (hashicorp/memberlist, encrypted with the cluster's gossip key),
// the push of every change to every member, anti-entropy by digest, request/response
// calls between agents, and round-trip-time coordinates (serf/coordinate) for
// "nearest" answers.
//
// Dissemination has three layers, each covering the one before:
//  1. Publish sends a change straight to every alive member (UDP when it fits a
//     packet, TCP otherwise): one hop, so propagation is one network round trip.
//  2. The same change rides memberlist's gossip broadcasts a few times, in case a
//     packet was lost.
//  3. Anti-entropy: every interval a host sends its catalog digest (8 bytes) to one
//     random member; only when digests differ do they exchange bucket digests, then
//     the headers of differing buckets, then just the records that differ. Idle cost
//     is constant whatever the catalog size; a host that was away catches up by
//     receiving what it missed.
package gossip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/coordinate"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// Config is everything a Gossip needs; zero timings take defaults.
type Config struct {
	Name   string
	HostID uint32
	// BindAddr/BindPort is where memberlist listens (UDP and TCP).
	BindAddr string
	BindPort int
	// AdvertiseAddr/Port is what other hosts dial; empty means BindAddr.
	AdvertiseAddr string
	AdvertisePort int
	// Key is the AES gossip key (16, 24 or 32 bytes). Nil runs unencrypted, which
	// the agent only allows with an explicit insecure flag.
	Key []byte
	// ExtraKeys are accepted for decryption but never used to encrypt: during a key
	// rotation hosts hold the old and the new key at once.
	ExtraKeys [][]byte
	Join      []string

	Catalog *catalog.Catalog
	// Persist is called with records from other hosts that changed the catalog, so
	// they reach disk. It may batch; it must not block for long.
	Persist func([]*catalog.Record)

	Logger  *slog.Logger
	Metrics *Metrics

	// AEInterval is how often the digest goes to one random member (default 1s).
	AEInterval time.Duration
	// ReconnectInterval is how often failed hosts are dialed again (default 10s).
	ReconnectInterval time.Duration
	// RPCTimeout bounds Call when the context has no deadline (default 3s).
	RPCTimeout time.Duration
	// Transport replaces memberlist's network transport (tests use MockNetwork).
	Transport memberlist.Transport
	// TuneMemberlist, if set, adjusts memberlist's configuration before it starts
	// (tests shorten failure-detection timings with it).
	TuneMemberlist func(*memberlist.Config)
}

// Handler serves one RPC op. It returns a value to encode as the response body.
type Handler func(ctx context.Context, from string, body json.RawMessage) (any, error)

// Gossip is a running cluster member.
type Gossip struct {
	cfg     Config
	log     *slog.Logger
	cat     *catalog.Catalog
	ml      *memberlist.Memberlist
	queue   *memberlist.TransmitLimitedQueue
	metrics *Metrics
	coords  *coordinate.Client

	mu        sync.Mutex
	handlers  map[string]Handler
	pending   map[uint64]chan rpcResponse
	peerCoord map[string]*coordinate.Coordinate
	learned   map[string]netip.AddrPort
	aeStarted map[string]time.Time
	leaving   map[string]bool // hosts that announced a graceful leave
	nextID    atomic.Uint64
	drops     atomic.Uint64

	// ready is closed once ml is set: memberlist calls our delegates (a host joining
	// us, a message) as soon as its listeners run, before Create has returned.
	ready  chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
}

// New starts memberlist and the background loops. Joining happens in the background
// and retries until one target answers.
func New(cfg Config) (*Gossip, error) {
	if cfg.Name == "" || cfg.Catalog == nil {
		return nil, errors.New("gossip: name and catalog are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.AEInterval == 0 {
		cfg.AEInterval = time.Second
	}
	if cfg.ReconnectInterval == 0 {
		cfg.ReconnectInterval = ReconnectInterval
	}
	if cfg.RPCTimeout == 0 {
		cfg.RPCTimeout = 3 * time.Second
	}
	if cfg.Persist == nil {
		cfg.Persist = func([]*catalog.Record) {}
	}
	cc, err := coordinate.NewClient(coordinate.DefaultConfig())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &Gossip{
		cfg: cfg, log: cfg.Logger, cat: cfg.Catalog, metrics: cfg.Metrics, coords: cc,
		handlers: map[string]Handler{}, pending: map[uint64]chan rpcResponse{},
		peerCoord: map[string]*coordinate.Coordinate{},
		learned:   map[string]netip.AddrPort{},
		aeStarted: map[string]time.Time{},
		leaving:   map[string]bool{},
		ctx:       ctx, cancel: cancel, ready: make(chan struct{}),
	}
	g.handlers[opConfirm] = g.handleConfirm

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Name
	mc.BindAddr = cfg.BindAddr
	mc.BindPort = cfg.BindPort
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	mc.AdvertisePort = cfg.AdvertisePort
	if mc.AdvertisePort == 0 {
		mc.AdvertisePort = cfg.BindPort
	}
	if cfg.Key != nil {
		kr, err := memberlist.NewKeyring(cfg.ExtraKeys, cfg.Key)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("gossip keyring: %w", err)
		}
		mc.Keyring = kr
		mc.GossipVerifyIncoming = true
		mc.GossipVerifyOutgoing = true
	}
	mc.Delegate = (*delegate)(g)
	mc.Events = (*events)(g)
	mc.Ping = (*pings)(g)
	mc.Logger = log.New(&mlLog{g: g}, "", 0)
	if cfg.Transport != nil {
		mc.Transport = cfg.Transport
	}
	// Records travel by direct push, so memberlist's own gossip can stay at its
	// defaults; the probe settings decide how fast failures show (≈5 s on LAN).
	g.queue = &memberlist.TransmitLimitedQueue{NumNodes: g.numNodes, RetransmitMult: 3}
	if cfg.TuneMemberlist != nil {
		cfg.TuneMemberlist(mc)
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("gossip: %w", err)
	}
	g.ml = ml
	close(g.ready)
	g.cat.SetStatus(cfg.Name, catalog.StatusAlive)

	g.wg.Add(2)
	go g.aeLoop()
	go g.reconnectLoop()
	if len(cfg.Join) > 0 {
		g.wg.Add(1)
		go g.joinLoop(cfg.Join)
	}
	return g, nil
}

func (g *Gossip) numNodes() int {
	select {
	case <-g.ready:
		return g.ml.NumMembers()
	default:
		return 1
	}
}

// LocalAddr is the address and port memberlist advertises.
func (g *Gossip) LocalAddr() (net.IP, uint16) {
	n := g.ml.LocalNode()
	return n.Addr, n.Port
}

func (g *Gossip) joinLoop(targets []string) {
	defer g.wg.Done()
	backoff := 200 * time.Millisecond
	for {
		n, err := g.ml.Join(targets)
		if n > 0 {
			g.log.Info("joined cluster", "contacted", n)
			return
		}
		g.log.Warn("join failed, retrying", "targets", strings.Join(targets, ","), "err", err, "in", backoff)
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

// ReconnectInterval is how often we try to reach hosts the catalog knows but
// membership has declared failed. memberlist stops gossiping to dead nodes after
// GossipToTheDeadTime (30 s), so without this a partition longer than that would
// never heal on its own (serf does the same).
const ReconnectInterval = 10 * time.Second

func (g *Gossip) reconnectLoop() {
	defer g.wg.Done()
	t := time.NewTicker(g.cfg.ReconnectInterval)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
		}
		snap := g.cat.Latest()
		live := map[string]bool{}
		for _, n := range g.alive(false) {
			live[n.Name] = true
		}
		var targets []string
		for _, h := range snap.Hosts {
			if h.Name == g.cfg.Name || h.Status != catalog.StatusFailed || h.GossipPort == 0 || !h.Addr.IsValid() {
				continue
			}
			if live[h.Name] {
				continue
			}
			targets = append(targets, netip.AddrPortFrom(h.Addr, h.GossipPort).String())
		}
		if len(targets) == 0 {
			continue
		}
		// Join contacts each target over TCP (push/pull); unreachable ones just fail.
		if n, err := g.ml.Join(targets); n > 0 {
			g.log.Info("reconnected to failed hosts", "contacted", n)
		} else {
			g.log.Debug("reconnect", "targets", len(targets), "err", err)
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
		out = append(out, Member{Name: n.Name, Addr: n.Addr, Port: n.Port, Status: g.cat.Status(n.Name)})
	}
	return out
}

func (g *Gossip) alive(self bool) []*memberlist.Node {
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

func (g *Gossip) node(name string) *memberlist.Node {
	<-g.ready
	for _, n := range g.ml.Members() {
		if n.Name == name {
			return n
		}
	}
	// Membership spreads by gossip, so a host can hear from a newcomer before it
	// hears about it; answer it at the address it told us.
	g.mu.Lock()
	ap, ok := g.learned[name]
	g.mu.Unlock()
	if ok {
		return &memberlist.Node{Name: name, Addr: net.IP(ap.Addr().AsSlice()), Port: ap.Port()}
	}
	return nil
}

// learn remembers the gossip address a host sent from (bounded: only names that are
// or were hosts of the cluster matter, and the map is cleared when it grows large).
func (g *Gossip) learn(name, addr string) {
	if name == "" || addr == "" || name == g.cfg.Name {
		return
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return
	}
	g.mu.Lock()
	if len(g.learned) > 4096 {
		clear(g.learned)
	}
	g.learned[name] = ap
	g.mu.Unlock()
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

// Publish disseminates local changes: straight to every alive member now, and into the
// gossip queue as a backup.
func (g *Gossip) Publish(rs ...*catalog.Record) {
	if len(rs) == 0 || g.closed.Load() {
		return
	}
	msg, err := encode(msgRecords, rs)
	if err != nil {
		g.log.Error("encode records", "err", err)
		return
	}
	for _, n := range g.alive(false) {
		g.send(n, msgRecords, msg)
	}
	for _, r := range rs {
		if one, err := encode(msgRecords, []*catalog.Record{r}); err == nil {
			g.queue.QueueBroadcast(&broadcast{name: r.ID().String(), msg: one})
		}
	}
}

// bestEffortLimit keeps a message inside one UDP packet with memberlist's framing and
// encryption overhead.
const bestEffortLimit = 1100

func (g *Gossip) send(n *memberlist.Node, t msgType, msg []byte) {
	var err error
	if len(msg) <= bestEffortLimit {
		err = g.ml.SendBestEffort(n, msg)
	} else {
		err = g.ml.SendReliable(n, msg)
	}
	if err != nil {
		g.log.Debug("send failed", "to", n.Name, "type", t, "err", err)
		g.metrics.sendErrors.WithLabelValues(t.String()).Inc()
		return
	}
	g.metrics.sent.WithLabelValues(t.String()).Inc()
	if (t >= msgAERoot && t <= msgAEWant) || t == msgAESubs {
		g.metrics.aeBytes.WithLabelValues("sent").Add(float64(len(msg)))
	}
}

func (g *Gossip) sendTo(name string, t msgType, v any) error {
	n := g.node(name)
	if n == nil {
		return fmt.Errorf("host %q is not a member", name)
	}
	msg, err := encode(t, v)
	if err != nil {
		return err
	}
	g.send(n, t, msg)
	return nil
}

// receive dispatches one user message. It never panics on input and counts drops.
func (g *Gossip) receive(buf []byte) {
	t, body, err := decode(buf)
	if err != nil {
		g.drop("malformed", err)
		return
	}
	g.metrics.received.WithLabelValues(t.String()).Inc()
	if (t >= msgAERoot && t <= msgAEWant) || t == msgAESubs {
		g.metrics.aeBytes.WithLabelValues("received").Add(float64(len(buf)))
	}
	switch t {
	case msgRecords:
		rs, err := decodeRecords(body)
		if err != nil {
			g.drop("invalid_record", err)
			return
		}
		g.merge(rs)
	case msgAERoot:
		dispatch(g, body, g.onAERoot)
	case msgAEBuckets:
		dispatch(g, body, g.onAEBuckets)
	case msgAESubs:
		dispatch(g, body, g.onAESubs)
	case msgAEHeaders:
		dispatch(g, body, g.onAEHeaders)
	case msgAEWant:
		dispatch(g, body, g.onAEWant)
	case msgRPCReq:
		dispatch(g, body, func(m rpcRequest) {
			g.wg.Add(1)
			go g.serveRPC(m)
		})
	case msgLeaving:
		var name string
		if g.unmarshal(body, &name) && name != "" && name != g.cfg.Name {
			g.markLeaving(name)
		}
	case msgRPCResp:
		var m rpcResponse
		if g.unmarshal(body, &m) {
			g.mu.Lock()
			ch := g.pending[m.ID]
			delete(g.pending, m.ID)
			g.mu.Unlock()
			if ch != nil {
				ch <- m
			}
		}
	}
}

// dispatch decodes a message that names its sender, remembers the sender's address
// and hands the message on.
func dispatch[T interface{ sender() origin }](g *Gossip, body []byte, f func(T)) {
	var m T
	if g.unmarshal(body, &m) {
		o := m.sender()
		g.learn(o.From, o.Addr)
		f(m)
	}
}

func (g *Gossip) origin() origin { return origin{From: g.cfg.Name, Addr: g.selfAddr()} }

func (g *Gossip) unmarshal(b []byte, v any) bool {
	if err := json.Unmarshal(b, v); err != nil {
		g.drop("malformed", err)
		return false
	}
	return true
}

// Dropped counts gossip input rejected so far (also exported as a metric).
func (g *Gossip) Dropped() uint64 { return g.drops.Load() }

func (g *Gossip) drop(reason string, err error) {
	g.drops.Add(1)
	g.metrics.dropped.WithLabelValues(reason).Inc()
	g.log.Debug("dropped gossip message", "reason", reason, "err", err)
}

// merge applies records from other hosts and persists what changed.
func (g *Gossip) merge(rs []*catalog.Record) []*catalog.Record {
	changed := g.cat.ApplyAll(rs)
	if len(changed) > 0 {
		g.cfg.Persist(changed)
	}
	return changed
}

// Leave announces a graceful departure and waits up to timeout for it to spread.
// Every member is told first (reliably), so it records the host as left rather than
// failed when memberlist reports it gone.
func (g *Gossip) Leave(timeout time.Duration) error {
	if msg, err := encode(msgLeaving, g.cfg.Name); err == nil {
		for _, n := range g.alive(false) {
			if err := g.ml.SendReliable(n, msg); err != nil {
				g.log.Debug("send leave intent", "to", n.Name, "err", err)
			}
		}
	}
	return g.ml.Leave(timeout)
}

// markLeaving records a leave intent. If memberlist already reported the host gone
// (the intent arrived late), its status is corrected to left.
func (g *Gossip) markLeaving(name string) {
	g.mu.Lock()
	g.leaving[name] = true
	g.mu.Unlock()
	if !g.isMember(name) && g.cat.Status(name) == catalog.StatusFailed {
		g.cat.SetStatus(name, catalog.StatusLeft)
	}
}

// isMember reports whether memberlist counts name as a live member (g.node also
// answers hosts only learned from their messages).
func (g *Gossip) isMember(name string) bool {
	<-g.ready
	for _, n := range g.ml.Members() {
		if n.Name == name {
			return true
		}
	}
	return false
}

// takeLeaving reports and clears whether name announced a graceful leave.
func (g *Gossip) takeLeaving(name string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	ok := g.leaving[name]
	delete(g.leaving, name)
	return ok
}

// Close stops everything. Call Leave first for a graceful exit.
func (g *Gossip) Close() error {
	if g.closed.Swap(true) {
		return nil
	}
	g.cancel()
	err := g.ml.Shutdown()
	g.wg.Wait()
	return err
}

// RTT estimates the round-trip time to a host from network coordinates.
func (g *Gossip) RTT(name string) (time.Duration, bool) {
	if name == g.cfg.Name {
		return 0, true
	}
	g.mu.Lock()
	c := g.peerCoord[name]
	g.mu.Unlock()
	if c == nil {
		return 0, false
	}
	return g.coords.DistanceTo(c), true
}

// mlLog adapts memberlist's log.Logger output to slog and counts the messages that
// mean bad input was dropped (wrong key, garbage, unknown types).
type mlLog struct{ g *Gossip }

func (w *mlLog) Write(p []byte) (int, error) {
	s := strings.TrimSpace(string(p))
	switch {
	case strings.Contains(s, "[ERR]"):
		reason := "memberlist"
		if strings.Contains(s, "ecrypt") || strings.Contains(s, "No installed keys") {
			reason = "decrypt"
		}
		w.g.drops.Add(1)
		w.g.metrics.dropped.WithLabelValues(reason).Inc()
		w.g.log.Warn(s)
	case strings.Contains(s, "memberlist: Suspect "):
		// memberlist has no event for suspicion and never updates the State of the
		// Nodes it hands out, so its own log line is the only signal. The next
		// acknowledged probe (pings.NotifyPingComplete) or a failure event ends it.
		if f := strings.Fields(s[strings.Index(s, "memberlist: Suspect ")+len("memberlist: Suspect "):]); len(f) > 0 {
			if w.g.cat.Status(f[0]) == catalog.StatusAlive {
				w.g.cat.SetStatus(f[0], catalog.StatusSuspect)
			}
		}
		w.g.log.Info(s)
	case strings.Contains(s, "[WARN]"):
		w.g.log.Warn(s)
	case strings.Contains(s, "[DEBUG]"):
		w.g.log.Debug(s)
	default:
		w.g.log.Info(s)
	}
	return len(p), nil
}

// Key parsing lives here because it is memberlist's format.

// ParseKeys decodes a gossip key file: one base64 key per line (blank lines and
// '#' comments ignored). The first key encrypts; the others are only accepted, which
// is how a key is rotated without a flag day.
func ParseKeys(s string) (primary []byte, extra [][]byte, err error) {
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := ParseKey(line)
		if err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		if primary == nil {
			primary = k
		} else {
			extra = append(extra, k)
		}
	}
	if primary == nil {
		return nil, nil, errors.New("no key in the file")
	}
	return primary, extra, nil
}

// ParseKey decodes one gossip key: base64 of 16, 24 or 32 bytes.
func ParseKey(s string) ([]byte, error) {
	b, err := decodeBase64(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("gossip key is not base64: %w", err)
	}
	switch len(b) {
	case 16, 24, 32:
		return b, nil
	}
	return nil, fmt.Errorf("gossip key must be 16, 24 or 32 bytes, got %d", len(b))
}
