//go:build agent

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"

	"github.com/dogwood/dogwood/mesh"
	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/peers"
	"github.com/dogwood/dogwood/peers/attach"
	"github.com/dogwood/dogwood/peers/filter"
)

const (
	// staleHandshake is WireGuard's REJECT_AFTER_TIME: a session older than this
	// carries no traffic, and warm host tunnels re-handshake well within it.
	staleHandshake = 180 * time.Second
	// opInfo answers a member's clock and version for the skew checks.
	opInfo = "doctor.info"
)

// doctor runs the checks inside the agent.
type doctor struct {
	started time.Time // the agent's start: first handshakes are "not yet" for a while
	opts    agentOptions
	node    *mesh.Node
	dp      *dataPlane
	dns     *dnsService
	reach   *reachView
}

func (d *doctor) register() {
	version := readBuildInfo().Version
	d.node.Gossip().Handle(opInfo, func(context.Context, string, json.RawMessage) (any, error) {
		return memberInfo{Now: time.Now().UTC(), Version: version}, nil
	})
}

func (d *doctor) serveHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(d.run(ctx))
}

// run executes the checks concurrently (each is bounded by a timeout) and returns
// them in a fixed order.
func (d *doctor) run(ctx context.Context) []doctorCheck {
	groups := []func(context.Context) []doctorCheck{
		d.keyFile, d.dataDir, d.listeners, d.members, d.wireguard, d.dnsListeners, d.machineDNS, d.peerDNS, d.upstreams, d.clock, d.nftables, d.mtu,
	}
	res := make([][]doctorCheck, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = g(ctx)
		}()
	}
	wg.Wait()
	var out []doctorCheck
	for _, r := range res {
		out = append(out, r...)
	}
	return out
}

func pass(name, detail string) doctorCheck {
	return doctorCheck{Name: name, Status: checkPass, Detail: detail}
}

func warn(name, detail, next string) doctorCheck {
	return doctorCheck{Name: name, Status: checkWarn, Detail: detail, Next: next}
}

func fail(name, detail, next string) doctorCheck {
	return doctorCheck{Name: name, Status: checkFail, Detail: detail, Next: next}
}

func (d *doctor) keyFile(context.Context) []doctorCheck {
	const name = "gossip key file"
	f := d.opts.GossipKeyFile
	if f == "" {
		return []doctorCheck{warn(name, "gossip is not encrypted (--insecure-no-gossip-key)",
			"(umask 077; dogwood keygen > /etc/dogwood/gossip.key) on one host, copy it to all, set gossip-key-file and restart (rolling)")}
	}
	st, err := os.Stat(f)
	if err != nil {
		return []doctorCheck{fail(name, err.Error(), "restore the file: without it the agent cannot restart")}
	}
	if m := st.Mode().Perm(); m&0o077 != 0 {
		return []doctorCheck{fail(name, fmt.Sprintf("%s has mode %04o: other users can read the cluster's key", f, m),
			fmt.Sprintf("chmod 600 %s (and rotate the key with `dogwood keyring` if others may have read it)", f))}
	}
	keys, err := d.node.Gossip().Keys()
	if err != nil {
		return []doctorCheck{warn(name, err.Error(), "")}
	}
	return []doctorCheck{pass(name, fmt.Sprintf("%s, mode %04o, %d key(s)", f, st.Mode().Perm(), len(keys)))}
}

func (d *doctor) dataDir(context.Context) []doctorCheck {
	const name = "data dir"
	st, err := os.Stat(d.opts.DataDir)
	if err != nil {
		return []doctorCheck{fail(name, err.Error(), "the agent keeps its identity and WireGuard key there; restore it with `dogwood restore FILE` from a `dogwood backup`")}
	}
	if m := st.Mode().Perm(); m&0o077 != 0 {
		return []doctorCheck{warn(name, fmt.Sprintf("%s has mode %04o; it holds the WireGuard private key", d.opts.DataDir, m),
			"chmod 700 "+d.opts.DataDir)}
	}
	if err := d.node.DiskBehind(); err != nil {
		return []doctorCheck{fail(name, err.Error(), "free space or fix the disk under "+d.opts.DataDir+"; the agent retries by itself and a restart would reload only what is on disk")}
	}
	return []doctorCheck{pass(name, fmt.Sprintf("%s, mode %04o", d.opts.DataDir, st.Mode().Perm()))}
}

