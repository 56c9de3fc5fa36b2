// Package dnstest owns the catalogs that the DNS packages' tests and benchmarks
// share: a small fixture that exercises every rule of SPEC §4, and a generator for
// large catalogs.
package dnstest

import (
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/sixpn"
)

// Network ids of the fixture.
const (
	NetA uint32 = 0x18       // acme/default: web, api, big, peers alice and bob
	NetB uint32 = 0x19       // acme/staging: secret, peer carol
	NetC uint32 = 0xdeadbeef // other/default: other
)

// Host ids of the fixture.
const (
	HostSelf uint32 = 0x0a7b007d // h-ord1, ord, alive, the answering host
	HostAMS  uint32 = 0x00000b01 // h-ams, alive
	HostORD2 uint32 = 0x00000c01 // h-ord2, ord, suspect
	HostSYD  uint32 = 0x00000d01 // h-syd, failed
	HostFRA  uint32 = 0x00000e01 // h-fra, left
	HostLHR  uint32 = 0x00000f01 // h-lhr, alive, no machines
)

// Machine ids of the fixture's web app.
const (
	WebOrd  = "0000000000000a" // h-ord1 started, group app, role=primary, _http._tcp 8080
	WebAms  = "0000000000000b" // h-ams started, group worker, role=replica, _http._tcp 8081
	WebOrd2 = "0000000000000c" // h-ord2 (suspect) started, group app
	WebSyd  = "0000000000000d" // h-syd (failed) started
	WebStop = "0000000000000e" // h-ams stopped, group app, _grpc._tcp 9000
	APIStop = "0000000000000f" // api's only machine, stopped
	Secret  = "00000000000010" // secret (NetB) on h-ord1
	Other   = "00000000000011" // other (NetC) on h-ams
)

// BigN is the number of started machines of the "big" app, enough to overflow any UDP
// buffer we advertise.
const BigN = 60

// Addr returns the address a fixture machine gets from its host and an index.
func Addr(net, host uint32, i int) netip.Addr {
	return sixpn.MachineAddr(net, host, sixpn.MinMachineField+uint32(i))
}

// Fixture returns the shared test catalog, seen from h-ord1.
func Fixture() *catalog.Snapshot {
	return FixtureWith(nil)
}

// FixtureWith is Fixture with host statuses overridden (host name → status).
func FixtureWith(status map[string]string) *catalog.Snapshot {
	hosts := []catalog.HostView{
		{Host: catalog.Host{Name: "h-ord1", ID: HostSelf, Region: "ord"}, Status: catalog.StatusAlive},
		{Host: catalog.Host{Name: "h-ams", ID: HostAMS, Region: "ams"}, Status: catalog.StatusAlive},
		{Host: catalog.Host{Name: "h-ord2", ID: HostORD2, Region: "ord"}, Status: catalog.StatusSuspect},
		{Host: catalog.Host{Name: "h-syd", ID: HostSYD, Region: "syd"}, Status: catalog.StatusFailed},
		{Host: catalog.Host{Name: "h-fra", ID: HostFRA, Region: "fra"}, Status: catalog.StatusLeft},
		{Host: catalog.Host{Name: "h-lhr", ID: HostLHR, Region: "lhr"}, Status: catalog.StatusAlive},
	}
	for i := range hosts {
		if s, ok := status[hosts[i].Name]; ok {
			hosts[i].Status = s
		}
	}
	byName := map[string]catalog.HostView{}
	for _, h := range hosts {
		byName[h.Name] = h
	}
	orgs := []catalog.Org{{Slug: "acme"}, {Slug: "other"}}
	nets := []catalog.Network{
		{Org: "acme", Name: "default", ID: NetA},
		{Org: "acme", Name: "staging", ID: NetB},
		{Org: "other", Name: "default", ID: NetC},
	}
	apps := []catalog.App{
		{Name: "web", Org: "acme", Network: "default", NetworkID: NetA},
		{Name: "api", Org: "acme", Network: "default", NetworkID: NetA},
		{Name: "big", Org: "acme", Network: "default", NetworkID: NetA},
		{Name: "secret", Org: "acme", Network: "staging", NetworkID: NetB},
		{Name: "other", Org: "other", Network: "default", NetworkID: NetC},
	}
	idx := 0
	mk := func(id, app string, net uint32, host string, state, group string, meta map[string]string, svcs ...catalog.Service) catalog.Machine {
		h := byName[host]
		idx++
		return catalog.Machine{
			ID:           id,
			MachinePlace: &catalog.MachinePlace{App: app, NetworkID: net, Host: host, HostID: h.ID, Region: h.Region},
			Field:        sixpn.MinMachineField + uint32(idx),
			Address:      Addr(net, h.ID, idx),
			MachineAttrs: &catalog.MachineAttrs{State: state, ProcessGroup: group, Metadata: meta, Services: svcs},
		}
	}
	ms := []catalog.Machine{
		mk(WebOrd, "web", NetA, "h-ord1", catalog.StateStarted, "app", map[string]string{"role": "primary"}, catalog.Service{Name: "http", Proto: "tcp", Port: 8080}),
		mk(WebAms, "web", NetA, "h-ams", catalog.StateStarted, "worker", map[string]string{"role": "replica"}, catalog.Service{Name: "http", Proto: "tcp", Port: 8081}),
		mk(WebOrd2, "web", NetA, "h-ord2", catalog.StateStarted, "app", nil),
		mk(WebSyd, "web", NetA, "h-syd", catalog.StateStarted, "app", nil),
		mk(WebStop, "web", NetA, "h-ams", catalog.StateStopped, "app", nil, catalog.Service{Name: "grpc", Proto: "tcp", Port: 9000}),
		mk(APIStop, "api", NetA, "h-ams", catalog.StateStopped, "app", nil),
		mk(Secret, "secret", NetB, "h-ord1", catalog.StateStarted, "app", nil),
		mk(Other, "other", NetC, "h-ams", catalog.StateStarted, "app", nil),
	}
	for i := 0; i < BigN; i++ {
		host := "h-ams"
		if i%2 == 0 {
			host = "h-ord1"
		}
		ms = append(ms, mk(fmt.Sprintf("b%013x", i), "big", NetA, host, catalog.StateStarted, "app", nil))
	}
	peer := func(name string, net uint32, gw string, i int) catalog.Peer {
		h := byName[gw]
		a, _ := sixpn.PeerAddr(net, h.ID, i)
		return catalog.Peer{Name: name, Org: "acme", NetworkID: net, Gateway: gw, GatewayID: h.ID, Region: h.Region, Address: a}
	}
	peers := []catalog.Peer{
		peer("alice", NetA, "h-ord1", 0),
		peer("bob", NetA, "h-ams", 0),
		peer("carol", NetB, "h-ord1", 0),
	}
	s := catalog.Build("h-ord1", hosts, orgs, nets, apps, ms, peers)
	catalog.AddRecords(s, Records())
	s.Seq = seq.Add(1)
	return s
}

