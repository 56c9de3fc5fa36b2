package peers_test

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
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

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/sixpn"
	"github.com/dogwood/dogwood/peers"
	"github.com/dogwood/dogwood/peers/device"
	"github.com/dogwood/dogwood/peers/internal/nstest"
	"github.com/dogwood/dogwood/peers/plan"
	"github.com/prometheus/client_golang/prometheus"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// scenario is what the parent hands each host child: the catalog inputs every host
// shares, and which host the child is.
type scenario struct {
	Self       string
	PrivateKey string
	Iface      string
	EtcNetns   string
	Hosts      []catalog.HostView
	Networks   []catalog.Network
	Apps       []catalog.App
	Machines   []catalog.Machine
}

func (s scenario) snapshot() *catalog.Snapshot {
	return catalog.Build(s.Self, s.Hosts, []catalog.Org{{Slug: "acme"}}, s.Networks, s.Apps, s.Machines, nil)
}

const (
	netX = 0x18
	netY = 0x19
	idH1 = 0x11
	idH2 = 0x22
)

// TestHelperHost is one Dogwood host of TestMultiHost: it runs the data plane on
// a hand-made snapshot inside its namespace until stdin closes, then tears down.
func TestHelperHost(t *testing.T) {
	raw := os.Getenv("DOGWOOD_TEST_SCENARIO")
	if raw == "" || !nstest.InChild() {
		t.Skip("helper process for TestMultiHost")
	}
	var sc scenario
	if err := json.Unmarshal([]byte(raw), &sc); err != nil {
		t.Fatal(err)
	}
	key, err := wgtypes.ParseKey(sc.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dp, err := peers.New(peers.Config{Interface: sc.Iface, Mode: device.Userspace, PrivateKey: key,
		EtcNetns: sc.EtcNetns, Logger: log, Registerer: prometheus.NewRegistry()})
	if err != nil {
		nstest.Say("FAIL new: %v", err)
		t.Fatal(err)
	}
	if err := dp.Apply(sc.snapshot()); err != nil {
		nstest.Say("FAIL apply: %v", err)
		t.Fatal(err)
	}
	nstest.Say("READY")
	teardown := true
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "status":
			st, err := dp.Status()
			if err != nil {
				nstest.Say("FAIL status: %v", err)
				continue
			}
			b, _ := json.Marshal(st)
			nstest.Say("STATUS %s", b)
		case "close":
			teardown = false
		}
	}
	if teardown {
		err = dp.Teardown()
	} else {
		err = dp.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestHelperNet is a tiny network tool run inside a machine namespace: ping, send
// one UDP datagram from a given source, or report received datagrams.
func TestHelperNet(t *testing.T) {
	op := os.Getenv("DOGWOOD_TEST_NETOP")
	if op == "" || !nstest.InChild() {
		t.Skip("helper process for TestMultiHost")
	}
	args := strings.Fields(op)
	switch args[0] {
	case "ping": // ping DST
		if err := ping(netip.MustParseAddr(args[1]), 2*time.Second); err != nil {
			nstest.Say("PING FAIL %v", err)
			os.Exit(1)
		}
		nstest.Say("PING OK")
	case "send": // send SRC DST PORT
		src := &net.UDPAddr{IP: net.ParseIP(args[1])}
		dst := &net.UDPAddr{IP: net.ParseIP(args[2]), Port: atoi(args[3])}
		c, err := net.DialUDP("udp6", src, dst)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			c.Write([]byte("from " + args[1]))
		}
		c.Close()
	case "recv": // recv PORT: print every datagram's source until stdin closes
		c, err := net.ListenUDP("udp6", &net.UDPAddr{Port: atoi(args[1])})
		if err != nil {
			t.Fatal(err)
		}
		go func() { bufio.NewReader(os.Stdin).ReadString(0); c.Close() }()
		nstest.Say("LISTENING")
		buf := make([]byte, 2048)
		for {
			_, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			nstest.Say("GOT %s", from.IP)
		}
	}
}

func atoi(s string) int {
	var n int
	fmt.Sscan(s, &n)
	return n
}

// ping sends ICMPv6 echo requests (the kernel fills in the checksum of raw ICMPv6
// sockets) until a matching reply arrives.
func ping(dst netip.Addr, timeout time.Duration) error {
	c, err := net.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return err
	}
	defer c.Close()
	id := uint16(os.Getpid())
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 1500)
	for seq := uint16(1); time.Now().Before(deadline); seq++ {
		req := []byte{128, 0, 0, 0, 0, 0, 0, 0, 'd', 'o', 'g'}
		binary.BigEndian.PutUint16(req[4:], id)
		binary.BigEndian.PutUint16(req[6:], seq)
		if _, err := c.WriteTo(req, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				break
			}
			if n >= 8 && buf[0] == 129 && binary.BigEndian.Uint16(buf[4:]) == id && from.(*net.IPAddr).IP.Equal(dst.AsSlice()) {
				return nil
			}
		}
	}
	return fmt.Errorf("no echo reply from %s in %v", dst, timeout)
}

