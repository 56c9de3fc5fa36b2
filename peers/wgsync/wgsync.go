// Package wgsync owns the reconciliation of a WireGuard device's peers with a
// planned set: it reads the device's actual state, computes the smallest wgtypes.Config
// that moves it to the desired state, and applies it. The config never uses
// ReplacePeers: each changed peer is added, updated in place (UpdateOnly, with
// ReplaceAllowedIPs only when its allowed IPs moved) or removed, so unrelated peers
// and their sessions are never touched. It is level-triggered: call Reconcile with
// the latest plan after any change and it converges, whatever happened in between.
//
// The device is reached through the two-method Device interface that *wgctrl.Client
// satisfies via Bind, so the logic is tested against Fake without root.
package wgsync

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/dogwood/dogwood/peers/plan"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// HostKeepalive is the persistent keepalive of host-to-host peers.
const HostKeepalive = 25 * time.Second

// WarmupDelay is how long a new host peer goes without a persistent keepalive on the
// side with the lower public key; the other side waits twice as long.
const WarmupDelay = time.Second

// keepsWarm reports whether this side keeps the tunnel to a host peer warm with a
// persistent keepalive. Warm tunnels mean the first packet between two machines rarely
// waits for a handshake, `dogwood status` shows every host's handshake, and stateful
// middleboxes keep the path open.
//
// Setting a keepalive sends a handshake at once, which is what the timing is about:
// a handshake sent the moment a peer is added often reaches a host that has not added
// us yet and is dropped, and two hosts that start together send crossing initiations
// that both fail; either way the tunnel then waits for WireGuard's 5 s retry. So a
// new peer gets no keepalive (traffic still handshakes on demand); after WarmupDelay
// the lower-keyed side starts it, after twice that the other side, by when both
// sides surely have the peer. It also keeps handshake work out of the reconcile that
// adds peers, so a full resync stays fast.
func keepsWarm(own wgtypes.Key, w *plan.Peer, age time.Duration) bool {
	if !w.Endpoint.IsValid() {
		return false
	}
	if bytes.Compare(own[:], w.PublicKey[:]) < 0 {
		return age >= WarmupDelay
	}
	return age >= 2*WarmupDelay
}

// Device is one WireGuard interface as wgctrl sees it.
type Device interface {
	// Device returns the device's current configuration and peers.
	Device() (*wgtypes.Device, error)
	// ConfigureDevice applies a partial configuration (nil fields are left alone).
	ConfigureDevice(cfg wgtypes.Config) error
}

// Settings are the device-wide values the reconciler enforces; nil means unmanaged.
type Settings struct {
	PrivateKey *wgtypes.Key
	ListenPort *int
	// Age says how long a peer has been wanted (see keepsWarm); nil means long ago.
	Age func(wgtypes.Key) time.Duration
}

func (s Settings) age(k wgtypes.Key) time.Duration {
	if s.Age == nil {
		return time.Duration(1<<63 - 1)
	}
	return s.Age(k)
}

// Changes counts what a reconcile did.
type Changes struct {
	Added, Updated, Removed int
	// Device is true when the private key or listen port was (re)set.
	Device bool
}

// Empty reports whether nothing needed to change.
func (c Changes) Empty() bool { return c == Changes{} }

func (c Changes) String() string {
	return fmt.Sprintf("added=%d updated=%d removed=%d device=%v", c.Added, c.Updated, c.Removed, c.Device)
}

// Reconcile brings dev to the desired peers and settings, touching only what differs.
func Reconcile(dev Device, want []plan.Peer, s Settings) (Changes, error) {
	actual, err := dev.Device()
	if err != nil {
		return Changes{}, fmt.Errorf("read wireguard device: %w", err)
	}
	cfg, ch := Diff(actual, want, s)
	if ch.Empty() {
		return ch, nil
	}
	if err := dev.ConfigureDevice(cfg); err != nil {
		return Changes{}, fmt.Errorf("configure wireguard device (%s): %w", ch, err)
	}
	return ch, nil
}

