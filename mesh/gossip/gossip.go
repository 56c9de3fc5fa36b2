// Package gossip is the transport between hosts: membership and failure detection
// (hashicorp/memberlist, encrypted with the cluster's gossip keys, with a replay
// seal on every message), dissemination of record changes, anti-entropy by digest,
// request/response calls between agents, version negotiation, and round-trip-time
// coordinates (serf/coordinate) for "nearest" answers.
//
// It must not decide what records mean or write local state: what it learns goes
// to a Sink (records from other hosts, member statuses), and what it sends comes
// from a Reader and from Publish. It imports record types (mesh/record) but never
// the catalog. Nothing it runs inside a memberlist callback waits on the network.
//
// Gossip composes one type per concern, each in its own file: membership
// (membership.go), the broadcast tree (dissemination.go), anti-entropy
// (antientropy.go), RPC (rpc.go), the keyring (keyring.go), coordinates
// (coordinates.go); send.go sends, replay.go seals and opens.
//
// Dissemination has two layers, the second covering the first:
//  1. The broadcast tree (proto.Tree): a change goes to every host along a tree
//     laid out from membership, one eager copy per host, and is announced by id on
//     a few other links, so a lost copy is grafted from a neighbor.
//  2. Anti-entropy: every interval a host sends its digest (8 bytes) to one random
//     member; only when digests differ do they exchange bucket digests, then leaf
//     digests, then the headers of differing leaves, then just the records that
//     differ. Idle cost is constant whatever the catalog size; a host that was away
//     catches up by receiving what it missed.
package gossip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/coordinate"

	"github.com/dogwood/dogwood/mesh/gossip/proto"
	"github.com/dogwood/dogwood/mesh/record"
)

// Config is everything a Gossip needs; zero timings take defaults.
type Config struct {
	Name   string
	HostID uint32
	// CompactTree forces the broadcast tree's compact messages (proto.TreeConfig.
	// Compact: id-less packs of changes, 3-byte digests in announcements and
	// grafts) on whatever the members speak. Unset, the tree sends them while every
	// member it talks to speaks protocol 3 or later (Versions.speak; the release
	// before reads none).
	CompactTree bool
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

	// Sink takes the records and member statuses gossip learns; Reader is what it
	// reads of local state. See their concurrency contracts.
	Sink   Sink
	Reader Reader
	// Admit, when set, refuses records from other hosts over a per-record limit
	// (quota.Limits.CheckRecord); tombstones are always admitted.
	Admit func(*record.Record) error

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

// Sink takes what gossip learns from other hosts. Gossip calls it from memberlist's
// goroutines (its delegates: packet and stream handlers, the probe loop) and from
// its own (the tree, anti-entropy, RPC handlers), concurrently: as memberlist asks
// of its delegates, a Sink must be safe for concurrent use and must not block on
// disk or network (persisting what changed is queued, not waited for).
type Sink interface {
	// Merge takes valid, admitted records from other hosts and returns those that
	// changed local state.
	Merge(rs []*record.Record) []*record.Record
	// SetStatus records a member's status (record.StatusAlive, …); it reports
	// whether the status changed.
	SetStatus(name, status string) bool
}

// Reader is what gossip reads of local state: the anti-entropy digests and the
// records they repair, member statuses, and where to reach failed hosts. Called on
// the same goroutines as Sink, it must answer from memory without blocking.
type Reader interface {
	proto.Store
	// Get returns the record with this id, tombstones included, or nil.
	Get(record.ID) *record.Record
	// Status is a member's last status ("" when unknown).
	Status(name string) string
	// Failed lists the hosts local state holds as failed, with the gossip address
	// each last advertised (hosts without one are left out).
	Failed() []Peer
}

// Peer is a host and the gossip address to reach it at.
type Peer struct {
	Name string
	Addr netip.AddrPort
}

// Handler serves one RPC op. It returns a value to encode as the response body.
// An alias, so that packages serving calls name the signature without importing
// this one.
type Handler = func(ctx context.Context, from string, body json.RawMessage) (any, error)

// Gossip is a running cluster member.
type Gossip struct {
	cfg     Config
	log     *slog.Logger
	sink    Sink
	state   Reader
	ml      *memberlist.Memberlist
	keyring // Keys, InstallKey, UseKey, RemoveKey
	metrics *Metrics
	*coords // RTT

	ae   *antiEntropy
	tree *broadcast

	members *membership
	// reliable holds a token per TCP send in flight (send.go).
	reliable chan struct{}

	*rpcs    // Call, Handle
	replay   *replayGuard
	drops    atomic.Uint64
	versions *Versions

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
	if cfg.Name == "" || cfg.Sink == nil || cfg.Reader == nil {
		return nil, errors.New("gossip: name, sink and reader are required")
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
		cfg.ReconnectInterval = reconnectInterval
	}
	if cfg.RPCTimeout == 0 {
		cfg.RPCTimeout = 3 * time.Second
	}
	cc, err := coordinate.NewClient(coordinate.DefaultConfig())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &Gossip{
		cfg: cfg, log: cfg.Logger, sink: cfg.Sink, state: cfg.Reader, metrics: cfg.Metrics, coords: &coords{self: cfg.Name, client: cc, peers: map[string]*coordinate.Coordinate{}},
		ctx: ctx, cancel: cancel, ready: make(chan struct{}),
	}
	g.replay = newReplayGuard(nil)
	g.versions = newVersions(cfg.Name, cfg.Logger)
	g.rpcs = newRPCs(g)
	g.members = newMembership(g)
	g.reliable = make(chan struct{}, maxReliableSends)
	g.ae = &antiEntropy{g: g, ex: proto.NewAntiEntropy(cfg.Reader, aeDedupe)}
	g.tree = newBroadcast(g)

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
		g.keyring = keyring{kr}
		mc.GossipVerifyIncoming = true
		mc.GossipVerifyOutgoing = true
	}
	mc.Delegate = (*delegate)(g)
	mc.Events = (*events)(g)
	mc.Ping = (*pings)(g)
	mc.Alive = (*alives)(g)
	// memberlist LZW-compresses every packet by default, allocating fresh tables each
	// time: at a few hundred hosts that garbage alone kept two cores busy. Our
	// messages are small and binary or already compact.
	mc.EnableCompression = false
	mc.Logger = log.New(&mlLog{g: g}, "", 0)
	tr := cfg.Transport
	if tr == nil {
		nt, err := NewTransport(mc.BindAddr, mc.BindPort, mc.Logger)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("gossip: %w", err)
		}
		if mc.BindPort == 0 {
			mc.BindPort = nt.GetAutoBindPort()
			if cfg.AdvertisePort == 0 {
				mc.AdvertisePort = mc.BindPort
			}
		}
		tr = newStreamLimiter(nt, maxStreams, maxStreamsPerSource, func() { g.drop("stream_cap", nil) })
	}
	mc.Transport = &watchedTransport{Transport: tr, unreachable: g.members.onSuspect}
	// Records travel on our broadcast tree, not memberlist's gossip broadcasts; the
	// probe settings decide how fast failures show (≈5 s on LAN).
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
	g.sink.SetStatus(cfg.Name, record.StatusAlive)

	g.wg.Add(3)
	go g.ae.loop()
	go g.tree.loop()
	go g.members.reconnectLoop()
	if len(cfg.Join) > 0 {
		g.wg.Add(1)
		go g.members.joinLoop(cfg.Join)
	}
	return g, nil
}

