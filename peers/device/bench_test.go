package device

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/sixpn"
	"github.com/dogwood/dogwood/peers/plan"
	"github.com/dogwood/dogwood/peers/wgsync"
	"golang.zx2c4.com/wireguard/tun/tuntest"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// benchFleet: 1,000 host peers in three networks each and 10,000 user peers.
func benchFleet() []plan.Peer {
	key := func(i uint32) wgtypes.Key {
		var k wgtypes.Key
		binary.BigEndian.PutUint32(k[:], i)
		k[31] = 0x40
		return k
	}
	var ps []plan.Peer
	for i := uint32(2); i < 1002; i++ {
		ps = append(ps, plan.Peer{PublicKey: key(i), Kind: plan.KindHost,
			Endpoint:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 51820),
			AllowedIPs: []netip.Prefix{sixpn.HostPrefix(0x18, i), sixpn.HostPrefix(0x19, i), sixpn.HostPrefix(0x20, i)}})
	}
	for i := 0; i < 10000; i++ {
		a, _ := sixpn.PeerAddr(0x18, 1, i)
		ps = append(ps, plan.Peer{PublicKey: key(0x100000 + uint32(i)), Kind: plan.KindUser, AllowedIPs: []netip.Prefix{sixpn.PeerPrefix(a)}})
	}
	return ps
}

// benchDevice is a real wireguard-go device driven over its UAPI socket through
// wgctrl, exactly like production, but on an in-memory TUN: no interface is
// created, only a socket in /var/run/wireguard (hence root).
func benchDevice(b *testing.B) *Device {
	if os.Geteuid() != 0 {
		b.Skip("skipping: needs root to create a UAPI socket in " + SocketDir)
	}
	k, _ := wgtypes.GeneratePrivateKey()
	d, err := openOn(Config{Name: fmt.Sprintf("dwbench%d", os.Getpid()%100000), PrivateKey: k, ListenPort: 0}, tuntest.NewChannelTUN().TUN())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	return d
}

func BenchmarkUserspaceReconcileFullResync(b *testing.B) {
	fleet := benchFleet()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		d := benchDevice(b)
		b.StartTimer()
		if ch, err := wgsync.Reconcile(d, fleet, quiet); err != nil || ch.Added != len(fleet) {
			b.Fatalf("%s %v", ch, err)
		}
		b.StopTimer()
		d.Close()
		b.StartTimer()
	}
}

// BenchmarkUserspaceReconcileNoChange is the stateless path: a full UAPI read per run.
func BenchmarkUserspaceReconcileNoChange(b *testing.B) {
	fleet := benchFleet()
	d := benchDevice(b)
	if _, err := wgsync.Reconcile(d, fleet, quiet); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if ch, err := wgsync.Reconcile(d, fleet, quiet); err != nil || !ch.Empty() {
			b.Fatalf("%s %v", ch, err)
		}
	}
}

// BenchmarkUserspaceReconcileAddOne alternates adding and removing one host on the
// 11,000-peer device.
func BenchmarkUserspaceReconcileAddOne(b *testing.B) {
	fleet := benchFleet()
	plus := plusOneHost(fleet)
	d := benchDevice(b)
	if _, err := wgsync.Reconcile(d, fleet, quiet); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		want := plus
		if i%2 == 1 {
			want = fleet
		}
		if ch, err := wgsync.Reconcile(d, want, quiet); err != nil || ch.Added+ch.Removed != 1 {
			b.Fatalf("%s %v", ch, err)
		}
	}
}

// The Reconciler variants are what the data plane runs: one read, then diffs.
func BenchmarkUserspaceReconcilerNoChange(b *testing.B) {
	fleet := benchFleet()
	r := wgsync.NewReconciler(benchDevice(b), time.Hour, nil)
	if _, err := r.Reconcile(fleet, quiet); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if ch, err := r.Reconcile(fleet, quiet); err != nil || !ch.Empty() {
			b.Fatalf("%s %v", ch, err)
		}
	}
}

func BenchmarkUserspaceReconcilerAddOne(b *testing.B) {
	fleet := benchFleet()
	plus := plusOneHost(fleet)
	r := wgsync.NewReconciler(benchDevice(b), time.Hour, nil)
	if _, err := r.Reconcile(fleet, quiet); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		want := plus
		if i%2 == 1 {
			want = fleet
		}
		if ch, err := r.Reconcile(want, quiet); err != nil || ch.Added+ch.Removed != 1 {
			b.Fatalf("%s %v", ch, err)
		}
	}
}

// quiet keeps every host peer "just added" so no keepalive, and so no handshake, is
// ever sent: the fleet's endpoints are benchmarking-range addresses outside any
// namespace of ours, and a benchmark must not send them a packet.
var quiet = wgsync.Settings{Age: func(wgtypes.Key) time.Duration { return 0 }}

// plusOneHost is the fleet with one more host peer.
func plusOneHost(fleet []plan.Peer) []plan.Peer {
	extra, _ := wgtypes.GeneratePrivateKey()
	return append(append([]plan.Peer{}, fleet...), plan.Peer{PublicKey: extra.PublicKey(), Kind: plan.KindHost,
		AllowedIPs: []netip.Prefix{sixpn.HostPrefix(0x18, 5000)}})
}
