//go:build agent

package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dogwood/dogwood/mesh/catalog"
)

func TestDoctorPeerNetwork(t *testing.T) {
	nv := func(org, name string) *catalog.NetworkView {
		return &catalog.NetworkView{Network: catalog.Network{Org: org, Name: name}}
	}
	snap := func(peers []*catalog.Peer, nets ...*catalog.NetworkView) *catalog.Snapshot {
		s := &catalog.Snapshot{Orgs: map[string]*catalog.Org{}, NetworkByName: map[string]*catalog.NetworkView{}, LocalPeers: peers}
		for _, n := range nets {
			s.Orgs[n.Org] = &catalog.Org{Slug: n.Org}
			s.NetworkByName[n.Org+"/"+n.Name] = n
		}
		return s
	}
	for _, tc := range []struct {
		name             string
		s                *catalog.Snapshot
		wantOrg, wantNet string
		wantOK           bool
	}{
		{name: "no network", s: snap(nil)},
		{name: "first by org and name", s: snap(nil, nv("zeta", "default"), nv("acme", "prod"), nv("acme", "default")),
			wantOrg: "acme", wantNet: "default", wantOK: true},
		{name: "the network this gateway's peers use", s: snap([]*catalog.Peer{{Name: "lap", Org: "zeta", Network: "default"}}, nv("zeta", "default"), nv("acme", "default")),
			wantOrg: "zeta", wantNet: "default", wantOK: true},
		{name: "not another doctor's test peer", s: snap([]*catalog.Peer{{Name: "doctor-0a1b", Org: "zeta", Network: "default"}}, nv("zeta", "default"), nv("acme", "default")),
			wantOrg: "acme", wantNet: "default", wantOK: true},
		{name: "a peer of a removed network", s: snap([]*catalog.Peer{{Name: "lap", Org: "gone", Network: "default"}}, nv("acme", "default")),
			wantOrg: "acme", wantNet: "default", wantOK: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			org, nw, ok := doctorPeerNetwork(tc.s)
			if org != tc.wantOrg || nw != tc.wantNet || ok != tc.wantOK {
				t.Errorf("got %q %q %v, want %q %q %v", org, nw, ok, tc.wantOrg, tc.wantNet, tc.wantOK)
			}
		})
	}
}

func TestPeerDNSCheck(t *testing.T) {
	answer := func(rcode int) *dns.Msg { m := new(dns.Msg); m.Rcode = rcode; return m }
	timeout := errors.New("i/o timeout")
	base := peerDNSInput{Server: "fdaa:0:18::3", Org: "acme", Network: "default", Interface: "dogwood0", WGPort: 51820, Took: 40 * time.Millisecond}
	with := func(handshaked bool, rs ...peerDNSResult) peerDNSInput {
		in := base
		in.Handshaked, in.Results = handshaked, rs
		return in
	}
	for _, tc := range []struct {
		name   string
		in     peerDNSInput
		status string
		detail []string
		next   []string
	}{
		{name: "both answer", status: checkPass,
			in:     with(true, peerDNSResult{Network: "tcp", Took: 3 * time.Millisecond, Answer: answer(dns.RcodeSuccess)}, peerDNSResult{Network: "udp", Took: 1500 * time.Microsecond, Answer: answer(dns.RcodeNameError)}),
			detail: []string{"[fdaa:0:18::3]:53 answers", "on dogwood0", "UDP NXDOMAIN in 2ms, TCP NOERROR in 3ms"}},
		{name: "firewall drops DNS from peers", status: checkFail,
			in:     with(true, peerDNSResult{Network: "udp", Err: timeout}, peerDNSResult{Network: "tcp", Err: timeout}),
			detail: []string{"gets no answer", "UDP: i/o timeout; TCP: i/o timeout"},
			next:   []string{"arriving on dogwood0", "nft add rule inet TABLE CHAIN ip6 daddr fdaa::/16 meta l4proto { tcp, udp } th dport 53 accept", "ip6tables -I INPUT -d fdaa::/16 -p udp --dport 53 -j ACCEPT", "Ports to open"}},
		{name: "only TCP dropped", status: checkFail,
			in:     with(true, peerDNSResult{Network: "udp", Answer: answer(dns.RcodeSuccess)}, peerDNSResult{Network: "tcp", Err: timeout}),
			detail: []string{"TCP: i/o timeout", "UDP NOERROR"}, next: []string{"nft add rule"}},
		{name: "no handshake", status: checkFail,
			in:     with(false, peerDNSResult{Network: "udp", Err: timeout}, peerDNSResult{Network: "tcp", Err: timeout}),
			detail: []string{"no WireGuard handshake", "127.0.0.1:51820"}, next: []string{"udp dport 51820"}},
		{name: "nothing asked", status: checkFail, in: with(true), detail: []string{"gets no answer"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := peerDNSCheck(tc.in)
			if c.Status != tc.status || c.Name != peerDNSName {
				t.Fatalf("got %+v, want status %s", c, tc.status)
			}
			for _, s := range tc.detail {
				if !strings.Contains(c.Detail, s) {
					t.Errorf("detail %q lacks %q", c.Detail, s)
				}
			}
			for _, s := range tc.next {
				if !strings.Contains(c.Next, s) {
					t.Errorf("next %q lacks %q", c.Next, s)
				}
			}
		})
	}
}