// LongTXT is the fixture's TXT record longer than one 255-byte string.
var LongTXT = strings.Repeat("0123456789", 60)

// Records are the fixture's custom records: every type, chains, wildcards, empty
// non-terminals, a loop two hosts could make in a race, and a record that lost a
// race against the app "web" (generated names win).
func Records() []catalog.DNSRecord {
	type r struct {
		net              uint32
		name, typ, value string
		ttl              int
	}
	in := []r{
		{NetA, "db", "AAAA", "fdaa:0:18::db", 30},
		{NetA, "db", "AAAA", "fdaa:0:18::db2", 30},
		{NetA, "db", "A", "10.0.0.7", 30},
		{NetA, "db", "TXT", "owner=data", 60},
		{NetA, "_pg._tcp.db", "SRV", "10 5 5432 db", -1},
		{NetA, "www", "ALIAS", "web", 20},
		{NetA, "www", "TXT", "blue-green", -1},
		{NetA, "blue", "ALIAS", "api", -1},
		{NetA, "near", "ALIAS", "top1.nearest.of.web", -1},
		{NetA, "viadb", "ALIAS", "alias-db", -1},
		{NetA, "dangling", "ALIAS", "nothing-here", -1},
		{NetA, "ext", "CNAME", "db.example.com", 300},
		{NetA, "alias-db", "CNAME", "db", -1},
		{NetA, "chain", "CNAME", "alias-db", -1},
		{NetA, "toweb", "CNAME", "ams.web.internal", -1},
		{NetA, "gone", "CNAME", "nothing-here", -1},
		{NetA, "*.dev", "TXT", "wild", -1},
		{NetA, "*.dev", "AAAA", "fdaa:0:18::d", -1},
		{NetA, "x.dev", "TXT", "explicit", -1},
		{NetA, "a.b.deep", "AAAA", "fdaa:0:18::dee", -1},
		{NetA, "long", "TXT", LongTXT, -1},
		{NetA, "bigalias", "ALIAS", "big", -1},
		{NetA, "bigcname", "CNAME", "big.internal", -1},
		{NetA, "loop1", "ALIAS", "loop2", -1},
		{NetA, "loop2", "ALIAS", "loop1", -1},
		{NetA, "cloop1", "CNAME", "cloop2", -1},
		{NetA, "cloop2", "CNAME", "cloop1", -1},
		{NetA, "web", "TXT", "lost a race", -1},
		{NetB, "secretrec", "AAAA", "fdaa:0:19::1", -1},
	}
	out := make([]catalog.DNSRecord, 0, len(in))
	for _, x := range in {
		d, err := catalog.NormalizeDNSRecord(x.name, x.typ, x.value, x.ttl)
		if err != nil {
			panic(err)
		}
		d.NetworkID, d.Org = x.net, "acme"
		out = append(out, d)
	}
	return out
}

