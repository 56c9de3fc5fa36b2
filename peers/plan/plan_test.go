package plan

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/sixpn"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// key returns a deterministic public key so expectations can name it.
func key(b byte) wgtypes.Key {
	var k wgtypes.Key
	k[0] = b
	k[31] = b
	return k
}

func host(name string, id uint32, status string, k byte) catalog.HostView {
	return catalog.HostView{Host: catalog.Host{
		Name: name, ID: id, Region: "ord",
		Addr:   netip.AddrFrom4([4]byte{198, 18, 0, byte(id)}),
		WGPort: 51820, PublicKey: key(k).String(),
	}, Status: status}
}

func machine(id string, host string, hostID, net, field uint32, netns string) catalog.Machine {
	return catalog.Machine{
		ID:           id,
		MachinePlace: &catalog.MachinePlace{App: "app" + string(rune('a'+net%26)), NetworkID: net, Host: host, HostID: hostID},
		Field:        field,
		Address:      sixpn.MachineAddr(net, hostID, field),
		MachineAttrs: &catalog.MachineAttrs{State: catalog.StateStarted}, Netns: netns,
	}
}

func withIfname(m catalog.Machine, ifname string) catalog.Machine {
	m.MachineAttrs = &catalog.MachineAttrs{State: catalog.StateStarted, Source: catalog.SourceCNI, Ifname: ifname}
	return m
}

func cniMachine(id string, field uint32, ifname string) Machine {
	return Machine{ID: id, Netns: "/run/netns/cni-1", NetworkID: 0x18, Prefix: sixpn.MachinePrefix(0x18, 1, field),
		Addr: sixpn.MachineAddr(0x18, 1, field), Gateway: sixpn.MachineGateway(0x18, 1, field), HostIface: VethName(field),
		Ifname: ifname, External: true}
}

func userPeer(name, gw string, gwID, net uint32, index int, k byte) catalog.Peer {
	a, _ := sixpn.PeerAddr(net, gwID, index)
	return catalog.Peer{Name: name, Org: "acme", NetworkID: net, Gateway: gw, GatewayID: gwID, Address: a, PublicKey: key(k).String()}
}

func snap(self string, hosts []catalog.HostView, machines []catalog.Machine, peers []catalog.Peer) *catalog.Snapshot {
	nets := map[uint32]bool{}
	for _, m := range machines {
		nets[m.NetworkID] = true
	}
	for _, p := range peers {
		nets[p.NetworkID] = true
	}
	var networks []catalog.Network
	var apps []catalog.App
	for n := range nets {
		networks = append(networks, catalog.Network{Org: "acme", Name: "n" + sixpn.NetworkPrefix(n).String(), ID: n})
		apps = append(apps, catalog.App{Name: "app" + string(rune('a'+n%26)), Org: "acme", NetworkID: n})
	}
	return catalog.Build(self, hosts, []catalog.Org{{Slug: "acme"}}, networks, apps, machines, peers)
}

type wantPeer struct {
	key      byte
	kind     Kind
	endpoint string
	allowed  []string
}

