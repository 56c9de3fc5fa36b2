package device

import (
	"errors"
	"github.com/dogwood/dogwood/cmd/dogwood/e2e/needs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dogwood/dogwood/peers/internal/nstest"
	"github.com/dogwood/dogwood/peers/plan"
	"github.com/dogwood/dogwood/peers/wgsync"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func newKey(t testing.TB) wgtypes.Key {
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func open(t *testing.T, name string, mode Mode) *Device {
	t.Helper()
	d, err := Open(Config{Name: name, Mode: mode, PrivateKey: newKey(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Destroy() })
	return d
}

// TestUserspaceRoundTrip runs two embedded wireguard-go devices on loopback in a
// throwaway namespace, peers them through the reconciler, and sends a packet through
// the tunnel: both sides must complete a handshake and count the data.
func TestUserspaceRoundTrip(t *testing.T) {
	if !nstest.Enter(t) {
		return
	}
	a := open(t, nstest.Name("a"), Userspace)
	b := open(t, nstest.Name("b"), Userspace)
	if a.Mode() != Userspace {
		t.Fatalf("mode %s", a.Mode())
	}
	da, _ := a.Device()
	db, _ := b.Device()
	if da.ListenPort == 0 || db.ListenPort == 0 {
		t.Fatalf("no listen ports: %d %d", da.ListenPort, db.ListenPort)
	}
	prefA := netip.MustParsePrefix("fdaa:0:1:0:1::/80")
	prefB := netip.MustParsePrefix("fdaa:0:1:0:2::/80")
	peer := func(d *wgtypes.Device, p netip.Prefix) []plan.Peer {
		return []plan.Peer{{PublicKey: d.PublicKey, Kind: plan.KindHost,
			Endpoint: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(d.ListenPort)), AllowedIPs: []netip.Prefix{p}}}
	}
	if ch, err := wgsync.Reconcile(a, peer(db, prefB), wgsync.Settings{}); err != nil || ch.Added != 1 {
		t.Fatalf("peer a→b: %s %v", ch, err)
	}
	if ch, err := wgsync.Reconcile(b, peer(da, prefA), wgsync.Settings{}); err != nil || ch.Added != 1 {
		t.Fatalf("peer b→a: %s %v", ch, err)
	}
	// Source address for A's packets, and a route into the tunnel.
	la, err := netlink.LinkByName(a.Name())
	if err != nil {
		t.Fatal(err)
	}
	if la.Attrs().MTU != DefaultMTU || la.Attrs().Flags&net.FlagUp == 0 {
		t.Fatalf("link %s: mtu %d flags %v", a.Name(), la.Attrs().MTU, la.Attrs().Flags)
	}
	src := netip.MustParseAddr("fdaa:0:1:0:1::1")
	if err := netlink.AddrAdd(la, &netlink.Addr{IPNet: &net.IPNet{IP: src.AsSlice(), Mask: net.CIDRMask(128, 128)}, Flags: unix.IFA_F_NODAD}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: la.Attrs().Index, Dst: &net.IPNet{IP: prefB.Addr().AsSlice(), Mask: net.CIDRMask(80, 128)}}); err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp6", &net.UDPAddr{IP: src.AsSlice()}, &net.UDPAddr{IP: net.ParseIP("fdaa:0:1:0:2::9"), Port: 9})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	deadline := time.Now().Add(10 * time.Second)
	for {
		c.Write([]byte("hello through the tunnel"))
		got, _ := b.Device()
		if len(got.Peers) == 1 && !got.Peers[0].LastHandshakeTime.IsZero() && got.Peers[0].ReceiveBytes > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no handshake/data on b: %+v", got.Peers)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ga, _ := a.Device()
	if ga.Peers[0].LastHandshakeTime.IsZero() || ga.Peers[0].TransmitBytes == 0 {
		t.Fatalf("a saw no handshake: %+v", ga.Peers[0])
	}

	// `wg show` reads the same UAPI socket.
	if _, err := exec.LookPath("wg"); err != nil && needs.CI() {
		t.Fatalf("CI=true and wg is not installed: `wg show` not checked")
	} else if err == nil {
		out, err := exec.Command("wg", "show", b.Name()).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "latest handshake") || !strings.Contains(string(out), da.PublicKey.String()) {
			t.Fatalf("wg show: %v\n%s", err, out)
		}
	}

	// Close removes the interface and the socket; Close again is harmless.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(SocketDir, a.Name()+".sock")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind: %v", err)
	}
	waitGone(t, a.Name())
}

func waitGone(t *testing.T, name string) {
	for i := 0; i < 50; i++ {
		if _, err := netlink.LinkByName(name); err != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("interface %s still exists", name)
}

// TestAutoMode: auto picks the kernel module when present, else userspace, and the
// result is reported truthfully.
func TestAutoMode(t *testing.T) {
	if !nstest.Enter(t) {
		return
	}
	d := open(t, nstest.Name("c"), Auto)
	_, kmod := os.Stat("/sys/module/wireguard")
	want := Userspace
	if kmod == nil {
		want = Kernel
	}
	if d.Mode() != want {
		t.Fatalf("auto chose %s, want %s", d.Mode(), want)
	}
	l, err := netlink.LinkByName(d.Name())
	if err != nil {
		t.Fatal(err)
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		t.Fatal("link not up")
	}
	if want == Userspace {
		if _, err := Open(Config{Name: d.Name(), Mode: Userspace, PrivateKey: newKey(t), TUNGrace: 200 * time.Millisecond}); err == nil {
			t.Fatal("second device on the same name must fail")
		}
		if _, err := Open(Config{Name: nstest.Name("k"), Mode: Kernel, PrivateKey: newKey(t)}); err == nil {
			t.Fatal("kernel mode without the module must fail")
		}
	}
	if err := d.Destroy(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, d.Name())
}

func TestParseMode(t *testing.T) {
	for _, s := range []string{"auto", "kernel", "userspace"} {
		if _, err := ParseMode(s); err != nil {
			t.Error(err)
		}
	}
	for _, s := range []string{"off", "", "Kernel"} {
		if _, err := ParseMode(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
	if _, err := Open(Config{Name: "this-name-is-too-long"}); err == nil {
		t.Error("long name accepted")
	}
}

// TestOpenWaitsForPreviousTUN: an agent restarted while the kernel still tears down
// the previous process's TUN opens once it is gone, instead of failing.
func TestOpenWaitsForPreviousTUN(t *testing.T) {
	if !nstest.Enter(t) {
		return
	}
	name := nstest.Name("r")
	old := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: name}, Mode: netlink.TUNTAP_MODE_TUN, Flags: netlink.TUNTAP_NO_PI}
	if err := netlink.LinkAdd(old); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = netlink.LinkDel(old) // a failure shows as Open's error below
	}()
	d := open(t, name, Userspace)
	if d.Mode() != Userspace {
		t.Fatalf("mode %s", d.Mode())
	}
}