var seq atomic.Uint64

// Near is a fixed Nearness: h-ord2 5 ms, h-ams 30 ms, others unmeasured.
type Near map[string]time.Duration

// RTT implements resolve.Nearness.
func (n Near) RTT(host string) (time.Duration, bool) {
	d, ok := n[host]
	return d, ok
}

// FixtureNear is the Nearness the fixture's tests use.
var FixtureNear = Near{"h-ord2": 5 * time.Millisecond, "h-ams": 30 * time.Millisecond}

// Large describes a generated catalog.
type Large struct {
	Apps, PerApp int
	Regions      []string
	// Records custom records in the same network: 40 % AAAA, 20 % TXT, 20 % ALIAS
	// to an app, 10 % CNAME to an app, 10 % wildcard TXT.
	Records int
}

// RecordName is the owner of generated record i ("rec<i>.internal", or the wildcard
// "*.w<i>.internal"), and a name that record answers.
func RecordName(i int) (owner, query string) {
	if i%10 == 9 {
		return fmt.Sprintf("*.w%d.internal", i), fmt.Sprintf("x.w%d.internal", i)
	}
	n := fmt.Sprintf("rec%d.internal", i)
	return n, n
}

// LargeRecords returns the custom records of l.
func (l Large) LargeRecords() []catalog.DNSRecord {
	out := make([]catalog.DNSRecord, 0, l.Records)
	for i := 0; i < l.Records; i++ {
		owner, _ := RecordName(i)
		app := fmt.Sprintf("app%d.internal", i%max(l.Apps, 1))
		r := catalog.DNSRecord{Org: "acme", Network: "default", NetworkID: NetA, Name: owner, TTL: 5}
		switch i % 10 {
		case 0, 1, 2, 3:
			r.Type, r.Value = "AAAA", sixpn.MachineAddr(NetA, 0xffff, uint32(0x10000+i)).String()
		case 4, 5:
			r.Type, r.Value = "TXT", fmt.Sprintf("owner=team%d", i%37)
		case 6, 7:
			r.Type, r.Value = "ALIAS", app
		case 8:
			r.Type, r.Value = "CNAME", app
		case 9:
			r.Type, r.Value = "TXT", "wild"
		}
		out = append(out, r)
	}
	return out
}

// Build generates one network (NetA, acme/default) with Apps apps named app<i> of
// PerApp started machines each, spread round-robin over one host per region.
func (l Large) Build() *catalog.Snapshot {
	var hosts []catalog.HostView
	for i, r := range l.Regions {
		hosts = append(hosts, catalog.HostView{Host: catalog.Host{Name: "host-" + r, ID: uint32(0x100 + i), Region: r}, Status: catalog.StatusAlive})
	}
	apps := make([]catalog.App, 0, l.Apps)
	ms := make([]catalog.Machine, 0, l.Apps*l.PerApp)
	field := sixpn.MinMachineField
	for a := 0; a < l.Apps; a++ {
		name := fmt.Sprintf("app%d", a)
		apps = append(apps, catalog.App{Name: name, Org: "acme", Network: "default", NetworkID: NetA})
		for m := 0; m < l.PerApp; m++ {
			h := hosts[(a+m)%len(hosts)]
			field++
			ms = append(ms, catalog.Machine{
				ID:           fmt.Sprintf("%014x", uint64(a)<<16|uint64(m)),
				MachinePlace: &catalog.MachinePlace{App: name, NetworkID: NetA, Host: h.Name, HostID: h.ID, Region: h.Region},
				Field:        field,
				Address:      sixpn.MachineAddr(NetA, h.ID, field),
				MachineAttrs: &catalog.MachineAttrs{State: catalog.StateStarted, ProcessGroup: "app"},
			})
		}
	}
	s := catalog.Build(hosts[0].Name, hosts, []catalog.Org{{Slug: "acme"}},
		[]catalog.Network{{Org: "acme", Name: "default", ID: NetA}}, apps, ms, nil)
	if l.Records > 0 {
		catalog.AddRecords(s, l.LargeRecords())
	}
	s.Seq = seq.Add(1)
	return s
}