func TestCompute(t *testing.T) {
	// Host ids: a=1 (self), b=2, c=3, d=4. Networks 0x18 and 0x19.
	cases := []struct {
		name     string
		s        *catalog.Snapshot
		peers    []wantPeer
		routes   []string
		dns      []string
		networks []uint32
		machines []Machine
		skipped  []string // substrings
	}{
		{
			name:  "alone",
			s:     snap("a", []catalog.HostView{host("a", 1, catalog.StatusAlive, 1)}, nil, nil),
			dns:   []string{"fdaa::3"},
			peers: nil,
		},
		{
			name: "hosts without machines are peers with no allowed ips",
			s: snap("a", []catalog.HostView{
				host("a", 1, catalog.StatusAlive, 1), host("b", 2, catalog.StatusAlive, 2),
			}, nil, nil),
			peers: []wantPeer{{key: 2, kind: KindHost, endpoint: "198.18.0.2:51820"}},
			dns:   []string{"fdaa::3"},
		},
		{
			name: "allowed ips follow the networks each host has machines or peers in",
			s: snap("a", []catalog.HostView{
				host("a", 1, catalog.StatusAlive, 1), host("b", 2, catalog.StatusAlive, 2), host("c", 3, catalog.StatusSuspect, 3),
			}, []catalog.Machine{
				machine("00000000000001", "a", 1, 0x18, 0x10001, "ns1"),
				machine("00000000000002", "b", 2, 0x18, 0x10002, ""),
				machine("00000000000003", "b", 2, 0x19, 0x10003, ""),
				machine("00000000000004", "b", 2, 0x19, 0x10004, ""), // second in the same network: still one /80
			}, []catalog.Peer{userPeer("laptop", "c", 3, 0x18, 0, 9)}),
			peers: []wantPeer{
				{key: 2, kind: KindHost, endpoint: "198.18.0.2:51820", allowed: []string{"fdaa:0:18:0:2::/80", "fdaa:0:19:0:2::/80"}},
				{key: 3, kind: KindHost, endpoint: "198.18.0.3:51820", allowed: []string{"fdaa:0:18:0:3::/80"}},
			},
			routes:   []string{"fdaa:0:18:0:2::/80", "fdaa:0:18:0:3::/80", "fdaa:0:19:0:2::/80"},
			dns:      []string{"fdaa::3", "fdaa:0:18::3"},
			networks: []uint32{0x18},
			machines: []Machine{{
				ID: "00000000000001", Netns: "ns1", NetworkID: 0x18,
				Prefix:  netip.MustParsePrefix("fdaa:0:18:0:1:1:1:0/112"),
				Addr:    netip.MustParseAddr("fdaa:0:18:0:1:1:1:2"),
				Gateway: netip.MustParseAddr("fdaa:0:18:0:1:1:1:1"), HostIface: "dwm00010001", Ifname: "6pn0",
			}},
		},
		{
			name: "failed hosts keep their peer, left hosts lose it",
			s: snap("a", []catalog.HostView{
				host("a", 1, catalog.StatusAlive, 1), host("b", 2, catalog.StatusFailed, 2), host("c", 3, catalog.StatusLeft, 3),
			}, []catalog.Machine{
				machine("00000000000002", "b", 2, 0x18, 0x10002, ""),
				machine("00000000000003", "c", 3, 0x18, 0x10003, ""),
			}, nil),
			peers:  []wantPeer{{key: 2, kind: KindHost, endpoint: "198.18.0.2:51820", allowed: []string{"fdaa:0:18:0:2::/80"}}},
			routes: []string{"fdaa:0:18:0:2::/80"},
			dns:    []string{"fdaa::3"},
		},
		{
			name: "local user peers get their /120, remote ones ride on their gateway's /80",
			s: snap("a", []catalog.HostView{
				host("a", 1, catalog.StatusAlive, 1), host("b", 2, catalog.StatusAlive, 2),
			}, nil, []catalog.Peer{
				userPeer("p0", "a", 1, 0x18, 0, 10),
				userPeer("p1", "a", 1, 0x18, 257, 11),
				userPeer("p2", "b", 2, 0x19, 0, 12),
			}),
			peers: []wantPeer{
				{key: 2, kind: KindHost, endpoint: "198.18.0.2:51820", allowed: []string{"fdaa:0:19:0:2::/80"}},
				{key: 10, kind: KindUser, allowed: []string{"fdaa:0:18:0:1:0:a:0/120"}},
				{key: 11, kind: KindUser, allowed: []string{"fdaa:0:18:0:1:0:b:100/120"}},
			},
			routes:   []string{"fdaa:0:18:0:1:0:a:0/120", "fdaa:0:18:0:1:0:b:100/120", "fdaa:0:19:0:2::/80"},
			dns:      []string{"fdaa::3", "fdaa:0:18::3"},
			networks: []uint32{0x18},
		},
		{
			name: "key clashes resolve deterministically: hosts by name win, self key is never a peer",
			s: snap("a", []catalog.HostView{
				host("a", 1, catalog.StatusAlive, 1), host("b", 2, catalog.StatusAlive, 2), host("c", 3, catalog.StatusAlive, 2),
			}, nil, []catalog.Peer{userPeer("thief", "a", 1, 0x18, 0, 1), userPeer("copy", "a", 1, 0x18, 1, 2)}),
			peers:    []wantPeer{{key: 2, kind: KindHost, endpoint: "198.18.0.2:51820"}},
			dns:      []string{"fdaa::3", "fdaa:0:18::3"},
			networks: []uint32{0x18},
			skipped:  []string{"host c: public key already used by host b", "user acme/thief: public key already used by a (self)", "user acme/copy"},
		},
		{
			name: "bad records are skipped, not fatal",
			s: func() *catalog.Snapshot {
				bad := host("b", 2, catalog.StatusAlive, 2)
				bad.PublicKey = "not-a-key"
				off := host("c", 3, catalog.StatusAlive, 3)
				off.PublicKey = "" // --wireguard off
				noAddr := host("d", 4, catalog.StatusAlive, 4)
				noAddr.Addr = netip.Addr{}
				foreign := userPeer("foreign", "a", 2, 0x18, 0, 20) // address on host 2
				foreign.Gateway = "a"
				return snap("a", []catalog.HostView{host("a", 1, catalog.StatusAlive, 1), bad, off, noAddr},
					[]catalog.Machine{
						machine("00000000000001", "a", 1, 0x18, 0x10001, "../etc"),
						machine("00000000000002", "a", 1, 0x18, 0x10002, "same"),
						machine("00000000000003", "a", 1, 0x18, 0x10003, "same"),
						// Container machines: a namespace path, one per interface.
						withIfname(machine("00000000000004", "a", 1, 0x18, 0x10004, "/run/netns/cni-1"), "eth0"),
						withIfname(machine("00000000000005", "a", 1, 0x18, 0x10005, "/run/netns/cni-1"), "eth1"),
						withIfname(machine("00000000000006", "a", 1, 0x18, 0x10006, "/run/netns/cni-1"), ""),
						withIfname(machine("00000000000007", "a", 1, 0x18, 0x10007, "/run/netns/cni-1"), "eth0"),
					}, []catalog.Peer{foreign})
			}(),
			peers:    []wantPeer{{key: 4, kind: KindHost}},
			dns:      []string{"fdaa::3", "fdaa:0:18::3"},
			networks: []uint32{0x18},
			machines: []Machine{{
				ID: "00000000000002", Netns: "same", NetworkID: 0x18,
				Prefix:  sixpn.MachinePrefix(0x18, 1, 0x10002),
				Addr:    sixpn.MachineAddr(0x18, 1, 0x10002),
				Gateway: sixpn.MachineGateway(0x18, 1, 0x10002), HostIface: "dwm00010002", Ifname: "6pn0",
			}, cniMachine("00000000000004", 0x10004, "eth0"), cniMachine("00000000000005", 0x10005, "eth1")},
			skipped: []string{"host b: bad public key", "user acme/foreign: address", `invalid netns name "../etc"`, `netns "same" already holds machine 00000000000002`,
				`machine 00000000000006: netns path "/run/netns/cni-1" with interface ""`, `netns "/run/netns/cni-1" already holds machine 00000000000004`},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Compute(c.s)
			var got []wantPeer
			for _, p := range d.Peers {
				w := wantPeer{key: p.PublicKey[0], kind: p.Kind}
				if p.Endpoint.IsValid() {
					w.endpoint = p.Endpoint.String()
				}
				for _, a := range p.AllowedIPs {
					w.allowed = append(w.allowed, a.String())
				}
				got = append(got, w)
			}
			if !slices.EqualFunc(got, c.peers, func(a, b wantPeer) bool {
				return a.key == b.key && a.kind == b.kind && a.endpoint == b.endpoint && slices.Equal(a.allowed, b.allowed)
			}) {
				t.Errorf("peers:\n got %+v\nwant %+v", got, c.peers)
			}
			if g := strs(d.Routes); !slices.Equal(g, c.routes) {
				t.Errorf("routes: got %v want %v", g, c.routes)
			}
			if g := strs(d.DNS); !slices.Equal(g, c.dns) {
				t.Errorf("dns: got %v want %v", g, c.dns)
			}
			if !slices.Equal(d.Networks, c.networks) {
				t.Errorf("networks: got %v want %v", d.Networks, c.networks)
			}
			if !slices.Equal(d.Machines, c.machines) {
				t.Errorf("machines:\n got %+v\nwant %+v", d.Machines, c.machines)
			}
			if len(d.Skipped) != len(c.skipped) {
				t.Errorf("skipped: got %q want %d entries like %q", d.Skipped, len(c.skipped), c.skipped)
			}
			for _, want := range c.skipped {
				if !slices.ContainsFunc(d.Skipped, func(s string) bool { return strings.Contains(s, want) }) {
					t.Errorf("skipped %q lacks %q", d.Skipped, want)
				}
			}
		})
	}
}