type testMachine struct {
	name   string // short name in the test
	ns     string
	host   string
	hostID uint32
	net    uint32
	field  uint32
}

func (m testMachine) addr() netip.Addr { return sixpn.MachineAddr(m.net, m.hostID, m.field) }

// TestMultiHost builds two hosts joined by an underlay bridge (198.18.0.0/24), each
// running the data plane in userspace mode with machines in their own namespaces,
// and checks SPEC §5 end to end: same-network traffic flows on one host and across
// hosts, cross-network traffic is dropped both ways on every path, spoofed sources
// are dropped on the veth and at WireGuard ingress, and an agent restart re-adopts
// machines without touching them.
func TestMultiHost(t *testing.T) {
	if nstest.InChild() {
		t.Skip("parent-only test")
	}
	nstest.RequireRoot(t)
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		needs.Skip(t, "no /dev/net/tun for wireguard-go")
	}
	run := nstest.RunID()
	br, h1, h2 := nstest.Name("br"), nstest.Name("h1"), nstest.Name("h2")
	for _, ns := range []string{br, h1, h2} {
		nstest.Netns(t, ns)
	}
	// Underlay: a bridge in its own namespace, one veth per host.
	nstest.Run(t, "ip", "-n", br, "link", "add", "br0", "type", "bridge")
	nstest.Run(t, "ip", "-n", br, "link", "set", "br0", "up")
	for i, h := range []string{h1, h2} {
		port := fmt.Sprintf("p%d", i+1)
		nstest.Run(t, "ip", "link", "add", "u0", "netns", h, "type", "veth", "peer", "name", port, "netns", br)
		nstest.Run(t, "ip", "-n", br, "link", "set", port, "master", "br0", "up")
		nstest.Run(t, "ip", "-n", h, "addr", "add", fmt.Sprintf("198.18.0.%d/24", i+1), "dev", "u0")
		nstest.Run(t, "ip", "-n", h, "link", "set", "u0", "up")
	}

	machines := []testMachine{
		{"a1", nstest.Name("a1"), "h1", idH1, netX, 0x10001},
		{"a2", nstest.Name("a2"), "h1", idH1, netY, 0x10002},
		{"a3", nstest.Name("a3"), "h1", idH1, netX, 0x10003},
		{"b1", nstest.Name("b1"), "h2", idH2, netX, 0x20001},
		{"b2", nstest.Name("b2"), "h2", idH2, netY, 0x20002},
	}
	byName := map[string]testMachine{}
	etc := t.TempDir() // stands in for /etc/netns so the test never writes the real one
	for _, m := range machines {
		// Machine namespaces are made here rather than by the agents: a mount made
		// under `ip netns exec` stays in that process's mount namespace, and the
		// test must reach them. (Creation is covered by the attach tests.)
		nstest.Netns(t, m.ns)
		byName[m.name] = m
	}

	keys := map[string]wgtypes.Key{}
	var hosts []catalog.HostView
	for i, h := range []string{"h1", "h2"} {
		k, _ := wgtypes.GeneratePrivateKey()
		keys[h] = k
		hosts = append(hosts, catalog.HostView{Host: catalog.Host{Name: h, ID: []uint32{idH1, idH2}[i], Region: "ord",
			Addr: netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 1)}), WGPort: 51820, PublicKey: k.PublicKey().String()},
			Status: catalog.StatusAlive})
	}
	base := scenario{
		Hosts:    hosts,
		Networks: []catalog.Network{{Org: "acme", Name: "x", ID: netX}, {Org: "acme", Name: "y", ID: netY}},
		Apps:     []catalog.App{{Name: "appx", Org: "acme", Network: "x", NetworkID: netX}, {Name: "appy", Org: "acme", Network: "y", NetworkID: netY}},
		EtcNetns: etc,
	}
	for i, m := range machines {
		app := map[uint32]string{netX: "appx", netY: "appy"}[m.net]
		base.Machines = append(base.Machines, catalog.Machine{
			ID:           fmt.Sprintf("%s%012x", "00", i+1),
			MachinePlace: &catalog.MachinePlace{App: app, Org: "acme", NetworkID: m.net, Host: m.host, HostID: m.hostID},
			Field:        m.field,
			Address:      m.addr(),
			MachineAttrs: &catalog.MachineAttrs{State: catalog.StateStarted}, Netns: m.ns,
		})
	}
	ifaces := map[string]string{"h1": nstest.Name("w1"), "h2": nstest.Name("w2")}
	for _, ifc := range ifaces {
		sock := filepath.Join(device.SocketDir, ifc+".sock")
		t.Cleanup(func() { os.Remove(sock) })
	}
	startHost := func(name, ns string) *nstest.Proc {
		sc := base
		sc.Self, sc.PrivateKey, sc.Iface = name, keys[name].String(), ifaces[name]
		b, _ := json.Marshal(sc)
		p := nstest.Start(t, ns, "^TestHelperHost$", "DOGWOOD_TEST_SCENARIO="+string(b))
		p.Expect(t, "READY", 30*time.Second)
		return p
	}
	p1 := startHost("h1", h1)
	p2 := startHost("h2", h2)
	_ = run

	netop := func(ns, op string) (string, error) {
		cmd := nstest.Child(t, ns, "^TestHelperNet$", "DOGWOOD_TEST_NETOP="+op)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	canPing := func(t *testing.T, from string, to netip.Addr) bool {
		out, err := netop(byName[from].ns, "ping "+to.String())
		if err != nil && !strings.Contains(out, "PING FAIL") {
			t.Fatalf("ping helper broke: %v\n%s", err, out)
		}
		return err == nil
	}
	mustPing := func(t *testing.T, from, to string) {
		t.Helper()
		if !canPing(t, from, byName[to].addr()) {
			t.Errorf("%s → %s (%s): no reply, want reachable", from, to, byName[to].addr())
		}
	}
	mustNotPing := func(t *testing.T, from, to string) {
		t.Helper()
		if canPing(t, from, byName[to].addr()) {
			t.Errorf("%s → %s (%s): reply, want isolated", from, to, byName[to].addr())
		}
	}

	t.Run("same network across hosts", func(t *testing.T) {
		mustPing(t, "a1", "b1")
		mustPing(t, "b1", "a1")
		mustPing(t, "a2", "b2")
	})
	t.Run("same network on one host", func(t *testing.T) {
		mustPing(t, "a1", "a3")
		mustPing(t, "a3", "a1")
	})
	t.Run("cross network is dropped both ways", func(t *testing.T) {
		mustNotPing(t, "a1", "b2")
		mustNotPing(t, "b2", "a1")
		mustNotPing(t, "a1", "a2")
		mustNotPing(t, "a2", "a1")
		mustNotPing(t, "b1", "a2")
	})
	t.Run("dns addresses answer their own network only", func(t *testing.T) {
		if !canPing(t, "a1", sixpn.MachineDNS()) {
			t.Error("machine cannot reach fdaa::3")
		}
		if !canPing(t, "a1", sixpn.NetworkDNS(netX)) {
			t.Error("machine cannot reach its network's DNS address")
		}
		if canPing(t, "a1", sixpn.NetworkDNS(netY)) {
			t.Error("machine reaches another network's DNS address")
		}
		b, err := os.ReadFile(filepath.Join(etc, byName["a1"].ns, "resolv.conf"))
		if err != nil || !strings.Contains(string(b), "nameserver fdaa::3") {
			t.Errorf("resolv.conf: %q %v", b, err)
		}
	})

	// Spoofing: b1 listens; senders use forged and genuine sources.
	recv := nstest.Start(t, byName["b1"].ns, "^TestHelperNet$", "DOGWOOD_TEST_NETOP=recv 7777")
	recv.Expect(t, "LISTENING", 10*time.Second)
	send := func(ns string, src netip.Addr) {
		t.Helper()
		if out, err := netop(ns, fmt.Sprintf("send %s %s 7777", src, byName["b1"].addr())); err != nil {
			t.Fatalf("send from %s: %v\n%s", src, err, out)
		}
	}
	addAddr := func(ns, dev string, a netip.Addr) {
		nstest.Run(t, "ip", "-n", ns, "addr", "add", a.String()+"/128", "dev", dev, "nodad")
	}
	a1 := byName["a1"]
	// Same network, same host's /80, but not a1's /112: only the veth check stops it.
	forgedVeth := sixpn.MachineAddr(netX, idH1, 0x1ffff)
	addAddr(a1.ns, "6pn0", forgedVeth)
	// From host h1 itself with a source inside h2's /80: WireGuard on h2 must drop it
	// (cryptokey routing: h1 may only send from h1's /80s).
	forgedWG := sixpn.MachineAddr(netX, idH2, 0x2ffff)
	addAddr(h1, "lo", forgedWG)
	// From host h1 with a source in h1's own /80: legitimate for WireGuard, and the
	// control that this path works at all.
	genuineWG := sixpn.MachineAddr(netX, idH1, 0x2fffe)
	addAddr(h1, "lo", genuineWG)
	send(a1.ns, forgedVeth)
	send(h1, forgedWG)
	send(a1.ns, a1.addr())
	send(h1, genuineWG)
	recv.Expect(t, "GOT "+a1.addr().String(), 5*time.Second)
	recv.Expect(t, "GOT "+genuineWG.String(), 5*time.Second)
	recv.Stop(t)
	// Leave the forged addresses out of later source address selection.
	nstest.Run(t, "ip", "-n", a1.ns, "addr", "del", forgedVeth.String()+"/128", "dev", "6pn0")
	nstest.Run(t, "ip", "-n", h1, "addr", "del", forgedWG.String()+"/128", "dev", "lo")
	t.Run("spoofed sources are dropped", func(t *testing.T) {
		out := recv.Output()
		for _, bad := range []netip.Addr{forgedVeth, forgedWG} {
			if strings.Contains(out, "GOT "+bad.String()) {
				t.Errorf("b1 received a datagram from forged source %s", bad)
			}
		}
	})

	t.Run("status lists the other host with a handshake", func(t *testing.T) {
		p1.Send("status")
		var st peers.Status
		deadline := time.Now().Add(5 * time.Second)
		for st.Interface == "" && time.Now().Before(deadline) {
			for _, l := range strings.Split(p1.Output(), "\n") {
				if rest, ok := strings.CutPrefix(l, "NSTEST STATUS "); ok {
					json.Unmarshal([]byte(rest), &st)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		if st.Mode != "userspace" || len(st.Peers) != 1 {
			t.Fatalf("status %+v", st)
		}
		p := st.Peers[0]
		if p.PublicKey != keys["h2"].PublicKey().String() || p.Name != "h2" || p.Endpoint != "198.18.0.2:51820" ||
			p.LastHandshake == nil || p.RxBytes == 0 || p.TxBytes == 0 {
			t.Errorf("peer status %+v", p)
		}
	})

	t.Run("restart re-adopts machines without touching them", func(t *testing.T) {
		veth := plan.VethName(a1.field)
		before := nstest.Run(t, "ip", "-n", h1, "-o", "link", "show", veth)
		p1.Send("close")
		if err := p1.Stop(t); err != nil {
			t.Fatalf("h1 exit: %v\n%s", err, p1.Output())
		}
		// While the agent is down the machines and the filter stay.
		mustPing(t, "a1", "a3")
		if out := nstest.Run(t, "ip", "netns", "exec", h1, "nft", "list", "table", "inet", "dogwood"); !strings.Contains(out, "samenet") {
			t.Errorf("filter gone after Close:\n%s", out)
		}
		p1 = startHost("h1", h1)
		after := nstest.Run(t, "ip", "-n", h1, "-o", "link", "show", veth)
		if strings.Fields(before)[0] != strings.Fields(after)[0] {
			t.Errorf("veth was recreated:\nbefore %s\nafter  %s", before, after)
		}
		if !strings.Contains(p1.Output(), "adopted=") && strings.Contains(p1.Output(), "attached machine") {
			t.Errorf("restart attached machines anew:\n%s", p1.Output())
		}
		mustPing(t, "a1", "b1")
		mustNotPing(t, "a1", "b2")
		if t.Failed() {
			for _, ns := range []string{h1, h2} {
				o1, _ := exec.Command("ip", "netns", "exec", ns, "wg", "show", "all").CombinedOutput()
				o2, _ := exec.Command("ip", "-n", ns, "-6", "route").CombinedOutput()
				o3, _ := exec.Command("ip", "netns", "exec", ns, "nft", "list", "ruleset").CombinedOutput()
				t.Logf("%s:\n%s\n%s\n%s", ns, o1, o2, o3)
			}
			t.Logf("h1 output:\n%s", p1.Output())
		}
	})

	t.Run("teardown removes everything", func(t *testing.T) {
		if err := p2.Stop(t); err != nil {
			t.Fatalf("h2 exit: %v\n%s", err, p2.Output())
		}
		out := nstest.Run(t, "ip", "-n", h2, "-o", "link")
		if strings.Contains(out, plan.VethPrefix) || strings.Contains(out, ifaces["h2"]) {
			t.Errorf("links left on h2:\n%s", out)
		}
		if out := nstest.Run(t, "ip", "netns", "exec", h2, "nft", "list", "tables"); strings.Contains(out, "dogwood") {
			t.Errorf("nft table left on h2: %s", out)
		}
		if _, err := os.Stat(filepath.Join(etc, byName["b1"].ns)); !os.IsNotExist(err) {
			t.Errorf("resolv.conf dir left: %v", err)
		}
		if _, err := os.Stat(filepath.Join(device.SocketDir, ifaces["h2"]+".sock")); !os.IsNotExist(err) {
			t.Errorf("UAPI socket left: %v", err)
		}
		if out, _ := exec.Command("ip", "-n", h2, "-6", "addr", "show", "dev", "lo").CombinedOutput(); strings.Contains(string(out), "fdaa") {
			t.Errorf("DNS addresses left on lo:\n%s", out)
		}
	})
}
