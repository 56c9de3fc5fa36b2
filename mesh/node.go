package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/claim"
	"github.com/dogwood/dogwood/mesh/gossip"
	"github.com/dogwood/dogwood/mesh/quota"
	"github.com/dogwood/dogwood/mesh/sixpn"
	"github.com/dogwood/dogwood/mesh/store"
)

// Config is what a host is told at start; identity comes from the data dir.
type Config struct {
	// Name is the host's name; empty means the stored one, or the OS hostname on first start.
	Name    string
	DataDir string
	Region  string
	// GossipAddr is the memberlist bind address "ip:port".
	GossipAddr string
	// Advertise is "ip" or "ip:port" other hosts use; empty means GossipAddr's.
	Advertise string
	Join      []string
	GossipKey []byte
	// GossipExtraKeys are accepted but not used to encrypt (key rotation).
	GossipExtraKeys [][]byte

	WGPort         uint16
	WireGuard      bool // false with --wireguard off: no public key is advertised
	Gateway        bool
	PublicEndpoint string

	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Clock      func() time.Time

	AEInterval time.Duration
	Transport  memberlist.Transport
	// Gossip tuning for tests: memberlist timings and the reconnect interval.
	TuneMemberlist    func(*memberlist.Config)
	ReconnectInterval time.Duration

	// Install, when set, brings the data plane in line with the catalog now and
	// returns only the failures that concern object id. Machine and peer operations
	// call it so they return only once the change is installed.
	Install func(ctx context.Context, id catalog.ID) error
	// OnIdentity, when set, runs once the host's identity is loaded and before the
	// host joins or announces itself. The agent brings WireGuard up here, so no other
	// host ever sends a handshake to a port that is not listening yet (a lost first
	// handshake costs a 5 s retry).
	OnIdentity func(name string, key wgtypes.Key) error
	// PeerStats, when set, reports the data plane's view of WireGuard peers by key.
	PeerStats func() map[string]PeerStat
	// TombstoneTTL is how long tombstones are kept (--tombstone-ttl, default 72h).
	TombstoneTTL time.Duration
	// Limits are the quotas (SPEC §10); zero fields take quota.Defaults.
	Limits quota.Limits
	// IdentityTimeout bounds how long Start waits for a joined host to tell it what
	// the cluster holds under its name (default 3s).
	IdentityTimeout time.Duration
	// Invites, when set on a gateway, issues and redeems invitations.
	Invites *InviteConfig
}

// Node is a running host. It builds the resource types and exposes them; callers
// use them directly (node.Machines.Create).
type Node struct {
	Machines   *Machines
	Apps       *Apps
	Orgs       *Orgs
	Networks   *Networks
	Peers      *Peers
	DNSRecords *DNSRecords
	Invites    *Invites
	Members    *Members

	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	store   *store.Store
	cat     *catalog.Catalog
	gossip  *gossip.Gossip
	claims  *claim.Claimer // name reservations, over gossip
	id      store.Identity
	wgKey   wgtypes.Key
	metrics *metrics
	advAddr netip.Addr

	createMu sync.Mutex // serializes name checks with their writes
	allocMu  sync.Mutex // serializes allocation under the host id with changes of the id

	remote    *remoteWriter // other hosts' records to disk
	outMu     sync.Mutex
	outbox    []*catalog.Record // recorded local writes not yet published
	fatal     chan struct{}
	fatalOnce sync.Once
	fatalErr  error
	// confirmed: since it started, a host of the cluster told this host what it
	// holds under its name (or this is the first host); until then no writes.
	confirmed atomic.Bool

	conflictMu   sync.Mutex
	conflictSeen map[string]bool // conflicts already reported, so re-sent losers are not logged again
	wg           sync.WaitGroup
	stop         chan struct{}
	closeOnce    sync.Once
}