// listeners checks what this agent should be listening on.
func (d *doctor) listeners(ctx context.Context) []doctorCheck {
	var out []doctorCheck
	g := d.opts.GossipAddr
	if ap, err := netip.ParseAddrPort(g); err == nil && ap.Addr().IsUnspecified() {
		g = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ap.Port()).String()
	}
	if err := dialTCP(ctx, g); err != nil {
		out = append(out, fail("gossip port", fmt.Sprintf("TCP %s: %v", g, err), "another process may hold the port; ss -ltnup | grep "+portOf(d.opts.GossipAddr)))
	} else {
		out = append(out, pass("gossip port", "listening on "+d.opts.GossipAddr+" (UDP and TCP)"))
	}
	if st, err := os.Stat(d.opts.APISocket); err != nil {
		out = append(out, fail("API socket", err.Error(), "the agent creates it at start; is --api-socket's directory writable?"))
	} else if st.Mode().Perm()&0o077 != 0 {
		out = append(out, fail("API socket", fmt.Sprintf("%s has mode %04o", d.opts.APISocket, st.Mode().Perm()), "chmod 600 "+d.opts.APISocket))
	} else {
		out = append(out, pass("API socket", d.opts.APISocket+", mode 0600"))
	}
	return out
}

// members checks every other host: gossip status, and a TCP connection to its
// gossip port (memberlist's push/pull and our RPCs ride TCP).
func (d *doctor) members(ctx context.Context) []doctorCheck {
	var out []doctorCheck
	// Right after a (re)start the catalog remembers the members from disk as
	// failed until gossip hears from them again: wait for that briefly, as for
	// first handshakes.
	members := d.node.Members.List()
	young := time.Since(d.started) < handshakeGrace
	for deadline := time.Now().Add(handshakeWait); young && d.notRejoined(members) && time.Now().Before(deadline) && ctx.Err() == nil; {
		time.Sleep(100 * time.Millisecond)
		members = d.node.Members.List()
	}
	for _, m := range members {
		if m.Name == d.node.Name() {
			continue
		}
		name := "member " + m.Name
		switch {
		case m.Status == catalog.StatusFailed && young && dialTCP(ctx, m.Addr) == nil:
			out = append(out, warn(name, fmt.Sprintf("not heard from yet (the agent started %s ago); its gossip port %s answers", time.Since(d.started).Round(time.Second), m.Addr),
				"run dogwood doctor again in a few seconds"))
			continue
		}
		switch m.Status {
		case catalog.StatusLeft:
			out = append(out, warn(name, "left the cluster: its agent was stopped",
				fmt.Sprintf("start it again (systemctl start dogwood on %s), or if it is gone for good: dogwood members remove %s", m.Name, m.Name)))
		case catalog.StatusFailed:
			out = append(out, fail(name, fmt.Sprintf("failed: no answer on gossip %s", m.Addr),
				fmt.Sprintf("on %s: systemctl status dogwood; between the hosts open %s/udp and /tcp; gone for good? dogwood members remove %s", m.Name, portOf(m.Addr), m.Name)))
		default:
			if err := dialTCP(ctx, m.Addr); err != nil {
				out = append(out, fail(name, fmt.Sprintf("%s, but TCP to its gossip port %s fails: %v", m.Status, m.Addr, err),
					fmt.Sprintf("open %s/tcp from this host to %s", portOf(m.Addr), m.Name)))
			} else if m.Status == catalog.StatusSuspect {
				out = append(out, warn(name, "suspect: probes to it are failing", "packet loss on the gossip port, or the host is overloaded"))
			} else {
				out = append(out, pass(name, "alive, gossip TCP "+m.Addr+" reachable"))
			}
		}
	}
	if len(out) == 0 {
		out = append(out, warn("members", "no other member", "add join addresses (join: in the config file) if this host should have peers"))
	}
	return out
}