func strs[T interface{ String() string }](xs []T) []string {
	var out []string
	for _, x := range xs {
		out = append(out, x.String())
	}
	return out
}

func TestVethName(t *testing.T) {
	for _, f := range []uint32{sixpn.MinMachineField, 0xffffffff, 0xdeadbeef} {
		n := VethName(f)
		if len(n) > 15 || !strings.HasPrefix(n, VethPrefix) {
			t.Errorf("VethName(%#x) = %q", f, n)
		}
	}
	if VethName(0x10001) == VethName(0x10002) {
		t.Error("veth names collide")
	}
}

// TestDeterministic: map iteration order must never leak into the plan, or the
// reconciler would see phantom changes.
func TestDeterministic(t *testing.T) {
	var hosts []catalog.HostView
	var machines []catalog.Machine
	for i := uint32(1); i <= 50; i++ {
		hosts = append(hosts, host("h"+sixpn.NetworkPrefix(i).String(), i, catalog.StatusAlive, byte(i)))
		for n := uint32(1); n <= 5; n++ {
			machines = append(machines, machine(sixpn.NewMachineID(), hosts[i-1].Name, i, n, 0x10000+i*8+n, ""))
		}
	}
	first := Compute(snap(hosts[0].Name, hosts, machines, nil))
	for i := 0; i < 20; i++ {
		again := Compute(snap(hosts[0].Name, hosts, machines, nil))
		if !slices.EqualFunc(first.Peers, again.Peers, func(a, b Peer) bool {
			return a.PublicKey == b.PublicKey && slices.Equal(a.AllowedIPs, b.AllowedIPs)
		}) || !slices.Equal(first.Routes, again.Routes) {
			t.Fatal("plan depends on map order")
		}
	}
	if len(first.Peers) != 49 || len(first.Routes) != 49*5 {
		t.Fatalf("got %d peers %d routes", len(first.Peers), len(first.Routes))
	}
}
