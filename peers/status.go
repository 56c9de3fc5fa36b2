package peers

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dogwood/dogwood/peers/wgsync"
)

// Status is the "wireguard" object of `dogwood status --json` (SPEC §7).
type Status struct {
	Interface  string       `json:"interface"`
	Mode       string       `json:"mode"`
	PublicKey  string       `json:"public_key"`
	ListenPort int          `json:"listen_port"`
	Peers      []PeerStatus `json:"peers"`
}

// PeerStatus is one WireGuard peer as the device reports it.
type PeerStatus struct {
	PublicKey string `json:"public_key"`
	// Kind is "host" or "user"; Name the host name or "<org>/<peer>" ("" for a peer
	// the catalog does not know, e.g. one being removed).
	Kind     string `json:"kind,omitempty"`
	Name     string `json:"name,omitempty"`
	Endpoint string `json:"endpoint"`
	// LastHandshake is nil before the first handshake (JSON null).
	LastHandshake *time.Time `json:"last_handshake"`
	RxBytes       int64      `json:"rx_bytes"`
	TxBytes       int64      `json:"tx_bytes"`
	AllowedIPs    []string   `json:"allowed_ips"`
}

// HandshakeAge is how long ago the last handshake was, or -1 if there was none.
func (p PeerStatus) HandshakeAge(now time.Time) time.Duration {
	if p.LastHandshake == nil {
		return -1
	}
	return now.Sub(*p.LastHandshake)
}

// Status reads the interface's peers, sorted by kind, name, then key.
func (d *DataPlane) Status() (Status, error) {
	if d.dev == nil {
		return Status{}, errors.New("no WireGuard device (fake parts)")
	}
	dev, err := d.dev.Device()
	if err != nil {
		return Status{}, fmt.Errorf("read %s: %w", d.cfg.Interface, err)
	}
	d.stateMu.RLock()
	names := d.names
	d.stateMu.RUnlock()
	st := Status{Interface: d.cfg.Interface, Mode: string(d.dev.Mode()), PublicKey: dev.PublicKey.String(),
		ListenPort: dev.ListenPort, Peers: make([]PeerStatus, 0, len(dev.Peers))}
	for _, p := range dev.Peers {
		ps := PeerStatus{PublicKey: p.PublicKey.String(), RxBytes: p.ReceiveBytes, TxBytes: p.TransmitBytes}
		if n, ok := names[p.PublicKey]; ok {
			ps.Kind, ps.Name = n.Kind.String(), n.Name
		}
		if p.Endpoint != nil {
			ps.Endpoint = p.Endpoint.String()
		}
		if !p.LastHandshakeTime.IsZero() {
			t := p.LastHandshakeTime.UTC()
			ps.LastHandshake = &t
		}
		for _, a := range p.AllowedIPs {
			if pfx, ok := wgsync.PrefixOf(a); ok {
				ps.AllowedIPs = append(ps.AllowedIPs, pfx.String())
			}
		}
		st.Peers = append(st.Peers, ps)
	}
	slices.SortFunc(st.Peers, func(a, b PeerStatus) int {
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.PublicKey, b.PublicKey)
	})
	return st, nil
}
