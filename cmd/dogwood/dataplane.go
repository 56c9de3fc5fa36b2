//go:build agent

package main

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/dogwood/dogwood/mesh"
	"github.com/dogwood/dogwood/mesh/api"
	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/peers"
	"github.com/dogwood/dogwood/peers/device"
)

// dataPlane connects the catalog to WireGuard: it reconciles on every catalog change
// (level-triggered: it always applies the latest snapshot, never a backlog) and on
// demand when an operation must wait until its change is installed. With
// --wireguard off every method is a no-op.
type dataPlane struct {
	opts agentOptions
	log  *slog.Logger
	reg  prometheus.Registerer
	// node is set once mesh.Start returned; operations that other hosts send while
	// the node is still starting find it unset and leave the apply to the loop.
	node atomic.Pointer[mesh.Node]
	dp   *peers.DataPlane

	// onDNS receives the DNS addresses to serve after every apply.
	mu    sync.Mutex
	onDNS func([]netip.Addr)
	// applyErr is the result of the latest apply, for /readyz and doctor.
	applyErr error

	cancel context.CancelFunc
	done   chan struct{}
}

// open brings the WireGuard interface up with the host's key, before the host
// announces itself to the cluster.
func (d *dataPlane) open(_ string, key wgtypes.Key) error {
	if d.opts.WireGuard == "off" {
		return nil
	}
	mode, err := device.ParseMode(d.opts.WireGuard)
	if err != nil {
		return usagef("%v", err)
	}
	dp, err := peers.New(peers.Config{
		Interface: d.opts.WGInterface, Mode: mode, ListenPort: d.opts.WGPort,
		PrivateKey: key, Logger: d.log, Registerer: d.reg,
	})
	if err != nil {
		return err
	}
	d.dp = dp
	return nil
}

// start reconciles the opened interface with the catalog, now and on every change.
func (d *dataPlane) start(ctx context.Context, n *mesh.Node) error {
	d.node.Store(n)
	if d.dp == nil {
		return nil
	}
	dp := d.dp
	if err := dp.Apply(n.Snapshot()); err != nil {
		d.log.Warn("initial apply", "err", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	d.cancel, d.done = cancel, make(chan struct{})
	go d.loop(lctx)
	return nil
}

// setDNSHook registers who gets the DNS addresses; it is called at once with the
// current set.
func (d *dataPlane) setDNSHook(f func([]netip.Addr)) {
	d.mu.Lock()
	d.onDNS = f
	d.mu.Unlock()
	if d.dp != nil {
		f(d.dp.DNSAddrs())
	}
}

func (d *dataPlane) loop(ctx context.Context) {
	defer close(d.done)
	ch, stop := d.node.Load().Catalog().Watch()
	defer stop()
	// The ticker retries failed stages and repairs drift (someone ran `ip route del`).
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-t.C:
		}
		d.apply()
	}
}

func (d *dataPlane) apply() error {
	n := d.node.Load()
	if n == nil {
		return nil // still starting: the loop applies once it runs
	}
	err := d.dp.Apply(n.Catalog().Latest())
	if err != nil {
		d.log.Warn("wireguard apply", "err", err)
	}
	d.mu.Lock()
	f := d.onDNS
	d.applyErr = err
	d.mu.Unlock()
	if f != nil {
		f(d.dp.DNSAddrs())
	}
	return err
}

// lastApplyErr is the latest apply's error (nil once one succeeded since).
func (d *dataPlane) lastApplyErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.applyErr
}

// install applies now and reports only what concerns one object: the operation that
// created it waits for it and fails for its own reasons only.
func (d *dataPlane) install(ctx context.Context, id catalog.ID) error {
	if d.dp == nil {
		return nil
	}
	return peers.ErrorFor(d.apply(), id.Kind, id.Key)
}

func (d *dataPlane) peerStats() map[string]mesh.PeerStat {
	if d.dp == nil {
		return nil
	}
	st, err := d.dp.Status()
	if err != nil {
		return nil
	}
	out := map[string]mesh.PeerStat{}
	for _, p := range st.Peers {
		s := mesh.PeerStat{PublicKey: p.PublicKey, Endpoint: p.Endpoint, RxBytes: p.RxBytes, TxBytes: p.TxBytes}
		if p.LastHandshake != nil {
			s.LastHandshake = *p.LastHandshake
		}
		out[p.PublicKey] = s
	}
	return out
}

func (d *dataPlane) status() (*api.WireGuardStatus, error) {
	if d.dp == nil {
		return nil, nil
	}
	st, err := d.dp.Status()
	if err != nil {
		return nil, err
	}
	out := &api.WireGuardStatus{Interface: st.Interface, Mode: st.Mode, Port: st.ListenPort, Peers: []api.WireGuardPeer{}}
	now := time.Now()
	for _, p := range st.Peers {
		wp := api.WireGuardPeer{PublicKey: p.PublicKey, Host: p.Name, Endpoint: p.Endpoint, AllowedIPs: p.AllowedIPs,
			LastHandshake: p.LastHandshake, RxBytes: p.RxBytes, TxBytes: p.TxBytes}
		if p.LastHandshake != nil {
			age := now.Sub(*p.LastHandshake).Seconds()
			wp.HandshakeAge = &age
		}
		out.Peers = append(out.Peers, wp)
	}
	return out, nil
}

// close stops reconciling and leaves interface, routes, filter and machine namespaces
// in place, so a restarted agent adopts them without interrupting traffic.
func (d *dataPlane) close() {
	if d.dp == nil {
		return
	}
	if d.cancel != nil {
		d.cancel()
		<-d.done
	}
	if err := d.dp.Close(); err != nil {
		d.log.Warn("close data plane", "err", err)
	}
}

// abort releases an interface opened for a node that then failed to start.
func (d *dataPlane) abort() { d.close() }
