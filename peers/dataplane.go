package peers

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/peers/attach"
	"github.com/dogwood/dogwood/peers/device"
	"github.com/dogwood/dogwood/peers/filter"
	"github.com/dogwood/dogwood/peers/link"
	"github.com/dogwood/dogwood/peers/plan"
	"github.com/dogwood/dogwood/peers/wgsync"
	"github.com/prometheus/client_golang/prometheus"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Defaults of SPEC §5 and §7.
const (
	DefaultInterface = "dogwood0"
	DefaultPort      = 51820
)

// Config is everything the data plane needs; the agent builds it from its flags.
type Config struct {
	// Interface is --wg-interface (default dogwood0).
	Interface string
	// Mode is --wireguard: auto, kernel or userspace ("off" means: do not call New).
	Mode device.Mode
	// ListenPort is --wg-port (default 51820).
	ListenPort int
	// PrivateKey is the host's WireGuard key, persisted by the agent.
	PrivateKey wgtypes.Key
	// MTU of the WireGuard interface and the machine veths (default 1420).
	MTU int
	// Table is the nftables table (family inet) for isolation (default "dogwood").
	Table string
	// EtcNetns is where machines' resolv.conf files go (default /etc/netns).
	EtcNetns string
	// Logger is required.
	Logger *slog.Logger
	// Registerer receives the metrics; nil disables them.
	Registerer prometheus.Registerer
	// Now is the clock for handshake ages (default time.Now).
	Now func() time.Time
}

// The parts Apply drives, as interfaces so its logic runs against fakes (fakes_test.go)
// without root; New wires the real netlink, namespace, nftables and wgctrl ones.
type (
	// Links programs routes into the WireGuard interface, the DNS addresses on
	// loopback, and IPv6 forwarding.
	Links interface {
		EnableForwarding() error
		SyncRoutes(iface string, want []netip.Prefix) (added, removed int, err error)
		SyncDNS(want []netip.Addr) error
		Close()
	}
	// Namespaces attaches machines (veth, address, route, resolv.conf) to their
	// network namespaces. Sync reports a machine's own failure as *attach.MachineError.
	Namespaces interface {
		Sync(want []plan.Machine) (attach.Result, error)
		DetachAll() error
		Close()
	}
	// Filters installs the isolation filter.
	Filters interface {
		Sync(spec filter.Spec) (changed bool, err error)
		Delete() error
	}
	// PeerSync converges the WireGuard device's peers.
	PeerSync interface {
		Reconcile(want []plan.Peer, s wgsync.Settings) (wgsync.Changes, error)
	}
)

// netlinkLinks adds the forwarding switch to link.Links.
type netlinkLinks struct{ *link.Links }

func (netlinkLinks) EnableForwarding() error { return link.EnableForwarding() }

// DataPlane is one host's WireGuard data plane. Its methods are safe for concurrent
// use; Apply calls are serialized.
type DataPlane struct {
	cfg     Config
	log     *slog.Logger
	dev     *device.Device // nil with fake parts
	sync    PeerSync
	links   Links
	attach  Namespaces
	filter  Filters
	metrics *metrics

	mu          sync.Mutex // serializes Apply, Close, Teardown
	closed      bool
	warmup      []*time.Timer
	firstSeen   map[wgtypes.Key]time.Time // when each peer was first wanted (warm-up)
	desired     plan.Desired
	lastSkipped []string

	stateMu sync.RWMutex // guards names, dns
	names   map[wgtypes.Key]plan.Peer
	dns     []netip.Addr
}