// Diff returns the configuration that turns actual into the desired state, and what
// it changes. When Changes is empty the config is a no-op and need not be applied.
func Diff(actual *wgtypes.Device, want []plan.Peer, s Settings) (wgtypes.Config, Changes) {
	var cfg wgtypes.Config
	var ch Changes
	if s.PrivateKey != nil && actual.PrivateKey != *s.PrivateKey {
		k := *s.PrivateKey
		cfg.PrivateKey = &k
		ch.Device = true
	}
	if s.ListenPort != nil && actual.ListenPort != *s.ListenPort {
		p := *s.ListenPort
		cfg.ListenPort = &p
		ch.Device = true
	}
	ownKey := actual.PublicKey
	if cfg.PrivateKey != nil {
		ownKey = cfg.PrivateKey.PublicKey()
	}

	have := make(map[wgtypes.Key]*wgtypes.Peer, len(actual.Peers))
	for i := range actual.Peers {
		have[actual.Peers[i].PublicKey] = &actual.Peers[i]
	}
	wanted := make(map[wgtypes.Key]bool, len(want))
	for i := range want {
		w := &want[i]
		if w.PublicKey == ownKey {
			// WireGuard silently ignores a peer with the device's own key; asking
			// for it would show up as a change on every run.
			continue
		}
		wanted[w.PublicKey] = true
		a := have[w.PublicKey]
		if a == nil {
			pc := wgtypes.PeerConfig{
				PublicKey:         w.PublicKey,
				Endpoint:          udpAddr(w.Endpoint),
				ReplaceAllowedIPs: true,
				AllowedIPs:        ipNets(w.AllowedIPs),
			}
			if keepsWarm(ownKey, w, s.age(w.PublicKey)) {
				ka := HostKeepalive
				pc.PersistentKeepaliveInterval = &ka
			}
			cfg.Peers = append(cfg.Peers, pc)
			ch.Added++
			continue
		}
		pc := wgtypes.PeerConfig{PublicKey: w.PublicKey, UpdateOnly: true}
		changed := false
		// A user peer's endpoint is whatever it last handshook from: not ours to set.
		if w.Endpoint.IsValid() && endpointOf(a.Endpoint) != w.Endpoint {
			pc.Endpoint = udpAddr(w.Endpoint)
			changed = true
		}
		if keepsWarm(ownKey, w, s.age(w.PublicKey)) && a.PersistentKeepaliveInterval != HostKeepalive {
			ka := HostKeepalive
			pc.PersistentKeepaliveInterval = &ka
			changed = true
		}
		if !samePrefixes(a.AllowedIPs, w.AllowedIPs) {
			pc.ReplaceAllowedIPs = true
			pc.AllowedIPs = ipNets(w.AllowedIPs)
			changed = true
		}
		if changed {
			cfg.Peers = append(cfg.Peers, pc)
			ch.Updated++
		}
	}
	for i := range actual.Peers {
		k := actual.Peers[i].PublicKey
		if !wanted[k] {
			cfg.Peers = append(cfg.Peers, wgtypes.PeerConfig{PublicKey: k, Remove: true})
			ch.Removed++
		}
	}
	// Removals first: an allowed IP that moves from a removed peer to a new one
	// must not be taken away from the new one by the later removal.
	slices.SortStableFunc(cfg.Peers, func(a, b wgtypes.PeerConfig) int {
		switch {
		case a.Remove == b.Remove:
			return 0
		case a.Remove:
			return -1
		}
		return 1
	})
	return cfg, ch
}

func udpAddr(ap netip.AddrPort) *net.UDPAddr {
	if !ap.IsValid() {
		return nil
	}
	return net.UDPAddrFromAddrPort(ap)
}

