package tunnel

import (
	"context"
	"github.com/dogwood/dogwood/cmd/dogwood/e2e/needs"
	"io"
	"net"
	"net/netip"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/dogwood/dogwood/peers/config"
)

// TestOpenUsesLiveTunnel: when the config's address is already on an
// interface, Open starts no WireGuard session of its own (it would take the
// gateway's session away from the live tunnel) and dials through the
// machine's stack from that address.
func TestOpenUsesLiveTunnel(t *testing.T) {
	priv, _ := wgtypes.GeneratePrivateKey()
	gw, _ := wgtypes.GeneratePrivateKey()
	cfg, err := config.New(priv, netip.MustParseAddr("::1"), netip.MustParseAddr("fdaa:0:18::3"),
		gw.PublicKey(), netip.MustParsePrefix("fdaa:0:18::/48"), "192.0.2.1:51820")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		needs.Skip(t, "no IPv6 loopback: %v", err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.WriteString(c, c.RemoteAddr().String())
			c.Close()
		}
	}()

	live := func() ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}, nil
	}
	tun, err := Open(context.Background(), cfg, Options{LocalAddrs: live})
	if err != nil {
		t.Fatal(err)
	}
	defer tun.Close()
	if !tun.Shared() || tun.dev != nil {
		t.Fatalf("Open with the address up locally started its own session")
	}
	if got := tun.dnsServer; len(got) != 1 || got[0] != netip.MustParseAddr("fdaa:0:18::3") {
		t.Errorf("DNS servers %v", got)
	}
	c, err := tun.stack.DialTCP(context.Background(), netip.MustParseAddrPort(ln.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	c.Close()
	if from, err := netip.ParseAddrPort(string(b)); err != nil || from.Addr() != netip.MustParseAddr("::1") {
		t.Errorf("connection came from %q, want the tunnel address ::1", b)
	}

	// Not up locally: Open falls back to its own session.
	none := func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil }
	if _, ok := liveAddress(cfg, none); ok {
		t.Error("liveAddress found an address that is not local")
	}
	split := cfg
	split.DNS = nil
	if got := dnsServers(split); len(got) != 0 {
		// ::1 is not a 6PN address: nothing to derive.
		t.Errorf("dnsServers without DNS line for a non-6PN address: %v", got)
	}
	split.Address = []netip.Prefix{netip.MustParsePrefix("fdaa:0:18:a7b:d6b:0:a:2/120")}
	if got := dnsServers(split); len(got) != 1 || got[0] != netip.MustParseAddr("fdaa:0:18::3") {
		t.Errorf("dnsServers for a split-mode file: %v, want fdaa:0:18::3", got)
	}
}
