package netns

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dogwood/dogwood/cmd/dogwood/e2e/e2eproc"
)

// peerConfigRE is SPEC §6's layout, byte for byte.
var peerConfigRE = regexp.MustCompile(`\A\[Interface\]
PrivateKey = ([A-Za-z0-9+/]{43}=)
Address = ([0-9a-f:]+)/120
DNS = ([0-9a-f:]+)

\[Peer\]
PublicKey = ([A-Za-z0-9+/]{43}=)
AllowedIPs = ([0-9a-f:]+/48)
Endpoint = ([^\s]+)
PersistentKeepalive = 15
\z`)

type peerJSON struct {
	Name          string     `json:"name"`
	Org           string     `json:"org"`
	Gateway       string     `json:"gateway"`
	Address       string     `json:"address"`
	PublicKey     string     `json:"public_key"`
	LastHandshake *time.Time `json:"last_handshake"`
}

// wgQuickUp brings cfg up with the real wg-quick (wireguard-go, since the kernel has
// no WireGuard) inside ns, as interface iface. The DNS line is stripped so wg-quick
// never touches any resolv.conf; AllowedIPs can be overridden (an attacker's edit).
func (w *world) wgQuickUp(ns, iface, cfg, allowedIPs string) string {
	t := w.t
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "DNS = ") {
			continue
		}
		if allowedIPs != "" && strings.HasPrefix(l, "AllowedIPs = ") {
			l = "AllowedIPs = " + allowedIPs
		}
		lines = append(lines, l)
	}
	dir := filepath.Join(w.dir, "wg-quick-"+iface)
	os.MkdirAll(dir, 0o700)
	path := filepath.Join(dir, iface+".conf") // wg-quick names the interface after the file
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	w.ifaces = append(w.ifaces, iface)
	w.mu.Unlock()
	env := []string{"WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go", "WG_HIDE_KEYS=always"}
	t.Cleanup(func() {
		a := e2eproc.InNS(ns, "wg-quick", "down", path)
		e2eproc.Run(10*time.Second, env, a[0], a[1:]...)
	})
	a := e2eproc.InNS(ns, "wg-quick", "up", path)
	out, err := e2eproc.Run(30*time.Second, env, a[0], a[1:]...)
	if err != nil {
		t.Fatalf("wg-quick up %s in %s: %v\n%s", path, ns, err, out)
	}
	return path
}

