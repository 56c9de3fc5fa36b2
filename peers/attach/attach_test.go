package attach

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/sixpn"
	"github.com/dogwood/dogwood/peers/internal/nstest"
	"github.com/dogwood/dogwood/peers/plan"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func machine(id string, ns string, field uint32) plan.Machine {
	return plan.Machine{ID: id, Netns: ns, NetworkID: 0x18,
		Prefix: sixpn.MachinePrefix(0x18, 7, field), Addr: sixpn.MachineAddr(0x18, 7, field),
		Gateway: sixpn.MachineGateway(0x18, 7, field), HostIface: plan.VethName(field)}
}

func TestSyncCreatesAdoptsDetaches(t *testing.T) {
	if !nstest.Enter(t) {
		return
	}
	etc := t.TempDir()
	a, err := New(Config{Logger: slog.New(slog.DiscardHandler), EtcNetns: etc})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	created := nstest.Name("mc") // does not exist: Sync must create it
	existing := nstest.Name("me")
	t.Cleanup(func() { netns.DeleteNamed(created); netns.DeleteNamed(existing) })
	if h, err := createNamedNetns(existing); err != nil {
		t.Fatal(err)
	} else {
		h.Close()
	}
	m1, m2 := machine("00000000000001", created, 0x10001), machine("00000000000002", existing, 0x10002)

	res, err := a.Sync([]plan.Machine{m1, m2})
	if err != nil || res.Attached != 2 {
		t.Fatalf("first sync: %+v %v", res, err)
	}
	check := func(m plan.Machine) {
		t.Helper()
		host, err := netlink.LinkByName(m.HostIface)
		if err != nil {
			t.Fatal(err)
		}
		if host.Attrs().MTU != 1420 || !strings.HasPrefix(host.Attrs().Alias, "dogwood:"+m.ID) {
			t.Errorf("host side %+v", host.Attrs())
		}
		ns, err := netns.GetFromName(m.Netns)
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		nh, _ := netlink.NewHandleAt(ns)
		defer nh.Close()
		inner, err := nh.LinkByName(PeerIface)
		if err != nil {
			t.Fatal(err)
		}
		addrs, _ := nh.AddrList(inner, netlink.FAMILY_V6)
		found := false
		for _, ad := range addrs {
			found = found || ad.IP.String() == m.Addr.String()
		}
		if !found {
			t.Errorf("%s: machine address missing: %v", m.ID, addrs)
		}
		routes, _ := nh.RouteList(inner, netlink.FAMILY_V6)
		def := false
		for _, r := range routes {
			def = def || (r.Dst == nil || r.Dst.String() == "::/0") && r.Gw.String() == m.Gateway.String()
		}
		if !def {
			t.Errorf("%s: no default route via %s: %v", m.ID, m.Gateway, routes)
		}
		b, err := os.ReadFile(filepath.Join(etc, m.Netns, "resolv.conf"))
		if err != nil || !strings.Contains(string(b), "nameserver fdaa::3") {
			t.Errorf("resolv.conf %q %v", b, err)
		}
	}
	check(m1)
	check(m2)
	idx := func(m plan.Machine) int {
		l, err := netlink.LinkByName(m.HostIface)
		if err != nil {
			t.Fatal(err)
		}
		return l.Attrs().Index
	}
	before := idx(m1)

	// A second agent (restart) adopts without recreating, and repairs drift.
	b, _ := New(Config{Logger: slog.New(slog.DiscardHandler), EtcNetns: etc})
	defer b.Close()
	os.Remove(filepath.Join(etc, m1.Netns, "resolv.conf"))
	res, err = b.Sync([]plan.Machine{m1, m2})
	if err != nil || res.Attached != 0 || res.Adopted != 2 {
		t.Fatalf("restart sync: %+v %v", res, err)
	}
	if idx(m1) != before {
		t.Fatal("veth recreated on restart")
	}
	check(m1)

	// m1 destroyed: its veth, resolv.conf and the namespace Dogwood created go;
	// m2's pre-existing namespace would survive its own detach.
	res, err = b.Sync([]plan.Machine{m2})
	if err != nil || res.Detached != 1 {
		t.Fatalf("detach sync: %+v %v", res, err)
	}
	if _, err := netlink.LinkByName(m1.HostIface); err == nil {
		t.Error("veth left behind")
	}
	if _, err := os.Stat(filepath.Join(etc, m1.Netns)); !os.IsNotExist(err) {
		t.Error("/etc/netns dir left behind")
	}
	if _, err := netns.GetFromName(created); err == nil {
		t.Error("created netns left behind")
	}
	if err := b.DetachAll(); err != nil {
		t.Fatal(err)
	}
	if h, err := netns.GetFromName(existing); err != nil {
		t.Error("pre-existing netns was deleted")
	} else {
		h.Close()
	}
	if _, err := netlink.LinkByName(m2.HostIface); err == nil {
		t.Error("veth left after DetachAll")
	}
}

