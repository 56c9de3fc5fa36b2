package mesh

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/claim"
	"github.com/dogwood/dogwood/mesh/clock"
	"github.com/dogwood/dogwood/mesh/gossip"
	"github.com/dogwood/dogwood/mesh/quota"
	"github.com/dogwood/dogwood/mesh/replica"
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
	// Clock drives the core's timers (the persister's window, tombstone collection,
	// the identity check); nil is the wall clock. Tests pass a clock.Fake.
	Clock clock.Clock

	AEInterval time.Duration
	Transport  memberlist.Transport
	// Gossip tuning for tests: memberlist timings and the reconnect interval.
	TuneMemberlist    func(*memberlist.Config)
	ReconnectInterval time.Duration

	// DataPlane is the host's data plane (the agent's WireGuard, links and
	// filters); nil means none, as in tests.
	DataPlane DataPlane
	// TombstoneTTL is how long tombstones are kept (--tombstone-ttl, default 72h).
	TombstoneTTL time.Duration
	// Limits are the quotas (SPEC §10); zero fields take quota.Defaults().
	Limits quota.Limits
	// IdentityTimeout bounds how long Start waits for a joined host to tell it what
	// the cluster holds under its name (default 3s).
	IdentityTimeout time.Duration
	// Invites, when set on a gateway, issues and redeems invitations.
	Invites *InviteConfig
}

// Node is a running host. It builds the core's parts and hands each its neighbours
// as interfaces — the replica (the only writer of catalog and disk), admission
// (identity and the write gate), names (unique-name writes), the transport — then the
// resource types on top, which callers use directly (node.Machines.Create). It closes
// them in order and does nothing else.
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
	rep     *replica.Replica
	adm     *admission
	names   *names
	wgKey   wgtypes.Key
	metrics *metrics

	wg        sync.WaitGroup
	stop      chan struct{}
	closeOnce sync.Once
}

// Start opens the data dir, restores identity and catalog, and joins the cluster.
func Start(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
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
	n := &Node{cfg: cfg, log: cfg.Logger, now: cfg.Clock.Now, store: st, stop: make(chan struct{})}
	if err := n.start(); err != nil {
		st.Close()
		return nil, err
	}
	return n, nil
}

func (n *Node) start() error {
	cfg := n.cfg
	addrs, err := parseAddrs(cfg)
	if err != nil {
		return err
	}
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
	n.metrics = newMetrics()
	n.adm = newAdmission(cfg, cfg.Clock, n.store, n.cat, id, n.wgKey, addrs.advAddr)
	n.rep = replica.New(replica.Config{
		Catalog: n.cat, Durable: n.store, Gate: n.adm, Cluster: n.adm, Clock: cfg.Clock, TTL: cfg.TombstoneTTL,
		// The transport starts after the replica (it hands records to it); nothing is
		// published before it runs.
		Publisher: replica.PublishFunc(func(rs ...*catalog.Record) { n.gossip.Publish(rs...) }),
		Check: func(r *catalog.Record) error {
			if err := cfg.Limits.CheckRecord(r); err != nil {
				return overLimit(err)
			}
			return nil
		},
		Log:     n.log,
		Metrics: replica.Metrics{Writes: n.metrics.writes, Collected: n.metrics.collected, Conflicts: n.metrics.conflicts},
	})
	n.adm.w = n.rep
	if err := n.rep.Restore(id.Name, id.HostID, ok); err != nil {
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
	n.adm.id = id
	n.cat.SetSelfID(id.HostID)
	if cfg.DataPlane != nil {
		if err := cfg.DataPlane.Up(id.Name, n.wgKey, n.cat); err != nil {
			return err
		}
	}
	n.metrics.register(cfg.Registerer, n.cat)

	n.rep.Start()
	g, err := gossip.New(gossip.Config{
		Name: id.Name, HostID: id.HostID,
		BindAddr: addrs.host, BindPort: addrs.port, AdvertiseAddr: addrs.advHost, AdvertisePort: addrs.advPort,
		Key: cfg.GossipKey, ExtraKeys: cfg.GossipExtraKeys, Join: cfg.Join,
		Sink: n.rep, Reader: gossipReader{n.cat}, Admit: cfg.Limits.CheckRecord, Logger: n.log.With("component", "gossip"),
		Metrics: gossip.NewMetrics(cfg.Registerer), AEInterval: cfg.AEInterval,
		Transport: cfg.Transport, TuneMemberlist: cfg.TuneMemberlist, ReconnectInterval: cfg.ReconnectInterval,
	})
	if err != nil {
		return errors.Join(err, n.rep.Close())
	}
	n.gossip = g
	n.adm.net = gossipTransport{g}
	n.claims = claim.New(claim.Config{Self: id.Name, Caller: g, Members: g, Reader: n.cat, Merger: g,
		Logger: n.log.With("component", "claim")})
	n.names = &names{r: n.cat, w: n.rep, arbiters: n.claims, log: n.log}
	wireResources(n)
	g.Handle(opHostLookup, n.adm.handleHostLookup)
	n.Invites.register(g)
	if err := n.adm.start(); err != nil {
		n.Close()
		return err
	}
	// Served only once the host's identity stands: an operation sent while a host is
	// still starting, or to a host that turns out removed, is refused, not run
	// half-started. The identity lookup and invites are served from the beginning.
	n.Machines.register(g)
	n.Peers.register(g)
	n.rep.StartGC()
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.Peers.gw.expire(n.stop) }()
	return nil
}

