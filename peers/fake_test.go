package peers_test

import (
	"errors"
	"net/netip"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/sixpn"
	"github.com/dogwood/dogwood/peers"
)

// TestApplyWithFakes runs Apply's logic without root: every stage runs although one
// machine's namespace is broken, and ErrorFor blames only that machine (a create of
// another machine or of a peer must not fail or roll back for it).
func TestApplyWithFakes(t *testing.T) {
	self, _ := wgtypes.GeneratePrivateKey()
	other, _ := wgtypes.GeneratePrivateKey()
	user, _ := wgtypes.GeneratePrivateKey()
	parts, links, ns, filt, wg := peers.FakeParts()
	dp := peers.NewWithParts(peers.Config{PrivateKey: self}, parts)
	paddr, _ := sixpn.PeerAddr(0x18, 1, 0)
	machine := func(id, netns string, field uint32) catalog.Machine {
		return catalog.Machine{
			ID:           id,
			MachinePlace: &catalog.MachinePlace{App: "web", Org: "acme", Network: "default", NetworkID: 0x18, Host: "a", HostID: 1},
			Field:        field,
			Address:      sixpn.MachineAddr(0x18, 1, field),
			MachineAttrs: &catalog.MachineAttrs{State: catalog.StateStarted},
			Netns:        netns,
		}
	}
	snap := catalog.Build("a",
		[]catalog.HostView{
			{Host: catalog.Host{Name: "a", ID: 1, PublicKey: self.PublicKey().String(), Addr: netip.MustParseAddr("198.18.0.1"), WGPort: 51820}, Status: catalog.StatusAlive},
			{Host: catalog.Host{Name: "b", ID: 2, PublicKey: other.PublicKey().String(), Addr: netip.MustParseAddr("198.18.0.2"), WGPort: 51820}, Status: catalog.StatusAlive},
		},
		[]catalog.Org{{Slug: "acme"}}, []catalog.Network{{Org: "acme", Name: "default", ID: 0x18}},
		[]catalog.App{{Name: "web", Org: "acme", Network: "default", NetworkID: 0x18}},
		[]catalog.Machine{machine("00000000000001", "ok", 0x10001), machine("00000000000002", "broken", 0x10002)},
		[]catalog.Peer{{Name: "laptop", Org: "acme", NetworkID: 0x18, Gateway: "a", GatewayID: 1, Address: paddr, PublicKey: user.PublicKey().String()}})

	ns.Broken["broken"] = errors.New("namespace gone")
	err := dp.Apply(snap)
	if err == nil {
		t.Fatal("Apply hid a broken namespace")
	}
	if e := peers.ErrorFor(err, catalog.KindMachine, "00000000000002"); e == nil {
		t.Error("the broken machine's own failure was not reported")
	}
	if e := peers.ErrorFor(err, catalog.KindMachine, "00000000000001"); e != nil {
		t.Errorf("a healthy machine blamed for another's namespace: %v", e)
	}
	if e := peers.ErrorFor(err, catalog.KindPeer, "acme/laptop"); e != nil {
		t.Errorf("a peer blamed for a machine's namespace: %v", e)
	}
	// Every other stage ran.
	if _, ok := ns.Attached["00000000000001"]; !ok || len(ns.Attached) != 1 {
		t.Errorf("attached %v", ns.Attached)
	}
	if len(wg.Peers) != 2 {
		t.Errorf("wireguard peers %+v, want host b and the laptop", wg.Peers)
	}
	if len(filt.Spec.Networks) != 1 || filt.Spec.Networks[0] != 0x18 || len(links.Routes) == 0 || len(links.DNS) != 2 {
		t.Errorf("filter %+v routes %v dns %v", filt.Spec, links.Routes, links.DNS)
	}

	// A WireGuard failure is the peer's, not a machine's.
	delete(ns.Broken, "broken")
	wg.Err = errors.New("wgctrl: device busy")
	err = dp.Apply(snap)
	if e := peers.ErrorFor(err, catalog.KindPeer, "acme/laptop"); e == nil {
		t.Error("peer install failure not reported to the peer")
	}
	if e := peers.ErrorFor(err, catalog.KindMachine, "00000000000002"); e != nil {
		t.Errorf("machine blamed for WireGuard: %v", e)
	}
	// The isolation filter concerns everything.
	wg.Err, filt.Err = nil, errors.New("nft: table busy")
	err = dp.Apply(snap)
	if peers.ErrorFor(err, catalog.KindMachine, "00000000000001") == nil || peers.ErrorFor(err, catalog.KindPeer, "acme/laptop") == nil {
		t.Error("a filter failure must fail every install")
	}
	filt.Err = nil
	if err := dp.Apply(snap); err != nil {
		t.Fatalf("healthy apply: %v", err)
	}
}