// TestSyncContainerNamespace: a machine in a container runtime's namespace (a path)
// gets the runtime's interface name, its network's /48 and fdaa::3 via the host
// side (no default route), pinned neighbors, no resolv.conf; once the namespace
// dies, Sync reports ErrNamespaceGone and re-creates nothing.
func TestSyncContainerNamespace(t *testing.T) {
	if !nstest.Enter(t) {
		return
	}
	etc := t.TempDir()
	a, err := New(Config{Logger: slog.New(slog.DiscardHandler), EtcNetns: etc})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	name := nstest.Name("cn")
	h, err := createNamedNetns(name)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	t.Cleanup(func() { netns.DeleteNamed(name) })
	m := machine("00000000000009", "/run/netns/"+name, 0x10009)
	m.External, m.Ifname = true, "eth7"
	if res, err := a.Sync([]plan.Machine{m}); err != nil || res.Attached != 1 {
		t.Fatalf("sync: %+v %v", res, err)
	}
	ns, err := netns.GetFromPath(m.Netns)
	if err != nil {
		t.Fatal(err)
	}
	nh, err := netlink.NewHandleAt(ns)
	ns.Close()
	if err != nil {
		t.Fatal(err)
	}
	inner, err := nh.LinkByName("eth7")
	if err != nil {
		t.Fatalf("container interface: %v", err)
	}
	routes, _ := nh.RouteList(inner, netlink.FAMILY_V6)
	var dsts []string
	for _, r := range routes {
		if r.Gw != nil {
			dsts = append(dsts, r.Dst.String())
		}
	}
	if strings.Join(dsts, " ") != "fdaa::3/128 fdaa:0:18::/48" && strings.Join(dsts, " ") != "fdaa:0:18::/48 fdaa::3/128" {
		t.Errorf("routes via the gateway: %v", dsts)
	}
	neigh, _ := nh.NeighList(inner.Attrs().Index, netlink.FAMILY_V6)
	pinned := false
	for _, n := range neigh {
		pinned = pinned || n.IP.Equal(m.Gateway.AsSlice()) && n.State == netlink.NUD_PERMANENT
	}
	if !pinned {
		t.Errorf("no permanent neighbor entry for the gateway: %+v", neigh)
	}
	nh.Close() // its socket would keep the namespace alive
	if _, err := os.Stat(filepath.Join(etc, name)); !os.IsNotExist(err) {
		t.Errorf("resolv.conf dir written for a runtime's namespace: %v", err)
	}
	// Adopted as is on the next sync.
	if res, err := a.Sync([]plan.Machine{m}); err != nil || res.Adopted != 1 {
		t.Fatalf("second sync: %+v %v", res, err)
	}
	// The namespace dies (and its veth with it); a namespace under the same name
	// appears: nothing follows it.
	if err := netns.DeleteNamed(name); err != nil {
		t.Fatal(err)
	}
	// The kernel takes a namespace (and its veths) down asynchronously.
	for i := 0; i < 500; i++ {
		if _, err := netlink.LinkByName(m.HostIface); err != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := a.Sync([]plan.Machine{m}); !errors.Is(err, ErrNamespaceGone) {
		t.Errorf("sync with the namespace gone: %v", err)
	}
	if h, err := createNamedNetns(name); err == nil {
		h.Close()
	}
	_, err = a.Sync([]plan.Machine{m})
	if !errors.Is(err, ErrNamespaceGone) {
		t.Errorf("sync after the namespace died: %v", err)
	}
	if _, err := netlink.LinkByName(m.HostIface); err == nil {
		t.Errorf("veth re-created into a new namespace at the old path")
	}
	// Once the machine is gone, nothing is left to detach.
	if res, err := a.Sync(nil); err != nil || res.Detached != 0 {
		t.Errorf("sync without it: %+v %v", res, err)
	}
	netns.DeleteNamed(name)
}
