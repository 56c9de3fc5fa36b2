package netns

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dogwood/dogwood/cmd/dogwood/e2e/e2eproc"
)

type wgStatus struct {
	Name      string `json:"name"`
	WireGuard *struct {
		Interface string `json:"interface"`
		Mode      string `json:"mode"`
		Peers     []struct {
			PublicKey     string     `json:"public_key"`
			Endpoint      string     `json:"endpoint"`
			LastHandshake *time.Time `json:"last_handshake"`
			RxBytes       int64      `json:"rx_bytes"`
			TxBytes       int64      `json:"tx_bytes"`
		} `json:"peers"`
	} `json:"wireguard"`
}

func (w *world) status(h *host) wgStatus {
	w.t.Helper()
	var st wgStatus
	w.cliJSON(h, &st, "status")
	return st
}

// hostIDOf returns the host field of a 6PN prefix or address.
func hostIDOf(a netip.Addr) uint32 {
	b := a.As16()
	return uint32(b[6])<<24 | uint32(b[7])<<16 | uint32(b[8])<<8 | uint32(b[9])
}

// sixpnRoutesVia lists the 6PN prefixes routed in ns (`ip -6 route`), whatever the device.
func sixpnRoutes(ns string) ([]netip.Prefix, string, error) {
	out, err := e2eproc.NSRun(5*time.Second, ns, "ip", "-6", "route")
	if err != nil {
		return nil, out, err
	}
	var ps []netip.Prefix
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		p, err := netip.ParsePrefix(f[0])
		if err != nil {
			if a, err2 := netip.ParseAddr(f[0]); err2 == nil {
				p = netip.PrefixFrom(a, 128)
			} else {
				continue
			}
		}
		if netip.MustParsePrefix("fdaa::/16").Contains(p.Addr()) {
			ps = append(ps, p)
		}
	}
	return ps, out, nil
}

