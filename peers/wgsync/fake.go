package wgsync

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Fake is an in-memory Device with WireGuard's configuration semantics (ReplacePeers,
// Remove, UpdateOnly, ReplaceAllowedIPs, and an allowed IP belonging to at most one
// peer). It records every applied config so tests can assert the exact diff, and
// keeps per-peer counters and handshake times that tests may set, to prove that a
// reconcile left a peer's session alone. Safe for concurrent use.
type Fake struct {
	mu       sync.Mutex
	dev      wgtypes.Device
	index    map[wgtypes.Key]int
	owner    map[netip.Prefix]wgtypes.Key
	configs  []wgtypes.Config
	noRecord bool // a Reconciler's model keeps no history
	// Err, when set, fails the next call to either method.
	Err error
}

// NewFake returns an empty device with the given private key.
func NewFake(name string, priv wgtypes.Key) *Fake {
	return &Fake{
		dev:   wgtypes.Device{Name: name, Type: wgtypes.Userspace, PrivateKey: priv, PublicKey: priv.PublicKey()},
		index: map[wgtypes.Key]int{},
		owner: map[netip.Prefix]wgtypes.Key{},
	}
}

// Device returns a deep copy of the state.
func (f *Fake) Device() (*wgtypes.Device, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeErr(); err != nil {
		return nil, err
	}
	d := f.dev
	d.Peers = make([]wgtypes.Peer, len(f.dev.Peers))
	for i, p := range f.dev.Peers {
		p.AllowedIPs = slices.Clone(p.AllowedIPs)
		if p.Endpoint != nil {
			e := *p.Endpoint
			p.Endpoint = &e
		}
		d.Peers[i] = p
	}
	return &d, nil
}

func (f *Fake) takeErr() error {
	err := f.Err
	f.Err = nil
	return err
}

// Configs returns the configs applied so far and forgets them.
func (f *Fake) Configs() []wgtypes.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.configs
	f.configs = nil
	return c
}

// Touch simulates traffic: sets a peer's handshake time and counters.
func (f *Fake) Touch(k wgtypes.Key, handshake time.Time, rx, tx int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i, ok := f.index[k]; ok {
		p := &f.dev.Peers[i]
		p.LastHandshakeTime, p.ReceiveBytes, p.TransmitBytes = handshake, rx, tx
	}
}

// ConfigureDevice applies cfg the way wireguard-go does.
func (f *Fake) ConfigureDevice(cfg wgtypes.Config) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeErr(); err != nil {
		return err
	}
	// WireGuard validates nothing up front either, but a fake that accepted nonsense
	// would hide reconciler bugs.
	for _, pc := range cfg.Peers {
		if pc.Remove && (pc.UpdateOnly || len(pc.AllowedIPs) > 0 || pc.Endpoint != nil) {
			return fmt.Errorf("peer %s: remove combined with other changes", pc.PublicKey)
		}
	}
	if !f.noRecord {
		f.configs = append(f.configs, cfg)
	}
	if cfg.PrivateKey != nil {
		f.dev.PrivateKey, f.dev.PublicKey = *cfg.PrivateKey, cfg.PrivateKey.PublicKey()
	}
	if cfg.ListenPort != nil {
		f.dev.ListenPort = *cfg.ListenPort
	}
	if cfg.ReplacePeers {
		f.dev.Peers, f.index, f.owner = nil, map[wgtypes.Key]int{}, map[netip.Prefix]wgtypes.Key{}
	}
	for _, pc := range cfg.Peers {
		i, exists := f.index[pc.PublicKey]
		switch {
		case pc.Remove:
			if exists {
				f.removeAt(i)
			}
			continue
		case pc.PublicKey == f.dev.PublicKey:
			continue // wireguard-go ignores a peer with the device's own key
		case !exists && pc.UpdateOnly:
			continue
		case !exists:
			f.dev.Peers = append(f.dev.Peers, wgtypes.Peer{PublicKey: pc.PublicKey, ProtocolVersion: 1})
			i = len(f.dev.Peers) - 1
			f.index[pc.PublicKey] = i
		}
		p := &f.dev.Peers[i]
		if pc.Endpoint != nil {
			e := *pc.Endpoint
			p.Endpoint = &e
		}
		if pc.PersistentKeepaliveInterval != nil {
			p.PersistentKeepaliveInterval = *pc.PersistentKeepaliveInterval
		}
		if pc.ReplaceAllowedIPs {
			for _, n := range p.AllowedIPs {
				if pfx, ok := PrefixOf(n); ok {
					delete(f.owner, pfx)
				}
			}
			p.AllowedIPs = nil
		}
		for _, n := range pc.AllowedIPs {
			f.claim(pc.PublicKey, n)
			p = &f.dev.Peers[f.index[pc.PublicKey]]
			p.AllowedIPs = append(p.AllowedIPs, n)
		}
	}
	return nil
}

// claim takes an allowed IP away from whichever other peer holds it.
func (f *Fake) claim(owner wgtypes.Key, n net.IPNet) {
	pfx, ok := PrefixOf(n)
	if !ok {
		return
	}
	if prev, held := f.owner[pfx]; held && prev != owner {
		if i, ok := f.index[prev]; ok {
			p := &f.dev.Peers[i]
			p.AllowedIPs = slices.DeleteFunc(p.AllowedIPs, func(o net.IPNet) bool {
				q, _ := PrefixOf(o)
				return q == pfx
			})
		}
	}
	f.owner[pfx] = owner
}

func (f *Fake) removeAt(i int) {
	for _, n := range f.dev.Peers[i].AllowedIPs {
		if pfx, ok := PrefixOf(n); ok {
			delete(f.owner, pfx)
		}
	}
	delete(f.index, f.dev.Peers[i].PublicKey)
	last := len(f.dev.Peers) - 1
	if i != last {
		f.dev.Peers[i] = f.dev.Peers[last]
		f.index[f.dev.Peers[i].PublicKey] = i
	}
	f.dev.Peers = f.dev.Peers[:last]
}

// ErrFake is a convenience error for failure injection.
var ErrFake = errors.New("fake device failure")