// Start opens the data dir, restores identity and catalog, and joins the cluster.
func Start(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.TombstoneTTL <= 0 {
		cfg.TombstoneTTL = DefaultTombstoneTTL
	}
	if cfg.IdentityTimeout == 0 {
		cfg.IdentityTimeout = 3 * time.Second
	}
	if cfg.Region == "" {
		cfg.Region = "local"
	}
	if err := ValidRegion(cfg.Region); err != nil {
		return nil, err
	}
	st, err := store.Open(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if m := st.Migrated(); m != nil {
		cfg.Logger.Info("data dir migrated from an older release's layout", "from", m.From, "to", m.To,
			"records_rewritten", m.Rewritten, "records_dropped", m.Dropped, "backup", m.Backup)
	}
	n := &Node{cfg: cfg, log: cfg.Logger, now: cfg.Clock, store: st, stop: make(chan struct{}), fatal: make(chan struct{})}
	n.remote = newRemoteWriter(st.Put, func(ids []catalog.ID) []*catalog.Record { return n.cat.Records(ids) },
		cfg.Logger.With("component", "persist"), cfg.Clock)
	if err := n.start(); err != nil {
		st.Close()
		return nil, err
	}
	return n, nil
}

func (n *Node) start() error {
	cfg := n.cfg
	id, ok, err := n.store.Identity()
	if err != nil {
		return err
	}
	if ok && cfg.Name != "" && cfg.Name != id.Name {
		return invalid("data dir %s belongs to host %q, not %q", cfg.DataDir, id.Name, cfg.Name)
	}
	if !ok {
		name := cfg.Name
		if name == "" {
			if name, err = os.Hostname(); err != nil {
				return err
			}
		}
		if err := ValidHostName(name); err != nil {
			return err
		}
		key, err := wgtypes.GeneratePrivateKey()
		if err != nil {
			return err
		}
		id = store.Identity{Name: name, HostID: sixpn.Random32(), PrivateKey: key.String(), Gen: 1}
	}
	if n.wgKey, err = wgtypes.ParseKey(id.PrivateKey); err != nil {
		return fmt.Errorf("stored WireGuard key: %w", err)
	}
	n.cat = catalog.New(id.Name)
	if ok {
		// Known before the load, the id lets the catalog index this host's machines as
		// it applies them, instead of walking every machine again afterwards.
		n.cat.SetSelfID(id.HostID)
	}
	if err := n.loadCatalog(); err != nil {
		return err
	}
	if ok {
		if err := n.forgetIfAway(id); err != nil {
			return err
		}
	}
	n.cat.SetHorizon(func() time.Time { return n.now().Add(-cfg.TombstoneTTL) })
	if err := n.store.Delete(n.cat.Collect()...); err != nil {
		return err
	}
	if !ok {
		// Never take an id the catalog we restored already knows (tombstones too).
		for len(n.cat.HostIDClaims(id.HostID)) > 0 {
			id.HostID = sixpn.Random32()
		}
		id.Created = catalog.Stamp{Clock: n.cat.Clock() + 1, Node: id.HostID}
		if err := n.store.SaveIdentity(id); err != nil {
			return err
		}
	}
	n.id = id
	n.cat.SetSelfID(id.HostID)
	if cfg.OnIdentity != nil {
		if err := cfg.OnIdentity(id.Name, n.wgKey); err != nil {
			return err
		}
	}
	n.metrics = newMetrics(cfg.Registerer, n)
	n.cat.OnConflict(n.onConflict)

	host, portStr, err := net.SplitHostPort(cfg.GossipAddr)
	if err != nil {
		return invalid("invalid --gossip-addr %q: want IP:PORT", cfg.GossipAddr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return invalid("invalid --gossip-addr port %q", portStr)
	}
	advHost, advPort := host, port
	if cfg.Advertise != "" {
		if h, p, err := net.SplitHostPort(cfg.Advertise); err == nil {
			advHost = h
			if advPort, err = strconv.Atoi(p); err != nil {
				return invalid("invalid --advertise %q", cfg.Advertise)
			}
		} else {
			advHost = cfg.Advertise
		}
	}
	if advHost == "" || advHost == "0.0.0.0" || advHost == "::" {
		return invalid("--advertise is required when --gossip-addr binds every address")
	}
	if n.advAddr, err = netip.ParseAddr(advHost); err != nil {
		return invalid("invalid advertise address %q: want an IP address", advHost)
	}

	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.remote.run(n.stop, persistWindow) }()
	sink := gossipSink{Catalog: n.cat, persist: n.persistAsync}
	g, err := gossip.New(gossip.Config{
		Name: id.Name, HostID: id.HostID,
		BindAddr: host, BindPort: port, AdvertiseAddr: advHost, AdvertisePort: advPort,
		Key: cfg.GossipKey, ExtraKeys: cfg.GossipExtraKeys, Join: cfg.Join,
		Sink: sink, Reader: sink, Admit: cfg.Limits.CheckRecord, Logger: n.log.With("component", "gossip"),
		Metrics: gossip.NewMetrics(cfg.Registerer), AEInterval: cfg.AEInterval,
		Transport: cfg.Transport, TuneMemberlist: cfg.TuneMemberlist, ReconnectInterval: cfg.ReconnectInterval,
	})
	if err != nil {
		close(n.stop)
		n.wg.Wait()
		return err
	}
	n.gossip = g
	n.claims = claim.New(claim.Config{Self: id.Name, Caller: g, Members: g, Reader: n.cat, Merger: g,
		Logger: n.log.With("component", "claim")})
	wireResources(n)
	n.gossip.Handle(opHostLookup, n.handleHostLookup)
	n.Invites.register(n.gossip)
	if err := n.syncIdentity(cfg.IdentityTimeout); err != nil {
		n.Close()
		return identityAdvice(err, cfg.DataDir)
	}
	n.allocMu.Lock()
	err = n.writeHostRecord()
	n.allocMu.Unlock()
	n.flush()
	if err != nil {
		n.Close()
		return identityAdvice(err, cfg.DataDir)
	}
	n.registerRPC()
	n.wg.Add(3)
	go func() { defer n.wg.Done(); n.Peers.gw.expire(n.stop) }()
	go n.identityLoop()
	go n.gcLoop()
	return nil
}

// loadCatalog applies the stored records batch by batch (the catalog keeps records
// far more compactly than decoded ones, so holding them all decoded at once would be
// most of the start's peak memory), decoding the next batch while the catalog applies
// one: with a million records that halves the start. Batches arrive in key order, so
// the result does not depend on timing.
func (n *Node) loadCatalog() error {
	batches := make(chan []*catalog.Record, 1)
	done := make(chan error, 1)
	go func() {
		done <- n.store.LoadEach(100_000, func(rs []*catalog.Record) { batches <- rs })
		close(batches)
	}()
	for rs := range batches {
		n.cat.ApplyAll(rs)
	}
	return <-done
}

// Close leaves nothing running. Call Leave first for a graceful exit.
func (n *Node) Close() error {
	var err error
	n.closeOnce.Do(func() {
		var errs []error
		if n.gossip != nil {
			// The contact time is what a restart compares with the tombstone horizon.
			if n.inTouch() {
				if e := n.store.SaveAliveAt(n.now()); e != nil {
					errs = append(errs, fmt.Errorf("save last contact time: %w", e))
				}
			}
			if e := n.gossip.Close(); e != nil {
				errs = append(errs, fmt.Errorf("close gossip: %w", e))
			}
		}
		close(n.stop)
		n.wg.Wait()
		errs = append(errs, n.remote.write()) // what is still queued
		if e := n.store.Close(); e != nil {
			errs = append(errs, fmt.Errorf("close data file: %w", e))
		}
		err = errors.Join(errs...)
	})
	return err
}

// DiskBehind is nil unless records from other hosts that this host applied are not
// yet on its disk because writing them failed (they are retried); readiness and
// doctor report it.
func (n *Node) DiskBehind() error { return n.remote.behind() }

// Leave tells the cluster this host is going away on purpose.
func (n *Node) Leave(timeout time.Duration) error { return n.gossip.Leave(timeout) }

// Identity accessors.
func (n *Node) Name() string                          { return n.id.Name }
func (n *Node) HostID() uint32                        { return n.id.HostID }
func (n *Node) Region() string                        { return n.cfg.Region }
func (n *Node) PrivateKey() wgtypes.Key               { return n.wgKey }
func (n *Node) Catalog() *catalog.Catalog             { return n.cat }
func (n *Node) Snapshot() *catalog.Snapshot           { return n.cat.Snapshot() }
func (n *Node) Gossip() *gossip.Gossip                { return n.gossip }
func (n *Node) RTT(host string) (time.Duration, bool) { return n.gossip.RTT(host) }

// Backup streams a consistent copy of this host's data file.
func (n *Node) Backup(w io.Writer) (int64, error) { return n.store.Backup(w) }
