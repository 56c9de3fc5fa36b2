package link

import (
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/dogwood/dogwood/peers/internal/nstest"
)

func TestSyncRoutesAndDNS(t *testing.T) {
	if !nstest.Enter(t) {
		return
	}
	// A veth stands in for the WireGuard interface: routes only need a link.
	out, err := exec.Command("sh", "-c", "ip link add wgx type veth peer name wgy && ip link set wgx up && ip link set wgy up && ip -6 route add fd00::/64 dev wgx").CombinedOutput()
	if err != nil {
		t.Fatalf("%v %s", err, out)
	}
	l, err := New(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := func(s ...string) (ps []netip.Prefix) {
		for _, x := range s {
			ps = append(ps, netip.MustParsePrefix(x))
		}
		return
	}
	if a, r, err := l.SyncRoutes("wgx", p("fdaa:0:18:0:2::/80", "fdaa:0:18:0:1:0:a:0/120")); err != nil || a != 2 || r != 0 {
		t.Fatalf("%d %d %v", a, r, err)
	}
	if a, r, err := l.SyncRoutes("wgx", p("fdaa:0:18:0:2::/80", "fdaa:0:18:0:1:0:a:0/120")); err != nil || a != 0 || r != 0 {
		t.Fatalf("idempotent: %d %d %v", a, r, err)
	}
	if a, r, err := l.SyncRoutes("wgx", p("fdaa:0:19:0:2::/80")); err != nil || a != 1 || r != 2 {
		t.Fatalf("replace: %d %d %v", a, r, err)
	}
	routes, _ := exec.Command("ip", "-6", "route", "show", "dev", "wgx").CombinedOutput()
	if !strings.Contains(string(routes), "fd00::/64") || !strings.Contains(string(routes), "fdaa:0:19:0:2::/80") || strings.Contains(string(routes), "fdaa:0:18") {
		t.Fatalf("routes:\n%s", routes)
	}

	exec.Command("ip", "addr", "add", "fdaa:0:77::5/128", "dev", "lo").Run() // not a DNS address: not ours
	dns := []netip.Addr{netip.MustParseAddr("fdaa::3"), netip.MustParseAddr("fdaa:0:18::3")}
	if err := l.SyncDNS(dns); err != nil {
		t.Fatal(err)
	}
	if err := l.SyncDNS(dns[:1]); err != nil {
		t.Fatal(err)
	}
	addrs, _ := exec.Command("ip", "-6", "addr", "show", "dev", "lo").CombinedOutput()
	if !strings.Contains(string(addrs), "fdaa::3/128") || strings.Contains(string(addrs), "fdaa:0:18::3") || !strings.Contains(string(addrs), "fdaa:0:77::5") {
		t.Fatalf("lo addresses:\n%s", addrs)
	}
	if err := EnableForwarding(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(ForwardingPath); string(b) != "1\n" {
		t.Fatalf("forwarding %q", b)
	}
}

func TestIsDNSAddr(t *testing.T) {
	for s, want := range map[string]bool{"fdaa::3": true, "fdaa:0:18::3": true, "fdaa:0:18:0:1::3": false, "fdaa::2": false, "fd00::3": false} {
		if IsDNSAddr(netip.MustParseAddr(s)) != want {
			t.Errorf("%s: want %v", s, want)
		}
	}
}
