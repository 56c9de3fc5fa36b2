//go:build agent

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/dogwood/dogwood/mesh"
	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/peers/config"
	"github.com/dogwood/dogwood/peers/tunnel"
)

const (
	// peerDNSName names doctor's line for DNS from developers' peers.
	peerDNSName = "dns from peers"
	// peerDNSBudget bounds the whole check: create the test peer, bring up its
	// tunnel, ask, remove it.
	peerDNSBudget = 5 * time.Second
	// peerDNSQueryTimeout bounds each of the UDP and TCP queries (asked at once).
	peerDNSQueryTimeout = 1500 * time.Millisecond
	// doctorPeerTTL is the test peer's expiry: if the agent dies before doctor
	// removes it, the gateway's expiry removes it after its restart.
	doctorPeerTTL = time.Minute
	// doctorPeerPrefix starts the test peers' names, so one seen in
	// `wireguard list` while doctor runs says what it is.
	doctorPeerPrefix = "doctor-"
)

// peerDNS asks the DNS address peers are given (fdaa:<net>::3) the way a
// developer's peer does: doctor creates a short-lived peer of this gateway,
// brings up a userspace WireGuard session to the gateway's own port (the
// encrypted UDP comes in over loopback, the decrypted query arrives on the
// WireGuard interface, where the input firewall judges real peers' queries),
// asks over UDP and TCP, and removes the peer on every path. A query from the
// host itself never meets that firewall rule. Hosts that are not gateways have
// no peers and say so.
func (d *doctor) peerDNS(ctx context.Context) []doctorCheck {
	if !d.opts.Gateway || d.dp.dp == nil {
		return []doctorCheck{pass(peerDNSName, "skipped: not a gateway (--gateway), developers' peers do not connect here")}
	}
	org, network, ok := doctorPeerNetwork(d.node.Snapshot())
	if !ok {
		return []doctorCheck{pass(peerDNSName, "skipped: no org has a network yet, so no peer can connect")}
	}
	ctx, cancel := context.WithTimeout(ctx, peerDNSBudget)
	defer cancel()
	start := time.Now()

	priv, _, err := config.GenerateKey()
	if err != nil {
		return []doctorCheck{warn(peerDNSName, "cannot make a test peer's key: "+err.Error(), "")}
	}
	name := doctorPeerPrefix + randomHex(6)
	expires := time.Now().Add(doctorPeerTTL)
	info, err := d.node.Peers.Create(ctx, mesh.PeerSpec{Org: org, Network: network, Name: name,
		PublicKey: priv.PublicKey().String(), ExpiresAt: &expires, RequestID: name})
	if err != nil {
		// The create undoes itself on failure; a timeout may still have written
		// the record, which the removal below takes back.
		out := []doctorCheck{warn(peerDNSName, fmt.Sprintf("cannot create a test peer in org %s: %v", org, err),
			"peers cannot be created on this gateway either: dogwood wireguard create "+org+" shows why")}
		return append(out, d.removeDoctorPeer(org, name)...)
	}
	checks := d.askAsPeer(ctx, *info, priv, start)
	return append(checks, d.removeDoctorPeer(org, name)...)
}

// askAsPeer brings up the test peer's tunnel and asks over UDP and TCP.
func (d *doctor) askAsPeer(ctx context.Context, info mesh.PeerInfo, priv wgtypes.Key, start time.Time) []doctorCheck {
	if info.Gateway != d.node.Name() {
		return []doctorCheck{warn(peerDNSName, fmt.Sprintf("the test peer went to gateway %s, not this host", info.Gateway),
			"does this host have a --public-endpoint and is it alive in `dogwood members`?")}
	}
	cfg, err := baseConfig(priv, info)
	if err != nil {
		return []doctorCheck{warn(peerDNSName, "test peer config: "+err.Error(), "")}
	}
	// The gateway's own WireGuard port over loopback: the public endpoint may
	// be a NAT address this host cannot reach itself through.
	cfg.Endpoint = net.JoinHostPort("127.0.0.1", strconv.Itoa(d.opts.WGPort))
	tun, err := tunnel.Up(ctx, cfg, tunnel.Options{DNSTimeout: peerDNSQueryTimeout})
	if err != nil {
		return []doctorCheck{warn(peerDNSName, "test peer tunnel: "+err.Error(), "")}
	}
	defer tun.Close()

	q := new(dns.Msg)
	q.SetQuestion(info.Name+"._peer.internal.", dns.TypeAAAA)
	var (
		mu  sync.Mutex
		res []peerDNSResult
		wg  sync.WaitGroup
	)
	for _, network := range []string{"udp", "tcp"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			r, err := tun.ExchangeOnce(ctx, q.Copy(), network)
			mu.Lock()
			res = append(res, peerDNSResult{Network: network, Took: time.Since(t0), Err: err, Answer: r})
			mu.Unlock()
		}()
	}
	wg.Wait()
	return []doctorCheck{peerDNSCheck(peerDNSInput{
		Server: info.DNS, Org: info.Org, Network: info.Network, Interface: d.opts.WGInterface,
		WGPort: d.opts.WGPort, Handshaked: tun.Handshaked(), Results: res, Took: time.Since(start),
	})}
}

