package attach

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