// receive dispatches one user message. It never panics on input and counts drops.
func (g *Gossip) receive(buf []byte) {
	buf, ok := g.unseal(buf)
	if !ok {
		return
	}
	t, body, err := decode(buf)
	if err != nil {
		g.drop("malformed", err)
		return
	}
	g.metrics.receivedBy.of(t).Inc()
	if (t >= msgAERoot && t <= msgAEWant) || t == msgAESubs {
		g.metrics.aeReceived.of(0).Add(float64(len(buf)))
	}
	switch t {
	case msgRecords:
		rs, err := decodeRecordList(body)
		if err != nil {
			g.drop("invalid_record", err)
			return
		}
		g.merge(rs)
	case msgAERoot:
		dispatch(g, body, func(m aeRoot) { onAEMsg(g, m.From, m.AERoot) })
	case msgAEBuckets:
		dispatch(g, body, func(m aeBuckets) { onAEMsg(g, m.From, m.AEBuckets) })
	case msgAESubs:
		dispatch(g, body, func(m aeSubs) { onAEMsg(g, m.From, m.AESubs) })
	case msgAEHeaders:
		dispatch(g, body, func(m aeHeaders) { onAEMsg(g, m.From, m.AEHeaders) })
	case msgAEWant:
		dispatch(g, body, func(m aeWant) { onAEMsg(g, m.From, m.AEWant) })
	case msgRPCReq:
		dispatch(g, body, func(m rpcRequest) {
			g.wg.Add(1)
			go g.rpcs.serve(m)
		})
	case msgTree:
		g.tree.receive(body)
	case msgLeaving:
		var name string
		if g.unmarshal(body, &name) && name != "" && name != g.cfg.Name {
			g.members.markLeaving(name)
		}
	case msgRPCResp:
		var m rpcResponse
		if g.unmarshal(body, &m) {
			g.rpcs.deliver(m)
		}
	}
}

// dispatch decodes a message that names its sender, remembers the sender's address
// and hands the message on.
func dispatch[T interface{ sender() origin }](g *Gossip, body []byte, f func(T)) {
	var m T
	if g.unmarshal(body, &m) {
		o := m.sender()
		g.members.learn(o.From, o.Addr)
		g.members.onAlive(o.From)
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

// Versions is what this host knows of its members' protocol versions.
func (g *Gossip) Versions() *Versions { return g.versions }

// Dropped counts gossip input rejected so far (also exported as a metric).
func (g *Gossip) Dropped() uint64 { return g.drops.Load() }

func (g *Gossip) drop(reason string, err error) {
	g.drops.Add(1)
	g.metrics.dropped.WithLabelValues(reason).Inc()
	g.log.Debug("dropped gossip message", "reason", reason, "err", err)
}

// Merge takes records from other hosts that arrived outside gossip (claim RPCs)
// the way gossip takes its own: admitted, then handed to the sink.
func (g *Gossip) Merge(rs []*record.Record) { g.merge(rs) }

// merge hands admitted records from other hosts to the sink.
func (g *Gossip) merge(rs []*record.Record) []*record.Record {
	if g.cfg.Admit != nil {
		kept := rs[:0:0]
		for _, r := range rs {
			if err := g.cfg.Admit(r); err != nil && !r.Deleted {
				g.drop("over_limit", err)
				continue
			}
			kept = append(kept, r)
		}
		rs = kept
	}
	return g.sink.Merge(rs)
}

// Leave announces a graceful departure and waits up to timeout for it to spread.
// Every member is told first (reliably), so it records the host as left rather than
// failed when memberlist reports it gone.
func (g *Gossip) Leave(timeout time.Duration) error {
	if msg, err := encode(msgLeaving, g.cfg.Name); err == nil {
		for _, n := range g.members.alive(false) {
			if err := g.ml.SendReliable(n, msg); err != nil {
				g.log.Debug("send leave intent", "to", n.Name, "err", err)
			}
		}
	}
	return g.ml.Leave(timeout)
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