// removeDoctorPeer removes the test peer whatever happened before, even when
// the request that ran doctor is gone (the CLI was killed): it gets its own
// deadline. A peer it cannot remove still expires on its own.
func (d *doctor) removeDoctorPeer(org, name string) []doctorCheck {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := d.node.Peers.Remove(ctx, org, name)
	if err == nil || mesh.StatusCode(err) == http.StatusNotFound { // not found: the create never wrote it
		return nil
	}
	return []doctorCheck{warn("doctor test peer", fmt.Sprintf("peer %s in org %s not removed: %v (it expires within %s)", name, org, err, doctorPeerTTL),
		fmt.Sprintf("dogwood wireguard remove %s %s", org, name))}
}

// doctorPeerNetwork picks where the test peer goes: the network of a peer this
// gateway already serves (what its developers use), else the first network by
// org and name. ok is false without any network.
func doctorPeerNetwork(s *catalog.Snapshot) (org, network string, ok bool) {
	for _, p := range s.LocalPeers {
		if !strings.HasPrefix(p.Name, doctorPeerPrefix) && s.NetworkByName[p.Org+"/"+p.Network] != nil {
			return p.Org, p.Network, true
		}
	}
	keys := make([]string, 0, len(s.NetworkByName))
	for k := range s.NetworkByName {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if n := s.NetworkByName[k]; n != nil && s.Orgs[n.Org] != nil {
			return n.Org, n.Name, true
		}
	}
	return "", "", false
}

type peerDNSResult struct {
	Network string
	Took    time.Duration
	Err     error
	Answer  *dns.Msg
}

type peerDNSInput struct {
	Server, Org, Network, Interface string
	WGPort                          int
	Handshaked                      bool
	Results                         []peerDNSResult
	Took                            time.Duration // the whole check
}

// peerDNSCheck judges the test peer's queries: an answer of any kind means the
// query passed the firewall and the listener; no answer without a handshake is
// a WireGuard problem, not a DNS one.
func peerDNSCheck(in peerDNSInput) doctorCheck {
	res := append([]peerDNSResult(nil), in.Results...)
	sort.Slice(res, func(i, j int) bool { return res[i].Network > res[j].Network }) // udp, tcp
	server := net.JoinHostPort(in.Server, "53")
	var ok, failed []string
	for _, r := range res {
		if r.Err != nil || r.Answer == nil {
			failed = append(failed, fmt.Sprintf("%s: %v", strings.ToUpper(r.Network), r.Err))
		} else {
			ok = append(ok, fmt.Sprintf("%s %s in %s", strings.ToUpper(r.Network), dns.RcodeToString[r.Answer.Rcode], roundMs(r.Took)))
		}
	}
	where := fmt.Sprintf("a test peer of org %s (network %s) over WireGuard on %s", in.Org, in.Network, in.Interface)
	switch {
	case len(failed) == 0 && len(ok) > 0:
		return pass(peerDNSName, fmt.Sprintf("%s answers %s: %s (check %s)", server, where, strings.Join(ok, ", "), roundMs(in.Took)))
	case !in.Handshaked:
		return fail(peerDNSName, fmt.Sprintf("a test peer of org %s got no WireGuard handshake from this gateway on 127.0.0.1:%d (%s)", in.Org, in.WGPort, strings.Join(failed, "; ")),
			fmt.Sprintf("the input firewall drops WireGuard: accept udp dport %d (README: Ports to open); journalctl -u dogwood if it does", in.WGPort))
	}
	detail := fmt.Sprintf("%s gets no answer for %s (%s)", server, where, strings.Join(failed, "; "))
	if len(ok) > 0 {
		detail += "; " + strings.Join(ok, ", ")
	}
	return fail(peerDNSName, detail,
		fmt.Sprintf("the host's input firewall drops developers' DNS arriving on %s: nft add rule inet TABLE CHAIN ip6 daddr fdaa::/16 meta l4proto { tcp, udp } th dport 53 accept "+
			"(iptables: ip6tables -I INPUT -d fdaa::/16 -p udp --dport 53 -j ACCEPT, and again with -p tcp; README: Ports to open)", in.Interface))
}

func roundMs(d time.Duration) string {
	if d < time.Millisecond {
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
