package netns

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dogwood/dogwood/cmd/dogwood/e2e/e2eproc"
	"github.com/vishvananda/netns"
)

// TestHostileTenant is issue "The tenant boundary holds against a hostile tenant
// and a hostile network", end to end with real agents that open every listener an
// operator can ask for (wildcard metrics, TLS API, extra DNS, invitations on the
// gateway, gossip):
//
//   - from two machines (on the gateway and on another host) and from a developer
//     peer whose attacker widened AllowedIPs to all of 6PN and the underlay, every
//     host port on every host address is tried: only DNS answers;
//   - the underlay is tapped while h1 forwards `machines stop` to h2, the machine is
//     started again, and everything captured is sent to h2 again from a hostile
//     neighbour's address: nothing happens (the replay is refused and counted);
//   - a remote CLI reaches the TLS API only with the pinned fingerprint;
//   - a peer with a host's key and reserved app names are refused;
//   - a connection flood from a hostile underlay neighbour against every TCP
//     listener, plus a DNS-over-TCP flood from a machine, while the unix-socket API
//     and DNS (UDP and TCP, from other sources) must answer within 1 s.
//
// Damaged data files have their own tests (README "Security").
func TestHostileTenant(t *testing.T) {
	requireEnv(t, "wg-quick", "wireguard-go", "bash", "timeout")
	step := stepLogger(t)
	w := newWorld(t, "x")
	tokFile := filepath.Join(w.dir, "api.token")
	if err := os.WriteFile(tokFile, []byte("hostile-test-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	extra := []string{"--metrics-addr", "[::]:9946", "--api-listen", "[::]:7000", "--api-token-file", tokFile,
		"--dns-listen", "[::]:5353"}
	h1 := w.addHost(1, hostOpts{region: "ord", gateway: true, publicEndpoint: "198.19.0.1:51820", extra: extra})
	h2 := w.addHost(2, hostOpts{region: "ams", extra: extra})
	w.waitMembers([]*host{h1, h2}, "h1", "h2")

	// The gateway's public LAN with the laptop on it.
	lap := w.gatewayLAN(h1).laptop("lap", 1)

	w.cli(h1, "orgs", "create", "acme")
	w.cli(h1, "apps", "create", "web", "--org", "acme")
	m1 := w.createMachine(h1, "web", "m1")
	m2 := w.createMachine(h2, "web", "m2")
	m3 := w.createMachine(h1, "web", "m3")
	netDNS := w.networkDNS(h1, "acme")
	cfg := filepath.Join(w.dir, "laptop.conf")
	w.cli(h1, "wireguard", "create", "acme", "ord", "laptop", cfg)
	// The attacker's edit: route all of 6PN and the underlay into the tunnel.
	w.wgQuickUp(lap, w.name("lw"), cfg, "fdaa::/16, 198.18.0.0/24")
	step("2 hosts, 3 machines, a peer with widened AllowedIPs")

	// DNS works for every tenant (the one thing that must).
	if err := e2eproc.Eventually(15*time.Second, 200*time.Millisecond, func() error {
		for _, c := range []struct{ ns, server string }{{m1.ns, "fdaa::3"}, {m2.ns, "fdaa::3"}, {lap, netDNS.String()}} {
			for _, tcp := range []bool{false, true} {
				if got, _, err := dig(c.ns, c.server, "web.internal", tcp); err != nil || len(got) != 3 {
					return fmt.Errorf("dig @%s from %s (tcp %v): %v %v", c.server, c.ns, tcp, got, err)
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	gw := func(m *machine) string { // the host side of a machine's veth (::1 of its /112)
		a := netip.MustParseAddr(m.addr()).As16()
		a[15] = 1
		return netip.AddrFrom16(a).String()
	}
	addrs := []string{"198.18.0.1", "198.18.0.2", "198.19.0.1", "fdaa::3", netDNS.String(), gw(m1), gw(m2)}
	ports := []int{9946, 7000, 7946, 51821, 5353, 53, 51820}

	// Controls: from the underlay (not a tenant) the listeners answer, so a refused
	// tenant probe means the boundary, not a dead listener.
	for _, p := range []int{9946, 7000, 7946, 51821, 5353} {
		if err := e2eproc.Eventually(10*time.Second, 100*time.Millisecond, func() error {
			if !tcpOpen(h2.ns, "198.18.0.1", p) {
				return fmt.Errorf("control: h2 cannot reach h1's port %d over the underlay", p)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("every host port from a machine and a peer", func(t *testing.T) {
		type probe struct {
			who, ns, addr string
			port          int
		}
		var probes []probe
		for _, tn := range []struct{ who, ns string }{{"machine on h1", m1.ns}, {"machine on h2", m2.ns}, {"peer", lap}} {
			for _, a := range addrs {
				if tn.ns == lap && a == "198.19.0.1" {
					continue // the gateway's public side, where the laptop lives: not a tenant path
				}
				for _, p := range ports {
					probes = append(probes, probe{tn.who, tn.ns, a, p})
				}
			}
		}
		open := make([]bool, len(probes))
		sem := make(chan struct{}, 24)
		var wg sync.WaitGroup
		for i, pr := range probes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				open[i] = tcpOpen(pr.ns, pr.addr, pr.port)
				<-sem
			}()
		}
		wg.Wait()
		dnsOnly := 0
		for i, pr := range probes {
			isDNS := pr.port == 53 && (pr.addr == "fdaa::3" || pr.addr == netDNS.String())
			if open[i] && !isDNS {
				t.Errorf("%s reached [%s]:%d", pr.who, pr.addr, pr.port)
			}
			if open[i] && isDNS {
				dnsOnly++
			}
		}
		t.Logf("%d TCP probes from 3 tenants to up to %d host addresses × %d ports: DNS answered %d times, nothing else",
			len(probes), len(addrs), len(ports), dnsOnly)
		// UDP: DNS on the tenant's own addresses answers; the extra DNS listener on
		// 5353 (wildcard) does not, from any host address.
		for _, c := range []struct{ ns, server string }{{m1.ns, "fdaa::3"}, {m2.ns, gw(m2)}, {lap, "198.18.0.1"}, {lap, netDNS.String()}} {
			if _, _, err := digPort(c.ns, c.server, 5353, "web.internal", false); err == nil {
				t.Errorf("a tenant in %s got an answer from DNS on %s:5353", c.ns, c.server)
			}
		}
	})
	step("boundary probed")

	// A hostile underlay neighbour on the hosts' bridge.
	atk := w.netns("atk")
	ka, kb := w.name("ka"), w.name("kb")
	must(t, "ip", "link", "add", ka, "netns", atk, "type", "veth", "peer", "name", kb, "netns", w.br)
	must(t, "ip", "-n", w.br, "link", "set", kb, "master", "br0", "up")
	nsMust(t, atk, "ip", "addr", "add", "198.18.0.250/24", "dev", ka)
	nsMust(t, atk, "ip", "link", "set", ka, "up")

	t.Run("6PN spoofed from the underlay", func(t *testing.T) {
		// Issue 21 item 1: a frame to h1's underlay MAC "from" m2 (a machine of the
		// same org on h2) to m1, and a DNS query "from" m2 to h1's fdaa::3. Before the
		// fix h1 forwarded the first to m1 and answered the second into WireGuard.
		recv := w.helper(m1.ns, "m1-udp", "udp-recv", "7777")
		defer recv.stop(time.Second)
		if err := e2eproc.Eventually(5*time.Second, 50*time.Millisecond, func() error {
			if !strings.Contains(recv.output(), "LISTENING") {
				return errors.New("receiver not ready")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		got := func() int { return strings.Count(recv.output(), "GOT "+m2.addr()+"\n") }
		// Control: m2's genuine datagrams (over WireGuard) reach m1.
		if err := e2eproc.Eventually(10*time.Second, 200*time.Millisecond, func() error {
			if out, err := helperRun(5*time.Second, m2.ns, "udp-send", m2.addr(), m1.addr(), "7777"); err != nil {
				return fmt.Errorf("udp-send: %v %s", err, out)
			}
			if got() == 0 {
				return errors.New("control: m2's genuine datagrams did not reach m1")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		genuine := got()

		var link []struct {
			Address string `json:"address"`
		}
		out, err := e2eproc.NSRun(5*time.Second, h1.ns, "ip", "-j", "link", "show", w.name("u1"))
		if err != nil || json.Unmarshal([]byte(out), &link) != nil || len(link) != 1 {
			t.Fatalf("h1's underlay MAC: %v %s", err, out)
		}
		h1MAC, err := net.ParseMAC(link[0].Address)
		if err != nil {
			t.Fatal(err)
		}
		atkMAC := net.HardwareAddr{0x02, 0, 0, 0, 0x0a, 0x7c}
		src, dst := netip.MustParseAddr(m2.addr()), netip.MustParseAddr(m1.addr())
		query := []byte{0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'w', 'e', 'b', 8, 'i', 'n', 't', 'e', 'r', 'n', 'a', 'l', 0, 0, 28, 0, 1}
		frames := [][]byte{
			udp6Frame(h1MAC, atkMAC, src, dst, 40000, 7777, []byte("spoofed from the underlay")),
			udp6Frame(h1MAC, atkMAC, src, netip.MustParseAddr("fdaa::3"), 40001, 53, query),
			udp6Frame(h1MAC, atkMAC, src, netDNS, 40002, 53, query),
		}
		dropped := func() int {
			out, _ := e2eproc.NSRun(5*time.Second, h1.ns, "nft", "list", "chain", "inet", "dogwood", "prerouting")
			n := 0
			for _, l := range strings.Split(out, "\n") {
				if f := strings.Fields(l); strings.Contains(l, `"6pn-off-underlay"`) {
					for i := range f[:len(f)-1] {
						if f[i] == "packets" {
							v, _ := strconv.Atoi(f[i+1])
							n += v
						}
					}
				}
			}
			return n
		}
		before := dropped()
		for i := 0; i < 2; i++ {
			if err := sendRaw(atk, ka, frames...); err != nil {
				t.Fatal(err)
			}
		}
		if err := e2eproc.Eventually(5*time.Second, 100*time.Millisecond, func() error {
			if d := dropped() - before; d < 2*len(frames) {
				return fmt.Errorf("h1's underlay 6PN drop rules counted %d of the %d spoofed frames", d, 2*len(frames))
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
		time.Sleep(500 * time.Millisecond) // what the forward path would have delivered
		if n := got() - genuine; n > 0 {
			t.Errorf("m1 received %d datagrams spoofed from the underlay as m2", n)
		}
		t.Logf("sent %d spoofed frames from the underlay; %d genuine datagrams m2→m1 for control", 2*len(frames), genuine)
	})

	t.Run("replayed gossip after the state moved on", func(t *testing.T) {
		state := func() string {
			var m struct{ State string }
			out, err := w.try(h2, "machines", "show", m2.ID, "--json")
			if err != nil || json.Unmarshal([]byte(out), &m) != nil {
				return "unknown: " + out
			}
			return m.State
		}
		replays := func() float64 {
			out, _ := e2eproc.NSRun(10*time.Second, h2.ns, "curl", "-sS", "--max-time", "3", "http://127.0.0.1:9946/metrics")
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(l, `dogwood_gossip_messages_dropped_total{reason="replay"}`) {
					var v float64
					fmt.Sscan(strings.Fields(l)[1], &v)
					return v
				}
			}
			return 0
		}
		// Tap h1's port on the underlay bridge while h1 forwards the stop to h2.
		sn, err := sniff(w.br, w.name("p1"))
		if err != nil {
			t.Fatalf("capture: %v", err)
		}
		w.cli(h1, "machines", "stop", m2.ID)
		frames := sn.stop()
		w.cli(h1, "machines", "start", m2.ID)
		if err := e2eproc.Eventually(10*time.Second, 100*time.Millisecond, func() error {
			if s := state(); s != "started" {
				return fmt.Errorf("machine is %s", s)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		dst := netip.MustParseAddrPort("198.18.0.2:7946")
		rec := extract(frames, dst)
		if len(rec.streams) == 0 {
			t.Fatalf("captured %d frames but no TCP stream to %s: the forwarded stop was not recorded", len(frames), dst)
		}
		before := replays()
		sent, err := rec.replay(atk, dst)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("captured %d frames; replayed %d UDP packets and %d TCP streams to h2 from 198.18.0.250", len(frames), len(rec.udp), len(rec.streams))
		_ = sent
		if err := e2eproc.Eventually(10*time.Second, 200*time.Millisecond, func() error {
			if s := state(); s != "started" {
				return nil // acted on: checked below
			}
			if replays() > before {
				return nil
			}
			return errors.New("h2 neither refused nor acted on the replay")
		}); err != nil {
			t.Fatal(err)
		}
		for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			if s := state(); s != "started" {
				t.Fatalf("the replayed stop took effect: machine %s is %s", m2.ID, s)
			}
		}
		t.Logf("h2 refused %v replayed messages", replays()-before)
	})

	t.Run("remote CLI over the TLS API", func(t *testing.T) {
		var st struct {
			APIFingerprint string `json:"api_fingerprint"`
		}
		w.cliJSON(h1, &st, "status")
		if !strings.HasPrefix(st.APIFingerprint, "sha256:") || !strings.Contains(h1.agent.output(), st.APIFingerprint) {
			t.Fatalf("fingerprint %q not in status and the agent's log", st.APIFingerprint)
		}
		remote := func(args ...string) (string, error) {
			return e2eproc.NSRun(20*time.Second, h2.ns, append([]string{w.bin, "--agent", "https://198.18.0.1:7000", "--token-file", tokFile}, args...)...)
		}
		if out, err := remote("--agent-fingerprint", st.APIFingerprint, "members", "--json"); err != nil || !strings.Contains(out, `"h2"`) {
			t.Errorf("pinned remote CLI: %v %s", err, out)
		}
		if out, err := remote("members"); err == nil || !strings.Contains(out, "certificate") {
			t.Errorf("unpinned remote CLI against a self-signed agent: %v %s", err, out)
		}
		if out, err := remote("--agent-fingerprint", "sha256:"+strings.Repeat("0", 64), "members"); err == nil || !strings.Contains(out, "does not match") {
			t.Errorf("wrong pin: %v %s", err, out)
		}
		// The token never travels in clear: plain HTTP to the port gets no answer.
		if out, err := e2eproc.NSRun(10*time.Second, h2.ns, "curl", "-sS", "--max-time", "3", "-H", "Authorization: Bearer hostile-test-token",
			"http://198.18.0.1:7000/v1/health"); err == nil && strings.Contains(out, `"ok"`) {
			t.Errorf("plain HTTP answered: %s", out)
		}
	})

	t.Run("validation at the door", func(t *testing.T) {
		// A greedy tenant's machine: 65 services (the default limit is 64).
		greedy := []string{"machines", "create", "--app", "web"}
		for i := 0; i < 65; i++ {
			greedy = append(greedy, "--service", fmt.Sprintf("s%d:tcp:%d", i, 1000+i))
		}
		before := len(strings.Split(strings.TrimSpace(w.cli(h2, "machines", "list", "--json")), "},"))
		for _, tc := range []struct {
			args []string
			msg  string
		}{
			{greedy, "the machine has 65 services, the limit is 64"},
			{[]string{"wireguard", "create", "acme", "ord", "evil", filepath.Join(w.dir, "evil.conf"), "--public-key", h2.pubKey}, "WireGuard key of host h2"},
			{[]string{"wireguard", "create", "acme", "ord", "evil", filepath.Join(w.dir, "evil2.conf"), "--public-key", h1.pubKey}, "WireGuard key of host h1"},
			{[]string{"apps", "create", "vms", "--org", "acme"}, "reserved"},
			{[]string{"apps", "create", "all", "--org", "acme"}, "reserved"},
		} {
			out, err := w.try(h2, tc.args...)
			if err == nil || !strings.Contains(out, tc.msg) {
				t.Errorf("dogwood %s: %v %q, want a refusal saying %q", strings.Join(tc.args, " "), err, out, tc.msg)
			}
		}
		var peers []struct{ Name string }
		w.cliJSON(h1, &peers, "wireguard", "list", "acme")
		if len(peers) != 1 {
			t.Errorf("refused peers were allocated: %+v", peers)
		}
		if after := len(strings.Split(strings.TrimSpace(w.cli(h2, "machines", "list", "--json")), "},")); after != before {
			t.Errorf("the refused machine was allocated: %d machines listed, %d before", after, before)
		}
	})

	t.Run("connection flood", func(t *testing.T) {
		// DWE2E_FLOOD raises the connections tried per listener (the test process
		// needs that many descriptors times six).
		perTarget := 2000
		if v, err := strconv.Atoi(os.Getenv("DWE2E_FLOOD")); err == nil && v > 0 {
			perTarget = v
		}
		targets := []floodTarget{
			{name: "metrics", ns: atk, addr: "198.18.0.1:9946"},
			{name: "tls-api", ns: atk, addr: "198.18.0.1:7000"},
			{name: "gossip", ns: atk, addr: "198.18.0.1:7946"},
			{name: "invites", ns: atk, addr: "198.18.0.1:51821"},
			{name: "dns-tcp-extra", ns: atk, addr: "198.18.0.1:5353"},
			{name: "dns-tcp-tenant", ns: m1.ns, addr: "[fdaa::3]:53"},
		}
		var fwg sync.WaitGroup
		for i := range targets {
			fwg.Add(1)
			go func() { defer fwg.Done(); targets[i].open(perTarget) }()
		}
		fwg.Wait()
		defer func() {
			for i := range targets {
				targets[i].closeAll()
			}
		}()
		step("flood connections opened")

		// While the flood holds what it could: the unix API and DNS from other
		// sources, several times each.
		var apiLat, udpLat, tcpLat, extraLat []time.Duration
		for i := 0; i < 5; i++ {
			st := time.Now()
			if _, err := w.try(h1, "status"); err != nil {
				t.Errorf("unix API during the flood: %v", err)
			}
			apiLat = append(apiLat, time.Since(st))
			st = time.Now()
			if got, _, err := dig(m3.ns, "fdaa::3", "web.internal", false); err != nil || len(got) != 3 {
				t.Errorf("DNS/UDP from another machine during the flood: %v %v", got, err)
			}
			udpLat = append(udpLat, time.Since(st))
			st = time.Now()
			if got, _, err := dig(m3.ns, "fdaa::3", "web.internal", true); err != nil || len(got) != 3 {
				t.Errorf("DNS/TCP from another machine during the flood: %v %v", got, err)
			}
			tcpLat = append(tcpLat, time.Since(st))
			st = time.Now()
			if _, status, err := digPort(h2.ns, "198.18.0.1", 5353, "web.internal", true); err != nil || status == "" {
				t.Errorf("DNS/TCP on the flooded extra listener from another host: %q %v", status, err)
			}
			extraLat = append(extraLat, time.Since(st))
		}
		// What the flood costs the agent: its open file descriptors (connections
		// parked in the kernel's accept queue cost it nothing).
		fds := -1
		if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", h1.agent.cmd.Process.Pid)); err == nil {
			fds = len(ents)
		}
		for i := range targets {
			targets[i].countHeld()
		}
		var rep strings.Builder
		for _, tg := range targets {
			fmt.Fprintf(&rep, "\n  %-15s %-22s attempted %d, connected %d, still open after the checks %d", tg.name, tg.addr, perTarget, tg.connected, tg.held)
		}
		fmt.Fprintf(&rep, "\n  agent h1 open file descriptors during the flood: %d", fds)
		fmt.Fprintf(&rep, "\n  unix API (dogwood status) %s\n  DNS/UDP from another machine %s\n  DNS/TCP from another machine %s\n  DNS/TCP on the flooded :5353 from another host %s",
			lat(apiLat), lat(udpLat), lat(tcpLat), lat(extraLat))
		t.Logf("flood figures:%s", rep.String())
		for _, l := range [][]time.Duration{apiLat, udpLat, tcpLat, extraLat} {
			if max := l[len(l)-1]; max > time.Second {
				t.Errorf("an answer took %v during the flood (want ≤ 1 s):%s", max, rep.String())
			}
		}
		if fds > 1000 {
			t.Errorf("the agent holds %d file descriptors under the flood: a listener is not capped", fds)
		}
		caps := map[string]int{"metrics": 8, "tls-api": 16, "gossip": 64, "invites": 16, "dns-tcp-extra": 32, "dns-tcp-tenant": 32}
		for _, tg := range targets {
			if c, ok := caps[tg.name]; ok && tg.held > c {
				t.Errorf("%s: one source holds %d connections, cap %d", tg.name, tg.held, c)
			}
		}
		if h1.agent.exited() {
			t.Fatalf("the agent died under the flood:\n%s", h1.agent.output())
		}
	})
	step("flood done")
}

// tcpOpen reports whether a TCP connection from ns to addr:port is established
// within 2 s (bash's /dev/tcp: no extra tool in the namespace).
func tcpOpen(ns, addr string, port int) bool {
	_, err := e2eproc.NSRun(5*time.Second, ns, "timeout", "2", "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%d", addr, port))
	return err == nil
}

func dig(ns, server, name string, tcp bool) ([]string, string, error) {
	return digPort(ns, server, 53, name, tcp)
}

// digPort asks server:port and returns the AAAA answers and the status.
func digPort(ns, server string, port int, name string, tcp bool) ([]string, string, error) {
	args := []string{"dig", "@" + server, "-p", fmt.Sprint(port), "+time=1", "+tries=1", "+noall", "+answer", "+comments", name, "AAAA"}
	if tcp {
		args = append(args, "+tcp")
	}
	out, err := e2eproc.NSRun(5*time.Second, ns, args...)
	if err != nil {
		return nil, "", fmt.Errorf("%v: %s", err, out)
	}
	status := ""
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if i := strings.Index(l, "status: "); i >= 0 {
			status = strings.TrimSuffix(strings.Fields(l[i+8:])[0], ",")
		}
		if f := strings.Fields(l); len(f) == 5 && f[3] == "AAAA" && !strings.HasPrefix(l, ";") {
			got = append(got, f[4])
		}
	}
	if status == "" {
		return nil, "", errors.New("no answer: " + strings.TrimSpace(out))
	}
	return got, status, nil
}

func lat(l []time.Duration) string {
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	return fmt.Sprintf("median %v, max %v (%d samples)", l[len(l)/2].Round(time.Millisecond), l[len(l)-1].Round(time.Millisecond), len(l))
}

// floodTarget opens many idle connections to one listener from inside a namespace.
type floodTarget struct {
	name, ns, addr string
	conns          []net.Conn
	connected      int
	held           int
}

func (f *floodTarget) open(n int) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return
	}
	defer orig.Close()
	target, err := netns.GetFromName(f.ns)
	if err != nil {
		return
	}
	defer target.Close()
	if netns.Set(target) != nil {
		return
	}
	defer netns.Set(orig)
	// Dials run on this thread's namespace only if the socket is made here: no
	// goroutines. Non-blocking connects keep it quick anyway.
	d := net.Dialer{Timeout: 300 * time.Millisecond}
	for i := 0; i < n; i++ {
		c, err := d.Dial("tcp", f.addr)
		if err != nil {
			continue
		}
		f.conns = append(f.conns, c)
		f.connected++
	}
}

// countHeld counts the connections the server still keeps open: a read that
// times out means open; EOF or a reset means the server closed it.
func (f *floodTarget) countHeld() {
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, c := range f.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			_, err := c.Read(make([]byte, 1))
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				mu.Lock()
				f.held++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func (f *floodTarget) closeAll() {
	for _, c := range f.conns {
		c.Close()
	}
}