// addrs is where the host listens for gossip and what it tells others.
type addrs struct {
	host, advHost string
	port, advPort int
	advAddr       netip.Addr
}

// parseAddrs checks --gossip-addr and --advertise.
func parseAddrs(cfg Config) (addrs, error) {
	var a addrs
	host, portStr, err := net.SplitHostPort(cfg.GossipAddr)
	if err != nil {
		return a, invalid("invalid --gossip-addr %q: want IP:PORT", cfg.GossipAddr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return a, invalid("invalid --gossip-addr port %q", portStr)
	}
	advHost, advPort := host, port
	if cfg.Advertise != "" {
		if h, p, err := net.SplitHostPort(cfg.Advertise); err == nil {
			advHost = h
			if advPort, err = strconv.Atoi(p); err != nil {
				return a, invalid("invalid --advertise %q", cfg.Advertise)
			}
		} else {
			advHost = cfg.Advertise
		}
	}
	if advHost == "" || advHost == "0.0.0.0" || advHost == "::" {
		return a, invalid("--advertise is required when --gossip-addr binds every address")
	}
	advAddr, err := netip.ParseAddr(advHost)
	if err != nil {
		return a, invalid("invalid advertise address %q: want an IP address", advHost)
	}
	return addrs{host: host, port: port, advHost: advHost, advPort: advPort, advAddr: advAddr}, nil
}

// gossipReader is what gossip reads of local state: the catalog, and the failed
// hosts at the gossip address their host record holds.
type gossipReader struct{ *catalog.Catalog }

// Failed lists the failed hosts with a gossip address.
func (r gossipReader) Failed() []gossip.Peer {
	var out []gossip.Peer
	for _, h := range r.Latest().Hosts {
		if h.Status == catalog.StatusFailed && h.GossipPort != 0 && h.Addr.IsValid() {
			out = append(out, gossip.Peer{Name: h.Name, Addr: netip.AddrPortFrom(h.Addr, h.GossipPort)})
		}
	}
	return out
}

// Close leaves nothing running. Call Leave first for a graceful exit.
func (n *Node) Close() error {
	var err error
	n.closeOnce.Do(func() {
		var errs []error
		if n.gossip != nil {
			// The contact time is what a restart compares with the tombstone horizon.
			if e := n.rep.SaveContact(); e != nil {
				errs = append(errs, fmt.Errorf("save last contact time: %w", e))
			}
			if e := n.gossip.Close(); e != nil {
				errs = append(errs, fmt.Errorf("close gossip: %w", e))
			}
		}
		n.adm.close()
		close(n.stop)
		n.wg.Wait()
		errs = append(errs, n.rep.Close()) // writes what is still queued
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
func (n *Node) DiskBehind() error { return n.rep.Behind() }

// Fatal is closed when the node must stop because the cluster no longer accepts its
// identity; Err then says why and what to do.
func (n *Node) Fatal() <-chan struct{} { return n.adm.Fatal() }

// Err returns why the node stopped (nil while it runs).
func (n *Node) Err() error { return n.adm.Err() }

// Leave tells the cluster this host is going away on purpose.
func (n *Node) Leave(timeout time.Duration) error { return n.gossip.Leave(timeout) }

// Identity accessors.
func (n *Node) Name() string                          { return n.adm.id.Name }
func (n *Node) HostID() uint32                        { _, id := n.adm.Self(); return id }
func (n *Node) Region() string                        { return n.cfg.Region }
func (n *Node) PrivateKey() wgtypes.Key               { return n.wgKey }
func (n *Node) Catalog() *catalog.Catalog             { return n.cat }
func (n *Node) Snapshot() *catalog.Snapshot           { return n.cat.Snapshot() }
func (n *Node) Gossip() *gossip.Gossip                { return n.gossip }
func (n *Node) RTT(host string) (time.Duration, bool) { return n.gossip.RTT(host) }

// Backup streams a consistent copy of this host's data file.
func (n *Node) Backup(w io.Writer) (int64, error) { return n.store.Backup(w) }