// notRejoined reports whether a member other than this host is failed or
// suspect (left members stay left).
func (d *doctor) notRejoined(ms []mesh.MemberInfo) bool {
	for _, m := range ms {
		if m.Name != d.node.Name() && (m.Status == catalog.StatusFailed || m.Status == catalog.StatusSuspect) {
			return true
		}
	}
	return false
}

// wireguard checks the interface and a fresh handshake with every live host.
func (d *doctor) wireguard(ctx context.Context) []doctorCheck {
	if d.dp.dp == nil {
		return []doctorCheck{pass("wireguard", "off (--wireguard off)")}
	}
	var out []doctorCheck
	ifc, err := net.InterfaceByName(d.opts.WGInterface)
	switch {
	case err != nil:
		return []doctorCheck{fail("wireguard interface", err.Error(), "journalctl -u dogwood: the agent could not create "+d.opts.WGInterface)}
	case ifc.Flags&net.FlagUp == 0:
		out = append(out, fail("wireguard interface", d.opts.WGInterface+" is down", "ip link set "+d.opts.WGInterface+" up, then restart the agent"))
	default:
		out = append(out, pass("wireguard interface", fmt.Sprintf("%s up, MTU %d", d.opts.WGInterface, ifc.MTU)))
	}
	if err := d.dp.lastApplyErr(); err != nil {
		out = append(out, fail("wireguard apply", err.Error(), "journalctl -u dogwood shows the failing stage"))
	}
	st, err := d.dp.dp.Status()
	if err != nil {
		return append(out, fail("wireguard peers", err.Error(), "wg show "+d.opts.WGInterface))
	}
	var live []mesh.MemberInfo
	for _, m := range d.node.Members.List() {
		if m.Name != d.node.Name() && catalog.Live(m.Status) && m.PublicKey != "" {
			live = append(live, m)
		}
	}
	// Right after a start (`systemctl enable --now dogwood && dogwood doctor`)
	// the first handshakes are a round trip away: wait for them briefly
	// rather than report a path that is merely new.
	deadline := time.Now().Add(handshakeWait)
	for missingHandshake(st, live) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
		if st2, err := d.dp.dp.Status(); err == nil {
			st = st2
		}
	}
	byKey := map[string]int{}
	for i, p := range st.Peers {
		byKey[p.PublicKey] = i
	}
	now := time.Now()
	for _, m := range live {
		name := "handshake " + m.Name
		i, ok := byKey[m.PublicKey]
		if !ok {
			out = append(out, fail(name, "not a WireGuard peer of this host", "the reconcile has not added it: journalctl -u dogwood"))
			continue
		}
		p := st.Peers[i]
		if ok, silent := d.reach.reachable(m.Name); !ok && (p.LastHandshake != nil || now.Sub(d.started) >= handshakeGrace) {
			// The same signal DNS uses: fails as soon as the tunnel went quiet, not
			// after WireGuard's reject-after.
			out = append(out, fail(name, fmt.Sprintf("nothing received from %s for %s (gossip reaches it); this host leaves its machines out of DNS",
				p.Endpoint, silent.Round(time.Second)),
				fmt.Sprintf("WireGuard UDP is blocked between the hosts: open %s/udp both ways to %s", portOf(p.Endpoint), p.Endpoint)))
			continue
		}
		out = append(out, handshakeCheck(name, p.Endpoint, p.LastHandshake, now, d.started))
	}
	return out
}

const (
	// handshakeWait is how long doctor waits for first handshakes.
	handshakeWait = 5 * time.Second
	// handshakeGrace is how long after the agent's start a missing first
	// handshake is "not yet" (WARN) rather than a blocked path (FAIL):
	// WireGuard retries a handshake every 5 s, so a few tries fit in it.
	handshakeGrace = 30 * time.Second
)

