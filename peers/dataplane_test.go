package peers_test

import (
	"log/slog"
	"math"
	"net/netip"
	"slices"
	"testing"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/sixpn"
	"github.com/dogwood/dogwood/peers"
	"github.com/dogwood/dogwood/peers/device"
	"github.com/dogwood/dogwood/peers/internal/nstest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func TestNewRequiresKeyAndLogger(t *testing.T) {
	if _, err := peers.New(peers.Config{PrivateKey: wgtypes.Key{1}}); err == nil {
		t.Error("nil logger accepted")
	}
	if _, err := peers.New(peers.Config{Logger: slog.New(slog.DiscardHandler)}); err == nil {
		t.Error("zero key accepted")
	}
}

// TestApplyStatusMetrics drives the agent-facing API in a throwaway namespace.
func TestApplyStatusMetrics(t *testing.T) {
	if !nstest.Enter(t) {
		return
	}
	self, _ := wgtypes.GeneratePrivateKey()
	other, _ := wgtypes.GeneratePrivateKey()
	user, _ := wgtypes.GeneratePrivateKey()
	reg := prometheus.NewRegistry()
	iface := nstest.Name("dp")
	dp, err := peers.New(peers.Config{Interface: iface, Mode: device.Auto, ListenPort: 51999, PrivateKey: self,
		Logger: slog.New(slog.DiscardHandler), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer dp.Teardown()
	paddr, _ := sixpn.PeerAddr(0x18, 1, 0)
	snap := catalog.Build("a",
		[]catalog.HostView{
			{Host: catalog.Host{Name: "a", ID: 1, PublicKey: self.PublicKey().String(), Addr: netip.MustParseAddr("198.18.0.1"), WGPort: 51999}, Status: catalog.StatusAlive},
			{Host: catalog.Host{Name: "b", ID: 2, PublicKey: other.PublicKey().String(), Addr: netip.MustParseAddr("198.18.0.2"), WGPort: 51820}, Status: catalog.StatusFailed},
		},
		[]catalog.Org{{Slug: "acme"}}, []catalog.Network{{Org: "acme", Name: "default", ID: 0x18}}, nil, nil,
		[]catalog.Peer{{Name: "laptop", Org: "acme", NetworkID: 0x18, Gateway: "a", GatewayID: 1, Address: paddr, PublicKey: user.PublicKey().String()}})
	if err := dp.Apply(snap); err != nil {
		t.Fatal(err)
	}
	if err := dp.Apply(snap); err != nil {
		t.Fatal(err)
	}
	if got := dp.DNSAddrs(); !slices.Equal(got, []netip.Addr{sixpn.MachineDNS(), sixpn.NetworkDNS(0x18)}) {
		t.Errorf("DNSAddrs %v", got)
	}
	st, err := dp.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Interface != iface || st.ListenPort != 51999 || st.PublicKey != self.PublicKey().String() || len(st.Peers) != 2 {
		t.Fatalf("status %+v", st)
	}
	if p := st.Peers[0]; p.Kind != "host" || p.Name != "b" || p.Endpoint != "198.18.0.2:51820" || p.LastHandshake != nil {
		t.Errorf("host peer %+v", p)
	}
	if p := st.Peers[1]; p.Kind != "user" || p.Name != "acme/laptop" || p.Endpoint != "" || !slices.Equal(p.AllowedIPs, []string{sixpn.PeerPrefix(paddr).String()}) {
		t.Errorf("user peer %+v", p)
	}
	if n, err := testutil.GatherAndCount(reg, "dogwood_wireguard_peers"); err != nil || n != 3 {
		t.Errorf("peers gauge series %d %v", n, err)
	}
	mfs, _ := reg.Gather()
	vals := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			key := mf.GetName()
			for _, l := range m.Label {
				key += "," + l.GetValue()
			}
			switch {
			case m.Gauge != nil:
				vals[key] = m.Gauge.GetValue()
			case m.Counter != nil:
				vals[key] = m.Counter.GetValue()
			case m.Histogram != nil:
				vals[key] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	for k, want := range map[string]float64{
		"dogwood_wireguard_peers,host": 1, "dogwood_wireguard_peers,user": 1,
		"dogwood_wireguard_peers_without_handshake": 2, "dogwood_wireguard_reconcile_runs_total,ok": 2,
		"dogwood_wireguard_peer_changes_total,add": 2, "dogwood_wireguard_reconcile_duration_seconds": 2,
		// Per peer, by host name or org/name; never handshaked is +Inf, so "> 180" alerts.
		"dogwood_wireguard_peer_handshake_age_seconds,host,b":           math.Inf(1),
		"dogwood_wireguard_peer_handshake_age_seconds,user,acme/laptop": math.Inf(1),
		"dogwood_wireguard_peer_receive_bytes_total,host,b":             0,
	} {
		if _, ok := vals[k]; !ok {
			t.Errorf("no series %s (all: %v)", k, vals)
		}
		if vals[k] != want {
			t.Errorf("%s = %v, want %v (all: %v)", k, vals[k], want, vals)
		}
	}
	// The host leaves: its peer goes, the user peer stays untouched.
	snap.Hosts["b"].Status = catalog.StatusLeft
	if err := dp.Apply(snap); err != nil {
		t.Fatal(err)
	}
	st, _ = dp.Status()
	if len(st.Peers) != 1 || st.Peers[0].Kind != "user" {
		t.Fatalf("after leave: %+v", st.Peers)
	}
	if err := dp.Teardown(); err != nil {
		t.Fatal(err)
	}
	if n, _ := testutil.GatherAndCount(reg); n != 0 {
		t.Errorf("%d metrics still registered after teardown", n)
	}
}
