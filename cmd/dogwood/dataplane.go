//go:build agent

package main

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/dogwood/dogwood/mesh"
	"github.com/dogwood/dogwood/mesh/api"
	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/peers"
	"github.com/dogwood/dogwood/peers/device"
)

// dataPlane is the agent's mesh.DataPlane. mesh brings it up with the host's key and
// catalog (Up) before the host joins; from then on it reads the catalog, never the
// Node, and data flows one way:
//
//	catalog → latest snapshot → WireGuard (peers.DataPlane) → DNS listeners on the addresses it put up
//
// The agent loop (applyLoop) is the one place that applies. With --wireguard off
// there is no loop and every method is a no-op.
type dataPlane struct {
	opts agentOptions
	log  *slog.Logger
	reg  prometheus.Registerer

	// Set by Up, which mesh calls before Start returns and before any other method.
	dp   *peers.DataPlane // nil with --wireguard off
	loop *applyLoop
}

// driftRepair is how often the loop applies without a change: it retries failed
// stages and repairs drift (someone ran `ip route del`).
const driftRepair = 30 * time.Second

// Up brings the WireGuard interface up with the host's key, before the host announces
// itself to the cluster, and keeps cat to read from.
func (d *dataPlane) Up(_ string, key wgtypes.Key, cat mesh.Snapshots) error {
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
	d.loop = newApplyLoop(cat, dp, d.log, driftRepair)
	return nil
}

// run applies the catalog now and starts the agent loop, which keeps WireGuard and
// then dns's listeners in line with it.
func (d *dataPlane) run(dns listenerSyncer) {
	if d.loop != nil {
		d.loop.run(dns)
	}
}

// Installed waits for a pass of the agent loop that started after the call and
// reports only what concerns one object: the operation that created it waits for it
// and fails for its own reasons only.
func (d *dataPlane) Installed(ctx context.Context, id catalog.ID) error {
	if d.loop == nil {
		return nil
	}
	err := d.loop.install(ctx)
	var ae *applyError
	if errors.As(err, &ae) {
		return peers.ErrorFor(ae.err, id.Kind, id.Key)
	}
	return err
}

// lastApplyErr is the latest apply's error (nil once one succeeded since), for
// /readyz and doctor.
func (d *dataPlane) lastApplyErr() error {
	if d.loop == nil {
		return nil
	}
	return d.loop.lastErr()
}

// PeerStats reports WireGuard's counters by public key, for a gateway's peers.
func (d *dataPlane) PeerStats() map[string]mesh.PeerStat {
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

// close stops the loop and leaves interface, routes, filter and machine namespaces
// in place, so a restarted agent adopts them without interrupting traffic.
func (d *dataPlane) close() {
	if d.dp == nil {
		return
	}
	d.loop.stop()
	if err := d.dp.Close(); err != nil {
		d.log.Warn("close data plane", "err", err)
	}
}

// abort releases an interface opened for a node that then failed to start.
func (d *dataPlane) abort() { d.close() }

// wireGuard is what the loop applies snapshots to (*peers.DataPlane).
type wireGuard interface {
	Apply(*catalog.Snapshot) error
	// DNSAddrs are the addresses the last Apply put on the host for DNS (port 53).
	DNSAddrs() []netip.Addr
}

// listenerSyncer moves the DNS server's listeners to a wanted set (*dnsService).
type listenerSyncer interface {
	SyncListeners([]netip.AddrPort) error
}

// applyError marks an Apply failure, which Installed narrows to one object; the
// loop's other failures (stopped) concern every caller.
type applyError struct{ err error }

func (e *applyError) Error() string { return e.err.Error() }
func (e *applyError) Unwrap() error { return e.err }

var errLoopStopped = errors.New("the agent is stopping: the change is applied when it starts again")

// applyLoop is the agent loop. It is level-triggered: each pass applies the latest
// snapshot (never a backlog) to WireGuard and then moves the DNS listeners to the
// addresses that apply put on the host (they can be bound only once it returned).
// A pass runs on every catalog change, every `every`, and for operations that must
// wait until their change is installed; only the loop's goroutine applies.
type applyLoop struct {
	src   mesh.Snapshots
	wg    wireGuard
	log   *slog.Logger
	every time.Duration

	// dns is set by run before the loop starts; only passes read it.
	dns     listenerSyncer
	started chan struct{}   // closed by run
	kick    chan chan error // an operation waiting for a pass
	stopped chan struct{}   // closed when the loop returned
	cancel  context.CancelFunc

	mu       sync.Mutex
	applyErr error
}

func newApplyLoop(src mesh.Snapshots, wg wireGuard, log *slog.Logger, every time.Duration) *applyLoop {
	return &applyLoop{src: src, wg: wg, log: log, every: every,
		started: make(chan struct{}), kick: make(chan chan error), stopped: make(chan struct{})}
}

// run makes the first pass, then starts the loop. Call it once.
func (l *applyLoop) run(dns listenerSyncer) {
	l.dns = dns
	changed, unwatch := l.src.Watch() // before the pass: a change during it is not missed
	l.pass()
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	close(l.started)
	go l.loop(ctx, changed, unwatch)
}

func (l *applyLoop) loop(ctx context.Context, changed <-chan struct{}, unwatch func()) {
	defer close(l.stopped)
	defer unwatch()
	t := time.NewTicker(l.every)
	defer t.Stop()
	for {
		var waiting []chan error
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-t.C:
		case w := <-l.kick:
			waiting = append(waiting, w)
		}
		// Whoever asks meanwhile shares this pass: it starts after their request and
		// reads the latest snapshot, which holds their change.
		for more := true; more; {
			select {
			case w := <-l.kick:
				waiting = append(waiting, w)
			default:
				more = false
			}
		}
		err := l.pass()
		for _, w := range waiting {
			w <- err // buffered: a caller that gave up does not block the loop
		}
	}
}

// install waits for a pass that starts after the call and returns its Apply error
// (as *applyError). Before the loop runs (the node is still starting) nothing waits:
// the first pass applies everything.
func (l *applyLoop) install(ctx context.Context) error {
	select {
	case <-l.started:
	default:
		return nil
	}
	reply := make(chan error, 1)
	select {
	case l.kick <- reply:
	case <-l.stopped:
		return errLoopStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		if err != nil {
			return &applyError{err}
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *applyLoop) pass() error {
	err := l.wg.Apply(l.src.Latest())
	if err != nil {
		l.log.Warn("wireguard apply", "err", err)
	}
	l.mu.Lock()
	l.applyErr = err
	l.mu.Unlock()
	if l.dns != nil {
		var aps []netip.AddrPort
		for _, a := range l.wg.DNSAddrs() {
			aps = append(aps, netip.AddrPortFrom(a, 53))
		}
		if err := l.dns.SyncListeners(aps); err != nil {
			l.log.Warn("dns listeners", "err", err)
		}
	}
	return err
}

func (l *applyLoop) lastErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.applyErr
}

// stop ends the loop; operations that wait then get errLoopStopped.
func (l *applyLoop) stop() {
	select {
	case <-l.started:
	default:
		return
	}
	l.cancel()
	<-l.stopped
}