func missingHandshake(st peers.Status, live []mesh.MemberInfo) bool {
	have := map[string]bool{}
	for _, p := range st.Peers {
		if p.LastHandshake != nil {
			have[p.PublicKey] = true
		}
	}
	for _, m := range live {
		if !have[m.PublicKey] {
			return true
		}
	}
	return false
}

// handshakeCheck judges one host peer's last handshake; started is when this
// agent started.
func handshakeCheck(name, endpoint string, last *time.Time, now, started time.Time) doctorCheck {
	wgPort := portOf(endpoint)
	blocked := fmt.Sprintf("WireGuard UDP is blocked between the hosts: open %s/udp both ways to %s", wgPort, endpoint)
	switch {
	case last == nil && now.Sub(started) < handshakeGrace:
		return warn(name, fmt.Sprintf("no handshake with %s yet (the agent started %s ago)", endpoint, now.Sub(started).Round(time.Second)),
			fmt.Sprintf("run dogwood doctor again in a few seconds; if it stays, %s", blocked))
	case last == nil:
		return fail(name, fmt.Sprintf("never completed a handshake with %s (gossip reaches it)", endpoint), blocked)
	case now.Sub(*last) > staleHandshake:
		return fail(name, fmt.Sprintf("last handshake %s ago with %s (gossip reaches it)", now.Sub(*last).Round(time.Second), endpoint), blocked)
	}
	return pass(name, fmt.Sprintf("%s ago via %s", now.Sub(*last).Round(time.Second), endpoint))
}

func (d *doctor) dnsListeners(ctx context.Context) []doctorCheck {
	var out []doctorCheck
	for _, a := range d.dns.srv.Addrs() {
		if err := probeDNS(ctx, a); err != nil {
			out = append(out, fail("dns "+a.String(), err.Error(), "journalctl -u dogwood | grep dns; another resolver may hold the port: ss -lunp | grep :"+fmt.Sprint(a.Port())))
		} else {
			out = append(out, pass("dns "+a.String(), "answers"))
		}
	}
	if len(out) == 0 {
		out = append(out, fail("dns", "no DNS listener", "set dns-listen, or enable WireGuard (fdaa::3)"))
	}
	return out
}

// machineDNS asks fdaa::3 from inside a machine's namespace on this host, over
// UDP and TCP: the path machines take, through the host's input firewall,
// which a query over loopback never meets. Hosts without an attached machine
// have nothing to ask from, and no line.
func (d *doctor) machineDNS(ctx context.Context) []doctorCheck {
	if d.dp.dp == nil {
		return nil
	}
	ms, err := d.node.Machines.List("", "")
	if err != nil {
		return nil
	}
	for _, m := range ms {
		if m.Host != d.node.Name() || m.Netns == "" || m.State != catalog.StateStarted {
			continue
		}
		const name = "dns from machines"
		var failed []string
		for _, network := range []string{"udp", "tcp"} {
			if err := probeDNSIn(ctx, m.Netns, network); err != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", network, err))
			}
		}
		if len(failed) > 0 {
			return []doctorCheck{fail(name, fmt.Sprintf("machine %s (netns %s) gets no answer from [fdaa::3]:53 (%s)", m.ID, m.Netns, strings.Join(failed, "; ")),
				"the host's input firewall drops it: accept udp and tcp port 53 to fdaa::/16 on every interface (README: Ports to open)")}
		}
		return []doctorCheck{pass(name, fmt.Sprintf("[fdaa::3]:53 answers machine %s (netns %s) over UDP and TCP", m.ID, m.Netns))}
	}
	return nil
}

func probeDNSIn(ctx context.Context, nsName, network string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := attach.DialIn(ctx, nsName, network, "[fdaa::3]:53")
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	m := new(dns.Msg)
	m.SetQuestion("internal.", dns.TypeSOA)
	co := &dns.Conn{Conn: c}
	if err := co.WriteMsg(m); err != nil {
		return err
	}
	if _, err := co.ReadMsg(); err != nil {
		return err
	}
	return nil
}