// New creates (or adopts) the WireGuard interface, installs the isolation filter
// (admitting no network until the first Apply) and enables IPv6 forwarding.
func New(cfg Config) (*DataPlane, error) {
	if cfg.Logger == nil {
		return nil, errors.New("peers: Config.Logger is required")
	}
	if cfg.Interface == "" {
		cfg.Interface = DefaultInterface
	}
	if cfg.ListenPort == 0 {
		cfg.ListenPort = DefaultPort
	}
	if cfg.MTU == 0 {
		cfg.MTU = device.DefaultMTU
	}
	if cfg.Mode == "" {
		cfg.Mode = device.Auto
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PrivateKey == (wgtypes.Key{}) {
		return nil, errors.New("peers: Config.PrivateKey is required (the agent persists it)")
	}
	d := &DataPlane{cfg: cfg, log: cfg.Logger.With("component", "wireguard", "interface", cfg.Interface),
		filter: filter.New(cfg.Table)}

	// Filter before forwarding before the interface: no moment where the host
	// forwards 6PN without isolation.
	if _, err := d.filter.Sync(filter.Spec{WGIface: cfg.Interface}); err != nil {
		return nil, err
	}
	if err := link.EnableForwarding(); err != nil {
		return nil, err
	}
	links, err := link.New(d.log)
	if err != nil {
		return nil, err
	}
	d.links = netlinkLinks{links}
	if d.attach, err = attach.New(attach.Config{MTU: cfg.MTU, Logger: d.log, EtcNetns: cfg.EtcNetns}); err != nil {
		d.links.Close()
		return nil, err
	}
	d.dev, err = device.Open(device.Config{Name: cfg.Interface, Mode: cfg.Mode, MTU: cfg.MTU,
		PrivateKey: cfg.PrivateKey, ListenPort: cfg.ListenPort, Logger: d.log})
	if err != nil {
		d.links.Close()
		d.attach.Close()
		return nil, err
	}
	d.sync = wgsync.NewReconciler(d.dev, wgsync.DefaultMaxAge, cfg.Now)
	d.metrics = newMetrics(d)
	if cfg.Registerer != nil {
		if err := d.metrics.register(cfg.Registerer); err != nil {
			d.dev.Close()
			d.links.Close()
			d.attach.Close()
			return nil, fmt.Errorf("register wireguard metrics: %w", err)
		}
	}
	d.log.Info("wireguard data plane up", "mode", d.dev.Mode(), "port", cfg.ListenPort,
		"public_key", cfg.PrivateKey.PublicKey().String())
	return d, nil
}

// Apply converges the data plane to snapshot s. Call it with the latest snapshot
// whenever the catalog or membership changed; calls with an unchanged snapshot are
// cheap no-ops. Each stage runs even if an earlier one failed; the errors are joined
// and the next Apply retries everything.
func (d *DataPlane) Apply(s *catalog.Snapshot) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("peers: data plane closed")
	}
	start := time.Now()
	want := plan.Compute(s)
	if !slices.Equal(want.Skipped, d.lastSkipped) {
		for _, why := range want.Skipped {
			d.log.Warn("catalog record not applied", "reason", why)
		}
		d.lastSkipped = want.Skipped
	}

	var errs []error
	stage := func(name string, err error) {
		if err != nil {
			d.metrics.errors.WithLabelValues(name).Inc()
			errs = append(errs, &StageError{Stage: name, Err: err})
		}
	}
	if changed, err := d.filter.Sync(filter.Spec{WGIface: d.cfg.Interface, Networks: want.Networks, Machines: want.Machines}); changed && err == nil {
		d.log.Debug("isolation filter updated", "networks", len(want.Networks), "machines", len(want.Machines))
	} else {
		stage("filter", err)
	}
	stage("forwarding", d.links.EnableForwarding())

	now := time.Now()
	seen := make(map[wgtypes.Key]time.Time, len(want.Peers))
	for _, p := range want.Peers {
		if t, ok := d.firstSeen[p.PublicKey]; ok {
			seen[p.PublicKey] = t
		} else {
			seen[p.PublicKey] = now
		}
	}
	d.firstSeen = seen
	ch, err := d.sync.Reconcile(want.Peers, d.settings())
	stage("peers", err)
	if ch.Added > 0 {
		d.scheduleWarmup()
	}
	if !ch.Empty() {
		d.metrics.changes.WithLabelValues("add").Add(float64(ch.Added))
		d.metrics.changes.WithLabelValues("update").Add(float64(ch.Updated))
		d.metrics.changes.WithLabelValues("remove").Add(float64(ch.Removed))
		d.log.Info("wireguard peers reconciled", "added", ch.Added, "updated", ch.Updated, "removed", ch.Removed)
	}
	added, removed, err := d.links.SyncRoutes(d.cfg.Interface, want.Routes)
	stage("routes", err)
	if added+removed > 0 {
		d.log.Debug("routes reconciled", "added", added, "removed", removed)
	}
	stage("dns_addresses", d.links.SyncDNS(want.DNS))
	res, err := d.attach.Sync(want.Machines)
	stage("machines", err)
	if res.Attached+res.Detached > 0 {
		d.log.Info("machines reconciled", "attached", res.Attached, "detached", res.Detached, "adopted", res.Adopted)
	}

	names := make(map[wgtypes.Key]plan.Peer, len(want.Peers))
	for _, p := range want.Peers {
		names[p.PublicKey] = plan.Peer{Kind: p.Kind, Name: p.Name}
	}
	d.stateMu.Lock()
	d.names, d.dns = names, want.DNS
	d.stateMu.Unlock()
	d.desired = want

	d.metrics.duration.Observe(time.Since(start).Seconds())
	err = errors.Join(errs...)
	if err != nil {
		d.metrics.runs.WithLabelValues("error").Inc()
	} else {
		d.metrics.runs.WithLabelValues("ok").Inc()
	}
	return err
}