func endpointOf(u *net.UDPAddr) netip.AddrPort {
	if u == nil {
		return netip.AddrPort{}
	}
	ap := u.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func ipNets(ps []netip.Prefix) []net.IPNet {
	out := make([]net.IPNet, 0, len(ps))
	for _, p := range ps {
		out = append(out, net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())})
	}
	return out
}

// PrefixOf converts a wgtypes allowed IP to a canonical prefix.
func PrefixOf(n net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits == 32 && a.Is4In6() {
		a = a.Unmap()
	}
	if bits != a.BitLen() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones).Masked(), true
}

// samePrefixes compares as sets; want is sorted and unique (plan guarantees it).
func samePrefixes(have []net.IPNet, want []netip.Prefix) bool {
	if len(have) != len(want) {
		return false
	}
	if len(want) == 1 { // the common case for user peers: no allocation
		p, ok := PrefixOf(have[0])
		return ok && p == want[0]
	}
	got := make([]netip.Prefix, 0, len(have))
	for _, n := range have {
		p, ok := PrefixOf(n)
		if !ok {
			return false
		}
		got = append(got, p)
	}
	slices.SortFunc(got, plan.ComparePrefix)
	return slices.Equal(got, want)
}

// DefaultMaxAge bounds how long a Reconciler trusts its memory of the device.
const DefaultMaxAge = 30 * time.Second

// Reconciler is Reconcile with a memory: after reading the device once it keeps a
// model of what the device holds (updated with every config it successfully
// applies), so a run on an 11,000-peer device costs a diff, not a full UAPI or
// netlink dump. The model is dropped and the device read again after any error and
// whenever it is older than MaxAge, which also catches changes made behind the
// agent's back (`wg set` by hand, a roamed endpoint). Not safe for concurrent use.
type Reconciler struct {
	dev    Device
	maxAge time.Duration
	now    func() time.Time

	model  *Fake
	readAt time.Time
}

// NewReconciler returns a Reconciler for dev; maxAge ≤ 0 means DefaultMaxAge.
func NewReconciler(dev Device, maxAge time.Duration, now func() time.Time) *Reconciler {
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	if now == nil {
		now = time.Now
	}
	return &Reconciler{dev: dev, maxAge: maxAge, now: now}
}

// Invalidate forces the next Reconcile to read the device.
func (r *Reconciler) Invalidate() { r.model = nil }

// Reconcile brings the device to the desired peers and settings.
func (r *Reconciler) Reconcile(want []plan.Peer, s Settings) (Changes, error) {
	if r.model == nil || r.now().Sub(r.readAt) > r.maxAge {
		actual, err := r.dev.Device()
		if err != nil {
			r.model = nil
			return Changes{}, fmt.Errorf("read wireguard device: %w", err)
		}
		r.model, r.readAt = modelOf(actual), r.now()
	}
	r.model.mu.Lock()
	cfg, ch := Diff(&r.model.dev, want, s)
	r.model.mu.Unlock()
	if ch.Empty() {
		return ch, nil
	}
	if err := r.dev.ConfigureDevice(cfg); err != nil {
		// The device may have applied part of it: trust nothing.
		r.model = nil
		return Changes{}, fmt.Errorf("configure wireguard device (%s): %w", ch, err)
	}
	if err := r.model.ConfigureDevice(cfg); err != nil {
		r.model = nil
	}
	return ch, nil
}

// modelOf makes a Fake holding exactly d, to replay configs on.
func modelOf(d *wgtypes.Device) *Fake {
	f := NewFake(d.Name, d.PrivateKey)
	f.noRecord = true
	f.dev = *d
	f.dev.Peers = slices.Clone(d.Peers)
	for i, p := range f.dev.Peers {
		f.index[p.PublicKey] = i
		for _, n := range p.AllowedIPs {
			if pfx, ok := PrefixOf(n); ok {
				f.owner[pfx] = p.PublicKey
			}
		}
	}
	return f
}