// upstreams asks each upstream resolver for the root's NS records.
func (d *doctor) upstreams(ctx context.Context) []doctorCheck {
	ups := d.opts.UpstreamDNS
	if len(ups) == 0 {
		if cfg, err := dns.ClientConfigFromFile(d.opts.ResolvConf); err == nil {
			for _, s := range cfg.Servers {
				ups = append(ups, net.JoinHostPort(s, cfg.Port))
			}
		}
	}
	if len(ups) == 0 {
		return []doctorCheck{warn("upstream dns", "none configured: names outside .internal do not resolve", "set upstream-dns, or nameserver lines in "+d.opts.ResolvConf)}
	}
	var out []doctorCheck
	for _, u := range ups {
		if _, _, err := net.SplitHostPort(u); err != nil {
			u = net.JoinHostPort(u, "53")
		}
		m := new(dns.Msg)
		m.SetQuestion(".", dns.TypeNS)
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, _, err := (&dns.Client{Timeout: 2 * time.Second}).ExchangeContext(cctx, m, u)
		cancel()
		if err != nil {
			out = append(out, warn("upstream "+u, err.Error(), "names outside .internal fail or wait for the next upstream; check routing and firewall to "+u))
		} else {
			out = append(out, pass("upstream "+u, "answers"))
		}
	}
	return out
}

// memberInfo is what a member tells doctor about itself.
type memberInfo struct {
	Now     time.Time `json:"now"`
	Version string    `json:"version"`
}