// DNSAddrs returns the addresses the DNS server must listen on (port 53): fdaa::3 for
// machines and fdaa:<net>::3 for every network with local machines or peers. They are
// on the loopback interface once Apply returned; the agent passes the list to the DNS
// server after every Apply (it changes only when a network appears or disappears).
func (d *DataPlane) DNSAddrs() []netip.Addr {
	d.stateMu.RLock()
	defer d.stateMu.RUnlock()
	return slices.Clone(d.dns)
}

// PublicKey is the host's WireGuard public key.
func (d *DataPlane) PublicKey() wgtypes.Key { return d.cfg.PrivateKey.PublicKey() }

// Mode is the WireGuard implementation running: "kernel" or "userspace".
func (d *DataPlane) Mode() device.Mode {
	if d.dev == nil {
		return "fake"
	}
	return d.dev.Mode()
}

// Close stops the agent's use of the data plane, leaving machines attached, the
// filter installed and (in kernel mode) the interface and its tunnels up, so a
// restarted agent adopts everything without disruption. A userspace interface ends
// with the process that runs it. Idempotent.
func (d *DataPlane) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	d.metrics.unregister()
	var err error
	if d.dev != nil {
		err = d.dev.Close()
	}
	d.links.Close()
	d.attach.Close()
	return err
}

// settings are the device settings plus the warm-up rule for host peers.
func (d *DataPlane) settings() wgsync.Settings {
	key, port := d.cfg.PrivateKey, d.cfg.ListenPort
	return wgsync.Settings{PrivateKey: &key, ListenPort: &port, Age: func(k wgtypes.Key) time.Duration {
		if t, ok := d.firstSeen[k]; ok {
			return time.Since(t)
		}
		return 0
	}}
}

// scheduleWarmup runs the peer passes that start keepalives on new host peers, one
// for each side of a pair (wgsync.keepsWarm).
func (d *DataPlane) scheduleWarmup() {
	for _, t := range d.warmup {
		t.Stop()
	}
	d.warmup = []*time.Timer{d.warmupPass(wgsync.WarmupDelay), d.warmupPass(2 * wgsync.WarmupDelay)}
}

func (d *DataPlane) warmupPass(after time.Duration) *time.Timer {
	return time.AfterFunc(after+50*time.Millisecond, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.closed {
			return
		}
		if _, err := d.sync.Reconcile(d.desired.Peers, d.settings()); err != nil {
			d.metrics.errors.WithLabelValues("peers").Inc()
			d.log.Warn("wireguard warm-up pass", "err", err)
		}
	})
}

// Teardown removes everything the data plane created: machine attachments (veths,
// resolv.conf files, namespaces Dogwood created), DNS addresses, routes, the
// interface and the nftables table. For a host that leaves the cluster for good.
func (d *DataPlane) Teardown() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	if !d.closed {
		errs = append(errs, d.attach.DetachAll(), d.links.SyncDNS(nil))
		if _, _, err := d.links.SyncRoutes(d.cfg.Interface, nil); err != nil {
			errs = append(errs, err)
		}
		d.closed = true
		d.metrics.unregister()
		d.links.Close()
		d.attach.Close()
	}
	if d.dev != nil {
		errs = append(errs, d.dev.Destroy())
	}
	errs = append(errs, d.filter.Delete())
	return errors.Join(errs...)
}

// StageError is the failure of one stage of Apply (filter, forwarding, peers, routes,
// dns_addresses, machines).
type StageError struct {
	Stage string
	Err   error
}

func (e *StageError) Error() string { return e.Stage + ": " + e.Err.Error() }
func (e *StageError) Unwrap() error { return e.Err }

// ErrorFor picks from an Apply error what concerns one object: a machine's own
// attach failure, or for a peer the WireGuard peer stage; the isolation filter and
// forwarding concern everything. Another machine's broken namespace is not the
// object's failure: the reconciler retries it, and an operation waiting for its own
// object must not fail (or roll back) for it.
func ErrorFor(err error, kind catalog.Kind, key string) error {
	var out []error
	walk(err, func(e error) {
		var se *StageError
		if !errors.As(e, &se) {
			return
		}
		switch se.Stage {
		case "filter", "forwarding":
			out = append(out, se)
		case "peers", "routes":
			if kind == catalog.KindPeer {
				out = append(out, se)
			}
		case "machines":
			if kind != catalog.KindMachine {
				return
			}
			walk(se.Err, func(me error) {
				var m *attach.MachineError
				if errors.As(me, &m) && m.ID == key {
					out = append(out, m)
				}
			})
		}
	})
	return errors.Join(out...)
}

// walk calls f on each leaf-level error of a tree built by errors.Join (and on
// errors that are not joins).
func walk(err error, f func(error)) {
	if err == nil {
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			walk(e, f)
		}
		return
	}
	f(err)
}