// TestDataPlane is issue "WireGuard data plane" end to end with real agents: three
// hosts in namespaces on one underlay bridge, orgs acme and globex with a machine of
// each on every host, each machine serving HTTP in its own namespace.
func TestDataPlane(t *testing.T) {
	requireEnv(t)
	t0 := time.Now()
	step := func(what string) { t.Logf("[%5.1fs] %s", time.Since(t0).Seconds(), what) }
	w := newWorld(t, "a")
	h1 := w.addHost(1, hostOpts{region: "ord"})
	h2 := w.addHost(2, hostOpts{region: "ams"})
	h3 := w.addHost(3, hostOpts{region: "fra"})
	hosts := []*host{h1, h2, h3}
	w.waitMembers(hosts, "h1", "h2", "h3")
	step("three agents up and gossiping")

	w.cli(h1, "orgs", "create", "acme")
	w.cli(h2, "orgs", "create", "globex")
	w.cli(h1, "apps", "create", "web", "--org", "acme")
	w.cli(h2, "apps", "create", "gweb", "--org", "globex")
	var acme, globex []*machine
	for i, h := range hosts {
		acme = append(acme, w.createMachine(h, "web", fmt.Sprintf("a%d", i+1)))
		globex = append(globex, w.createMachine(h, "gweb", fmt.Sprintf("g%d", i+1)))
	}
	all := append(append([]*machine{}, acme...), globex...)
	step("orgs, apps and 6 machines created")

	t.Run("same org reaches across hosts (ping and HTTP)", func(t *testing.T) {
		type pair struct{ from, to *machine }
		var pairs []pair
		for _, group := range [][]*machine{acme, globex} {
			for _, a := range group {
				for _, b := range group {
					if a != b {
						pairs = append(pairs, pair{a, b})
					}
				}
			}
		}
		errs := parallel(len(pairs), func(i int) error {
			p := pairs[i]
			return e2eproc.Eventually(30*time.Second, 200*time.Millisecond, func() error {
				if err := pingOK(p.from.ns, "", p.to.addr()); err != nil {
					return err
				}
				body, err := httpGet(p.from.ns, p.to.addr(), 2*time.Second)
				if err != nil {
					return err
				}
				if strings.TrimSpace(body) != p.to.tag {
					return fmt.Errorf("%s → %s: body %q, want %q", p.from.tag, p.to.tag, body, p.to.tag)
				}
				return nil
			})
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("%s → %s: %v", pairs[i].from.tag, pairs[i].to.tag, err)
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	step("all 12 same-org paths work")

	t.Run("cross org fails both ways on every path", func(t *testing.T) {
		type pair struct{ from, to *machine }
		var pairs []pair
		for _, a := range all {
			for _, b := range all {
				if a.Org != b.Org {
					pairs = append(pairs, pair{a, b})
				}
			}
		}
		errs := parallel(len(pairs), func(i int) error {
			p := pairs[i]
			if pingOK(p.from.ns, "", p.to.addr()) == nil {
				return fmt.Errorf("ping got a reply")
			}
			if body, err := httpGet(p.from.ns, p.to.addr(), time.Second); err == nil {
				return fmt.Errorf("HTTP answered %q", body)
			}
			return nil
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("%s → %s (%s): %v, want isolated", pairs[i].from.tag, pairs[i].to.tag, pairs[i].to.addr(), err)
			}
		}
		if len(pairs) != 18 {
			t.Errorf("checked %d cross-org paths, want 18", len(pairs))
		}
	})
	step("all 18 cross-org paths blocked")

	t.Run("spoofed sources are dropped", func(t *testing.T) {
		a1, a2, a3 := acme[0], acme[1], acme[2]
		// Unowned address in a1's own host /80 (only the veth source check can stop
		// it) and the address of another machine of the same org (a2's).
		b := netip.MustParseAddr(a1.addr()).As16()
		b[10], b[11], b[12], b[13] = 0, 1, 0xff, 0xfe // machine field 0x1fffe
		forgedLocal := netip.AddrFrom16(b).String()
		forgedOther := a2.addr()
		for _, f := range []string{forgedLocal, forgedOther} {
			must(t, "ip", "-n", a1.ns, "addr", "add", f+"/128", "dev", "6pn0", "nodad")
		}
		recv := w.helper(a3.ns, "a3-udp", "udp-recv", "7777")
		if err := e2eproc.Eventually(5*time.Second, 50*time.Millisecond, func() error {
			if !strings.Contains(recv.output(), "LISTENING") {
				return fmt.Errorf("receiver not ready")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		// ::1 of a1's own /112: the host's side of a1's link, never a1's to use. Sent
		// with IPV6_FREEBIND, since holding it in the namespace would shadow the route.
		g := netip.MustParseAddr(a1.addr()).As16()
		g[15] = 1
		forgedGW := netip.AddrFrom16(g).String()
		for _, src := range []string{forgedLocal, forgedOther, forgedGW, a1.addr()} {
			if out, err := helperRun(5*time.Second, a1.ns, "udp-send", src, a3.addr(), "7777"); err != nil {
				t.Fatalf("udp-send from %s: %v %s", src, err, out)
			}
		}
		// ICMP too, the way an operator would try it.
		for _, src := range []string{forgedLocal, forgedOther} {
			if pingOK(a1.ns, src, a3.addr()) == nil {
				t.Errorf("ping -I %s → %s got a reply", src, a3.addr())
			}
		}
		if err := pingOK(a1.ns, a1.addr(), a3.addr()); err != nil {
			t.Errorf("control: ping from the genuine address failed: %v", err)
		}
		if err := e2eproc.Eventually(3*time.Second, 50*time.Millisecond, func() error {
			if !strings.Contains(recv.output(), "GOT "+a1.addr()+"\n") {
				return fmt.Errorf("genuine datagram from %s not received (control): %q", a1.addr(), recv.output())
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
		time.Sleep(300 * time.Millisecond) // stragglers of the forged sends
		for _, f := range []string{forgedLocal, forgedOther, forgedGW} {
			if strings.Contains(recv.output(), "GOT "+f+"\n") {
				t.Errorf("a3 received a datagram from forged source %s", f)
			}
		}
		recv.stop(time.Second)
		for _, f := range []string{forgedLocal, forgedOther} {
			must(t, "ip", "-n", a1.ns, "addr", "del", f+"/128", "dev", "6pn0")
		}
	})
	step("spoofing checked")

	acmeDNS := w.networkDNS(h1, "acme")
	globexDNS := w.networkDNS(h1, "globex")
	t.Run("dns from machine namespaces", func(t *testing.T) {
		want := func(ms []*machine) []string {
			var s []string
			for _, m := range ms {
				s = append(s, netip.MustParseAddr(m.addr()).String())
			}
			sortStrings(s)
			return s
		}
		check := func(ns, server, name string, wantAddrs []string, wantStatus string) {
			t.Helper()
			err := e2eproc.Eventually(5*time.Second, 200*time.Millisecond, func() error {
				got, status, err := digAAAA(ns, server, name)
				if err != nil {
					return err
				}
				if status != wantStatus || strings.Join(got, ",") != strings.Join(wantAddrs, ",") {
					return fmt.Errorf("dig @%q %s from %s: %s %v, want %s %v", server, name, ns, status, got, wantStatus, wantAddrs)
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}
		check(acme[0].ns, "fdaa::3", "web.internal", want(acme), "NOERROR")
		check(acme[2].ns, "", "web.internal", want(acme), "NOERROR") // through /etc/netns/<ns>/resolv.conf
		check(globex[1].ns, "fdaa::3", "gweb.internal", want(globex), "NOERROR")
		check(globex[1].ns, "fdaa::3", "web.internal", nil, "NXDOMAIN")
		check(acme[1].ns, "", "gweb.internal", nil, "NXDOMAIN")
		check(acme[0].ns, acmeDNS.String(), "web.internal", want(acme), "NOERROR")
		// Another network's DNS address is not reachable from a machine.
		if out, err := e2eproc.NSRun(10*time.Second, acme[0].ns, "dig", "@"+globexDNS.String(), "+time=1", "+tries=1", "gweb.internal", "AAAA"); err == nil && strings.Contains(out, "status:") {
			t.Errorf("acme machine got an answer from globex's DNS address %s:\n%s", globexDNS, out)
		}
	})
	step("DNS checked")

	t.Run("status shows a handshake with every other host", func(t *testing.T) {
		for _, h := range hosts {
			err := e2eproc.Eventually(10*time.Second, 200*time.Millisecond, func() error {
				st := w.status(h)
				if st.WireGuard == nil || st.WireGuard.Mode != "userspace" {
					return fmt.Errorf("%s: wireguard %+v", h.name, st.WireGuard)
				}
				hs := map[string]bool{}
				for _, p := range st.WireGuard.Peers {
					hs[p.PublicKey] = p.LastHandshake != nil
				}
				for _, o := range hosts {
					if o != h && !hs[o.pubKey] {
						return fmt.Errorf("%s has no handshake with %s: %+v", h.name, o.name, st.WireGuard.Peers)
					}
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}
	})
	step("handshakes everywhere")

	t.Run("a new machine answers other hosts at once", func(t *testing.T) {
		// No retry: `machines create` returns once the machine is attached, and h1
		// already routes h2's /80, so the very first packet must get through.
		g := w.createMachine(h2, "gweb", "g4")
		if err := pingOK(globex[0].ns, "", g.addr()); err != nil {
			t.Errorf("first ping from h1 to a machine just created on h2: %v", err)
		}
	})

	var h4 *host
	t.Run("adding a host does not interrupt a stream", func(t *testing.T) {
		a1, a2 := acme[0], acme[1]
		rxBefore := peerRx(w.status(h1), h2.pubKey)
		srv := w.helper(a2.ns, "a2-stream", "stream-server", "5001")
		if err := e2eproc.Eventually(5*time.Second, 50*time.Millisecond, func() error {
			if !strings.Contains(srv.output(), "LISTENING") {
				return fmt.Errorf("stream server not ready")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		const secs = 10
		cl := w.helper(a1.ns, "a1-stream", "stream-client", fmt.Sprintf("[%s]:5001", a2.addr()), fmt.Sprint(secs))
		time.Sleep(1500 * time.Millisecond)
		joinStart := time.Now()
		h4 = w.addHost(4, hostOpts{region: "sin"})
		w.waitMembers([]*host{h1, h2, h3, h4}, "h1", "h2", "h3", "h4")
		a4 := w.createMachine(h4, "web", "a4")
		acme = append(acme, a4)
		if err := e2eproc.Eventually(10*time.Second, 200*time.Millisecond, func() error { return pingOK(a1.ns, "", a4.addr()) }); err != nil {
			t.Errorf("new host's machine not reachable from h1: %v", err)
		}
		t.Logf("h4 joined and its machine became reachable in %v (while streaming)", time.Since(joinStart).Round(time.Millisecond))
		select {
		case <-cl.done:
		case <-time.After((secs + 10) * time.Second):
			t.Fatal("stream client did not finish")
		}
		var rep struct {
			Bytes  int64   `json:"bytes"`
			MaxGap float64 `json:"max_gap_seconds"`
			Error  string  `json:"error"`
		}
		out := cl.output()
		if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &rep); err != nil {
			t.Fatalf("stream report: %v\n%s", err, out)
		}
		t.Logf("stream h1→h2 over %ds: %d bytes, longest gap between reads %.3fs", secs, rep.Bytes, rep.MaxGap)
		if rep.Error != "" || cl.err != nil {
			t.Errorf("stream broke: %s (%v)", rep.Error, cl.err)
		}
		if rep.MaxGap > 1.0 {
			t.Errorf("stream stalled for %.2fs while h4 joined", rep.MaxGap)
		}
		if rep.Bytes < secs*500_000 {
			t.Errorf("stream carried only %d bytes in %ds", rep.Bytes, secs)
		}
		// The h1↔h2 peer was never removed and re-added: its counters kept growing.
		if rxAfter := peerRx(w.status(h1), h2.pubKey); rxAfter < rxBefore+rep.Bytes/2 {
			t.Errorf("h1's peer h2 rx went %d → %d: the peer was reset", rxBefore, rxAfter)
		}
		srv.stop(time.Second)
	})
	if h4 == nil {
		t.FailNow()
	}
	step("fourth host joined during the stream")

	t.Run("removing a host removes its peer, routes and rules everywhere", func(t *testing.T) {
		h3Prefixes := map[string]bool{}
		for _, ps := range []netip.Addr{acmeDNS, globexDNS} {
			b := ps.As16()
			b[6], b[7], b[8], b[9] = byte(h3.hostID>>24), byte(h3.hostID>>16), byte(h3.hostID>>8), byte(h3.hostID)
			b[15] = 0
			h3Prefixes[netip.PrefixFrom(netip.AddrFrom16(b), 80).String()] = true
		}
		rest := []*host{h1, h2, h4}
		// Before: everyone has h3 as a peer with routes to its /80s.
		for _, h := range rest {
			out := nsMust(t, h.ns, "wg", "show", h.iface, "peers")
			if !strings.Contains(out, h3.pubKey) {
				t.Fatalf("%s has no peer h3 before the removal:\n%s", h.name, out)
			}
		}
		stopStart := time.Now()
		// kill -9: h3 does not say goodbye, so the others keep its peer (it might come
		// back any moment) until an operator removes it for good.
		h3.agent.kill()
		if err := e2eproc.Eventually(20*time.Second, 200*time.Millisecond, func() error {
			var ms []member
			w.cliJSON(h1, &ms, "members")
			for _, m := range ms {
				if m.Name == "h3" && m.Status != "failed" {
					return fmt.Errorf("h3 is %s on h1", m.Status)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		failedAfter := time.Since(stopStart)
		if out := nsMust(t, h1.ns, "wg", "show", h1.iface, "peers"); !strings.Contains(out, h3.pubKey) {
			t.Errorf("h1 dropped the peer of failed (not removed) h3")
		}
		w.cli(h1, "members", "remove", "h3")
		removed := time.Now()
		for _, h := range rest {
			err := e2eproc.Eventually(10*time.Second, 100*time.Millisecond, func() error {
				out, err := e2eproc.NSRun(5*time.Second, h.ns, "wg", "show", h.iface, "peers")
				if err != nil {
					return err
				}
				if strings.Contains(out, h3.pubKey) {
					return fmt.Errorf("%s still has h3's WireGuard peer", h.name)
				}
				ps, raw, err := sixpnRoutes(h.ns)
				if err != nil {
					return err
				}
				for _, p := range ps {
					if hostIDOf(p.Addr()) == h3.hostID {
						return fmt.Errorf("%s still routes %s:\n%s", h.name, p, raw)
					}
				}
				nft, err := e2eproc.NSRun(5*time.Second, h.ns, "nft", "list", "ruleset")
				if err != nil {
					return err
				}
				for p := range h3Prefixes {
					if strings.Contains(nft, strings.TrimSuffix(p, "/80")) {
						return fmt.Errorf("%s nftables still mention %s", h.name, p)
					}
				}
				var ms []machine
				out, err = w.try(h, "machines", "list", "--json")
				if err != nil {
					return err
				}
				json.Unmarshal([]byte(out), &ms)
				for _, m := range ms {
					if m.Host == "h3" {
						return fmt.Errorf("%s still lists h3's machine %s", h.name, m.ID)
					}
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}
		t.Logf("h3 killed (-9), seen failed after %v; after `members remove h3` on h1 its peer, routes and rules were gone on h1, h2, h4 within %v",
			failedAfter.Round(time.Millisecond), time.Since(removed).Round(time.Millisecond))
		// The rest of the mesh still works, and DNS no longer offers h3's machine.
		var wantDNS []string
		for _, m := range []*machine{acme[0], acme[1], acme[3]} {
			wantDNS = append(wantDNS, netip.MustParseAddr(m.addr()).String())
		}
		sortStrings(wantDNS)
		if err := e2eproc.Eventually(5*time.Second, 200*time.Millisecond, func() error {
			got, _, err := digAAAA(acme[0].ns, "fdaa::3", "web.internal")
			if err != nil {
				return err
			}
			if strings.Join(got, ",") != strings.Join(wantDNS, ",") {
				return fmt.Errorf("web.internal after removal: %v, want %v", got, wantDNS)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
		for _, to := range []*machine{acme[1], acme[3]} {
			if err := pingRetry(acme[0].ns, to.addr(), 3); err != nil {
				t.Errorf("after removing h3: %v", err)
			}
		}
	})
	step("h3 removed")

	t.Run("kill -9 and restart keeps identity and re-adopts machines", func(t *testing.T) {
		a1, a2 := acme[0], acme[1]
		vethBefore := nsMust(t, h2.ns, "ip", "-o", "link", "show", "type", "veth")
		keyBefore, idBefore := h2.pubKey, h2.hostID
		h2.agent.kill()
		// While the agent is away the machines on h2 still reach each other's host.
		restart := time.Now()
		h2.start(h2.args)
		if h2.pubKey != keyBefore || h2.hostID != idBefore {
			t.Errorf("restart changed identity: key %s → %s, id %08x → %08x", keyBefore, h2.pubKey, idBefore, h2.hostID)
		}
		if err := e2eproc.Eventually(20*time.Second, 200*time.Millisecond, func() error {
			if err := pingOK(a1.ns, "", a2.addr()); err != nil {
				return err
			}
			body, err := httpGet(a1.ns, a2.addr(), 2*time.Second)
			if err == nil && strings.TrimSpace(body) != a2.tag {
				err = fmt.Errorf("body %q", body)
			}
			return err
		}); err != nil {
			t.Fatalf("after restarting h2: %v", err)
		}
		t.Logf("h2 restarted; h1→h2 machine traffic back %v after the restart began", time.Since(restart).Round(time.Millisecond))
		vethAfter := nsMust(t, h2.ns, "ip", "-o", "link", "show", "type", "veth")
		if vethBefore != vethAfter {
			t.Errorf("machine veths changed across the restart:\nbefore %s\nafter  %s", vethBefore, vethAfter)
		}
		if pingOK(a2.ns, "", globex[0].addr()) == nil {
			t.Errorf("after restart: acme machine on h2 reaches globex on h1")
		}
	})
	step("h2 restarted")
}

func peerRx(st wgStatus, key string) int64 {
	if st.WireGuard == nil {
		return -1
	}
	for _, p := range st.WireGuard.Peers {
		if p.PublicKey == key {
			return p.RxBytes
		}
	}
	return -1
}