// clock compares the wall clock with every live member's (half the round trip
// is the error bar), and the members' versions with this agent's.
func (d *doctor) clock(ctx context.Context) []doctorCheck {
	worst, worstHost, asked := 0.0, "", 0
	var errs []string
	mine := readBuildInfo().Version
	versions := map[string][]string{mine: {d.node.Name()}}
	var problems []string
	for _, m := range d.node.Members.List() {
		if m.Name == d.node.Name() || !catalog.Live(m.Status) {
			continue
		}
		if m.VersionProblem != "" { // it cannot answer: say why instead of timing out
			problems = append(problems, m.VersionProblem)
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		t0 := time.Now()
		var info memberInfo
		err := d.node.Gossip().Call(cctx, m.Name, opInfo, nil, &info)
		t1 := time.Now()
		cancel()
		if err != nil {
			errs = append(errs, m.Name+": "+err.Error())
			continue
		}
		asked++
		versions[info.Version] = append(versions[info.Version], m.Name)
		skew := info.Now.Sub(t0.Add(t1.Sub(t0) / 2)).Seconds()
		if math.Abs(skew) > math.Abs(worst) {
			worst, worstHost = skew, m.Name
		}
	}
	return append(clockCheck(asked, errs, worst, worstHost), versionCheck(mine, versions, errs, problems))
}

func clockCheck(asked int, errs []string, worst float64, worstHost string) []doctorCheck {
	switch {
	case asked == 0 && len(errs) == 0:
		return []doctorCheck{pass("clock skew", "no other live member to compare with")}
	case asked == 0:
		return []doctorCheck{warn("clock skew", "no member answered: "+strings.Join(errs, "; "), "see the member checks")}
	case math.Abs(worst) > 5:
		return []doctorCheck{fail("clock skew", fmt.Sprintf("%s is %+.1fs off this host", worstHost, worst), "run NTP on every host (timedatectl set-ntp true): peer and invitation expiry use wall time")}
	case math.Abs(worst) > 1:
		return []doctorCheck{warn("clock skew", fmt.Sprintf("%s is %+.1fs off this host", worstHost, worst), "run NTP on every host (timedatectl set-ntp true)")}
	}
	return []doctorCheck{pass("clock skew", fmt.Sprintf("within %.0f ms of %d members", math.Abs(worst)*1000, asked))}
}

// versionCheck fails when a live member did not answer or runs a version this host
// cannot exchange messages with (it cannot vouch for what it did not hear), and
// warns when members run other versions than this agent: fine during a rolling
// upgrade, a forgotten host otherwise.
func versionCheck(mine string, versions map[string][]string, unanswered, problems []string) doctorCheck {
	if len(problems) > 0 || len(unanswered) > 0 {
		detail := strings.Join(append(append([]string(nil), problems...), unanswered...), "; ")
		if len(problems) == 0 {
			detail = "no answer from: " + detail
		}
		return fail("versions", detail, "upgrade the hosts named (one at a time, see README \"Upgrading\"), or check that they run and are reachable")
	}
	if len(versions) == 1 {
		return pass("versions", "every member runs "+mine)
	}
	var parts []string
	for v, hosts := range versions {
		sort.Strings(hosts)
		parts = append(parts, fmt.Sprintf("%s on %s", v, strings.Join(hosts, ",")))
	}
	sort.Strings(parts)
	return warn("versions", strings.Join(parts, "; "), "finish the rolling upgrade: install the same package on every host")
}

func (d *doctor) nftables(context.Context) []doctorCheck {
	const name = "nftables"
	if d.dp.dp == nil {
		return []doctorCheck{pass(name, "not used (--wireguard off)")}
	}
	c, err := nftables.New()
	if err != nil {
		return []doctorCheck{fail(name, err.Error(), "")}
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return []doctorCheck{fail(name, err.Error(), "is nf_tables available? modprobe nf_tables")}
	}
	for _, t := range tables {
		if t.Name == filter.DefaultTable {
			return []doctorCheck{pass(name, "table inet "+filter.DefaultTable+" present")}
		}
	}
	return []doctorCheck{fail(name, "table inet "+filter.DefaultTable+" missing: tenant isolation is off",
		"something flushed the ruleset (nft flush ruleset, a firewall reload); the next reconcile restores it: systemctl restart dogwood")}
}

// mtu checks that WireGuard's packets fit the underlay path to every host: the
// interface MTU plus WireGuard's overhead (80 bytes over IPv6, 60 over IPv4) must
// not exceed the MTU of the interface the route to the host's endpoint uses.
func (d *doctor) mtu(context.Context) []doctorCheck {
	if d.dp.dp == nil {
		return nil
	}
	ifc, err := net.InterfaceByName(d.opts.WGInterface)
	if err != nil {
		return nil // the wireguard check reports it
	}
	st, err := d.dp.dp.Status()
	if err != nil {
		return nil
	}
	var bad []string
	checked := 0
	for _, p := range st.Peers {
		if p.Kind != "host" || p.Endpoint == "" {
			continue
		}
		ep, err := netip.ParseAddrPort(p.Endpoint)
		if err != nil {
			continue
		}
		routes, err := netlink.RouteGet(ep.Addr().AsSlice())
		if err != nil || len(routes) == 0 {
			continue
		}
		link, err := netlink.LinkByIndex(routes[0].LinkIndex)
		if err != nil {
			continue
		}
		overhead := 60
		if ep.Addr().Is6() && !ep.Addr().Is4In6() {
			overhead = 80
		}
		checked++
		if under := link.Attrs().MTU; ifc.MTU+overhead > under {
			bad = append(bad, fmt.Sprintf("%s via %s (MTU %d)", p.Name, link.Attrs().Name, under))
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		return []doctorCheck{warn("mtu", fmt.Sprintf("%s MTU %d plus WireGuard overhead exceeds the path to %s: large packets fragment or drop",
			d.opts.WGInterface, ifc.MTU, strings.Join(bad, ", ")), "lower the WireGuard MTU or raise the underlay MTU")}
	}
	if checked == 0 {
		return []doctorCheck{pass("mtu", "no host endpoints to check")}
	}
	return []doctorCheck{pass("mtu", fmt.Sprintf("%s MTU %d fits the underlay path to %d hosts", d.opts.WGInterface, ifc.MTU, checked))}
}

func dialTCP(ctx context.Context, addr string) error {
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(dctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

func portOf(hostport string) string {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return "?"
	}
	return p
}