// TestUserPeers is issue "User peers" end to end: a gateway host whose public side is
// a LAN (198.19.0.0/24) where laptop namespaces live, two more hosts, peer configs
// made through a non-gateway agent and used with the real wg-quick and with the
// userspace `dogwood proxy` as an unprivileged user.
func TestUserPeers(t *testing.T) {
	requireEnv(t, "wg-quick", "wireguard-go", "setpriv")
	step := stepLogger(t)
	w := newWorld(t, "b")
	h1 := w.addHost(1, hostOpts{region: "ord", gateway: true, publicEndpoint: "198.19.0.1:51820"})
	h2 := w.addHost(2, hostOpts{region: "ams"})
	h3 := w.addHost(3, hostOpts{region: "fra"})
	hosts := []*host{h1, h2, h3}
	w.waitMembers(hosts, "h1", "h2", "h3")

	// The gateway's public side: a bridge in h1 with the laptops on it. The laptops
	// reach nothing but the gateway.
	lan := w.gatewayLAN(h1)
	lap := lan.laptop("lap", 1)
	lap2 := lan.laptop("lapg", 2)

	w.cli(h1, "orgs", "create", "acme")
	w.cli(h1, "orgs", "create", "globex")
	w.cli(h1, "apps", "create", "web", "--org", "acme")
	w.cli(h1, "apps", "create", "gweb", "--org", "globex")
	var web []*machine
	for i, h := range hosts {
		web = append(web, w.createMachine(h, "web", fmt.Sprintf("a%d", i+1)))
	}
	gweb := w.createMachine(h2, "gweb", "g2")
	acmeDNS := w.networkDNS(h2, "acme")
	globexDNS := w.networkDNS(h2, "globex")
	var webAddrs []string
	for _, m := range web {
		webAddrs = append(webAddrs, netip.MustParseAddr(m.addr()).String())
	}
	sortStrings(webAddrs)
	step("cluster, gateway LAN, 2 laptops, 4 machines ready")

	// --- the peer config, created through a NON-gateway agent (remote gateway path)
	lapIf := w.name("lap")
	cfgPath := filepath.Join(w.dir, lapIf+".conf")
	createStart := time.Now()
	w.cli(h2, "wireguard", "create", "acme", "ord", "laptop", cfgPath)
	t.Logf("wireguard create via h2 (gateway h1) took %v", time.Since(createStart).Round(time.Millisecond))
	// Read your writes: the agent that created the peer knows it at once.
	if out, err := w.try(h2, "wireguard", "status", "acme", "laptop"); err != nil {
		t.Errorf("wireguard status on h2 right after create through h2: %v\n%s", err, out)
	}
	var peerAddr string
	t.Run("config file is SPEC §6 byte for byte, mode 0600", func(t *testing.T) {
		st, err := os.Stat(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", st.Mode().Perm())
		}
		b, _ := os.ReadFile(cfgPath)
		m := peerConfigRE.FindStringSubmatch(string(b))
		if m == nil {
			t.Fatalf("config does not match the SPEC §6 layout:\n%s", b)
		}
		priv, addr, dns, gwPub, allowed, endpoint := m[1], m[2], m[3], m[4], m[5], m[6]
		peerAddr = addr
		a := netip.MustParseAddr(addr).As16()
		if pfx := netip.MustParsePrefix(allowed); pfx.String() != allowed ||
			pfx.Addr() != netip.PrefixFrom(acmeDNS, 48).Masked().Addr() {
			t.Errorf("AllowedIPs = %s, want acme's /48 (DNS %s)", allowed, acmeDNS)
		}
		if got := hostIDOf(netip.AddrFrom16(a)); got != h1.hostID {
			t.Errorf("Address %s: host field %08x, want the gateway's %08x", addr, got, h1.hostID)
		}
		if a[10] != 0 || a[11] != 0 || a[12] != 0 || a[13] != 0xa || a[15] != 0x02 {
			t.Errorf("Address %s is not fdaa:<net>:<gw>:0:a:<slot>02", addr)
		}
		if netip.MustParseAddr(addr).String() != addr || netip.MustParseAddr(dns).String() != dns {
			t.Errorf("addresses are not in canonical form: %s %s", addr, dns)
		}
		if dns != acmeDNS.String() {
			t.Errorf("DNS = %s, want %s", dns, acmeDNS)
		}
		if gwPub != h1.pubKey {
			t.Errorf("PublicKey = %s, want the gateway's %s", gwPub, h1.pubKey)
		}
		if endpoint != "198.19.0.1:51820" {
			t.Errorf("Endpoint = %s, want the gateway's public endpoint 198.19.0.1:51820", endpoint)
		}
		pub, err := e2eproc.Run(5*time.Second, nil, "sh", "-c", "echo "+priv+" | wg pubkey")
		if err != nil {
			t.Fatal(err)
		}
		var ps []peerJSON
		w.cliJSON(h3, &ps, "wireguard", "list", "acme")
		if len(ps) != 1 || ps[0].PublicKey != strings.TrimSpace(pub) || ps[0].Address != addr || ps[0].Gateway != "h1" {
			t.Errorf("wireguard list: %+v, want laptop with key %s at %s on h1", ps, pub, addr)
		}
		// Never overwrites an existing file.
		if out, err := w.try(h2, "wireguard", "create", "acme", "ord", "laptop2", cfgPath); err == nil {
			t.Errorf("create over an existing file succeeded: %s", out)
		}
	})
	if peerAddr == "" {
		t.FailNow()
	}
	step("config checked")

	w.wgQuickUp(lap, lapIf, cfgPath, "")
	step("wg-quick up in the laptop namespace")

	t.Run("laptop resolves and reaches machines on every host", func(t *testing.T) {
		laptopReachesWeb(t, lap, acmeDNS.String(), web, webAddrs)
		// Machine → peer, and the peer's name from a machine on a non-gateway host.
		got, _, err := digAAAA(web[2].ns, "fdaa::3", "laptop._peer.internal")
		if err != nil || len(got) != 1 || got[0] != peerAddr {
			t.Errorf("dig @fdaa::3 laptop._peer.internal from a machine on h3: %v %v, want %s", got, err, peerAddr)
		}
		if err := pingRetry(web[2].ns, peerAddr, 3); err != nil {
			t.Errorf("machine on h3 → laptop: %v", err)
		}
	})
	step("laptop DNS, HTTP and machine→peer checked")

	t.Run("a peer cannot send from an address it does not own", func(t *testing.T) {
		recv := w.helper(web[1].ns, "a2-udp", "udp-recv", "7777")
		if err := e2eproc.Eventually(5*time.Second, 50*time.Millisecond, func() error {
			if !strings.Contains(recv.output(), "LISTENING") {
				return fmt.Errorf("receiver not ready")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		// The next /120 on the same gateway, and a machine's address.
		b := netip.MustParseAddr(peerAddr).As16()
		b[14]++
		forged := []string{netip.AddrFrom16(b).String(), web[0].addr()}
		for _, f := range forged {
			nsMust(t, lap, "ip", "addr", "add", f+"/128", "dev", lapIf, "nodad")
		}
		for _, src := range append(forged, peerAddr) {
			if out, err := helperRun(5*time.Second, lap, "udp-send", src, web[1].addr(), "7777"); err != nil {
				t.Fatalf("udp-send from %s: %v %s", src, err, out)
			}
		}
		if err := e2eproc.Eventually(3*time.Second, 50*time.Millisecond, func() error {
			if !strings.Contains(recv.output(), "GOT "+peerAddr+"\n") {
				return fmt.Errorf("control datagram from the peer's own address not received: %q", recv.output())
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
		time.Sleep(300 * time.Millisecond)
		for _, f := range forged {
			if strings.Contains(recv.output(), "GOT "+f+"\n") {
				t.Errorf("machine received a datagram from the peer with forged source %s", f)
			}
			nsMust(t, lap, "ip", "addr", "del", f+"/128", "dev", lapIf)
		}
		recv.stop(time.Second)
	})

	t.Run("wireguard list shows a handshake", func(t *testing.T) {
		for _, h := range []*host{h1, h3} {
			var ps []peerJSON
			w.cliJSON(h, &ps, "wireguard", "list")
			if len(ps) != 1 || ps[0].LastHandshake == nil {
				t.Errorf("wireguard list --json on %s: %+v, want last_handshake set", h.name, ps)
			}
		}
	})

	t.Run("a globex peer cannot reach or resolve acme", func(t *testing.T) {
		gxIf := w.name("gx")
		gxCfg := filepath.Join(w.dir, gxIf+".conf")
		w.cli(h3, "wireguard", "create", "globex", "", "gx", gxCfg)
		// The attacker widens AllowedIPs to all of 6PN: only the gateway stops it.
		w.wgQuickUp(lap2, gxIf, gxCfg, "fdaa::/16")
		// Control: its own network works.
		if err := e2eproc.Eventually(15*time.Second, 200*time.Millisecond, func() error {
			body, err := httpGet(lap2, gweb.addr(), 2*time.Second)
			if err == nil && strings.TrimSpace(body) != gweb.tag {
				err = fmt.Errorf("body %q", body)
			}
			return err
		}); err != nil {
			t.Fatalf("globex peer → globex machine (control): %v", err)
		}
		if got, status, err := digAAAA(lap2, globexDNS.String(), "web.internal"); err != nil || status != "NXDOMAIN" || len(got) != 0 {
			t.Errorf("globex peer: web.internal via its own DNS: %s %v %v, want NXDOMAIN", status, got, err)
		}
		errs := parallel(len(web)+2, func(i int) error {
			switch {
			case i < len(web):
				if pingOK(lap2, "", web[i].addr()) == nil {
					return fmt.Errorf("ping %s (%s) got a reply", web[i].tag, web[i].addr())
				}
				if body, err := httpGet(lap2, web[i].addr(), time.Second); err == nil {
					return fmt.Errorf("HTTP %s answered %q", web[i].tag, body)
				}
			case i == len(web):
				if out, err := e2eproc.NSRun(10*time.Second, lap2, "dig", "@"+acmeDNS.String(), "+time=1", "+tries=1", "web.internal", "AAAA"); err == nil && strings.Contains(out, "status:") {
					return fmt.Errorf("acme's DNS %s answered the globex peer:\n%s", acmeDNS, out)
				}
			default:
				if pingOK(lap2, "", peerAddr) == nil {
					return fmt.Errorf("ping of the acme laptop %s got a reply", peerAddr)
				}
			}
			return nil
		})
		for _, err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	})
	step("globex peer isolated")

	t.Run("proxy as an unprivileged user", func(t *testing.T) {
		pxCfg := filepath.Join(w.dir, "px.conf")
		w.cli(h3, "wireguard", "create", "acme", "", "px", pxCfg) // nearest gateway
		userCfg := filepath.Join(w.dir, "px-nobody.conf")
		b, _ := os.ReadFile(pxCfg)
		if err := os.WriteFile(userCfg, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(userCfg, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		// TMPDIR: a directory nobody cannot write, so the proxy shares its
		// session nowhere and leaves nothing in /tmp.
		px := w.track(startProc(t, filepath.Join(w.dir, "proxy.log"), "proxy", []string{"HOME=/", "TMPDIR=" + w.dir},
			e2eproc.InNS(lap, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", w.bin, "proxy", "--config", userCfg, "18080:web.internal:8080")...))
		if err := e2eproc.Eventually(15*time.Second, 200*time.Millisecond, func() error {
			if px.exited() {
				return fmt.Errorf("proxy exited: %v\n%s", px.err, px.output())
			}
			out, err := e2eproc.NSRun(5*time.Second, lap, "curl", "-sS", "--max-time", "2", "http://127.0.0.1:18080/")
			if err != nil {
				return fmt.Errorf("curl 127.0.0.1:18080: %v %s", err, out)
			}
			if !strings.HasPrefix(out, "web@h") {
				return fmt.Errorf("proxy answered %q", out)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", px.cmd.Process.Pid))
		if !regexp.MustCompile(`(?m)^Uid:\s+65534\s+65534\s+65534\s+65534`).Match(st) {
			t.Errorf("proxy does not run as nobody:\n%s", st)
		}
		px.stop(2 * time.Second)
		// dig and ping --config, unprivileged too.
		asNobody := func(args ...string) (string, error) {
			a := e2eproc.InNS(lap, append([]string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", w.bin}, args...)...)
			return e2eproc.Run(20*time.Second, []string{"HOME=/"}, a[0], a[1:]...)
		}
		out, err := asNobody("dig", "--config", userCfg, "--short", "web.internal", "AAAA")
		if got := strings.Fields(out); err != nil || len(got) != 3 {
			t.Errorf("dogwood dig --config as nobody: %v\n%s", err, out)
		} else {
			sortStrings(got)
			if strings.Join(got, ",") != strings.Join(webAddrs, ",") {
				t.Errorf("dogwood dig --config: %v, want %v", got, webAddrs)
			}
		}
		if out, err := asNobody("ping", "--config", userCfg, "-c", "1", web[2].addr()); err != nil {
			t.Errorf("dogwood ping --config as nobody: %v\n%s", err, out)
		}
	})
	step("proxy as nobody checked")

	t.Run("removing the peer cuts the tunnel within a second", func(t *testing.T) {
		target := web[1] // a machine on h2, behind the gateway
		if err := pingRetry(lap, target.addr(), 3); err != nil {
			t.Fatalf("before removal: %v", err)
		}
		start := time.Now()
		w.cli(h2, "wireguard", "remove", "acme", "laptop") // through a non-gateway agent
		returned := time.Now()
		// Right away (well within a second) nothing passes any more.
		if err := pingOK(lap, "", target.addr()); err == nil {
			t.Errorf("ping still answered right after removal")
		}
		if body, err := httpGet(lap, web[0].addr(), 500*time.Millisecond); err == nil {
			t.Errorf("HTTP still answered right after removal: %q", body)
		}
		if time.Since(returned) > 1800*time.Millisecond {
			t.Logf("note: the probes themselves took %v", time.Since(returned))
		}
		t.Logf("wireguard remove returned in %v; tunnel dead on the first probe after it", returned.Sub(start).Round(time.Millisecond))
		out := nsMust(t, h1.ns, "wg", "show", h1.iface, "allowed-ips")
		if strings.Contains(out, peerAddr) {
			t.Errorf("gateway still has the peer:\n%s", out)
		}
		if got, status, _ := digAAAA(web[0].ns, "fdaa::3", "laptop._peer.internal"); status != "NXDOMAIN" {
			t.Errorf("laptop._peer.internal after removal: %s %v, want NXDOMAIN", status, got)
		}
	})
	step("peer removed")
}
