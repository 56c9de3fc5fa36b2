package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/dogwood/dogwood/cmd/dogwood/e2e/needs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/dogwood/dogwood/dns/internal/dnstest"
	"github.com/dogwood/dogwood/dns/resolve"
	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/sixpn"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLogger sends server logs to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

type env struct {
	srv  *Server
	addr string // 127.0.0.1:port, UDP and TCP
	reg  *prometheus.Registry
}

// start runs a server over the fixture on 127.0.0.1:0 and stops it at cleanup.
func start(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := Config{
		Source:     resolve.StaticSource{Snap: dnstest.Fixture()},
		Nearness:   dnstest.FixtureNear,
		Listen:     []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")},
		Upstreams:  []string{},
		ResolvConf: filepath.Join(t.TempDir(), "missing-resolv.conf"),
		Logger:     testLogger(t),
		Registerer: reg,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	addrs := s.Addrs()
	if len(addrs) == 0 {
		t.Fatal("no listener")
	}
	return &env{srv: s, addr: addrs[0].String(), reg: reg}
}

func ecsOpt(prefix string) *dns.EDNS0_SUBNET {
	p := netip.MustParsePrefix(prefix)
	fam := uint16(2)
	if p.Addr().Is4() {
		fam = 1
	}
	return &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: fam, SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()}
}

func msg(name string, qtype uint16, size uint16, opts ...dns.EDNS0) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	if size > 0 || len(opts) > 0 {
		if size == 0 {
			size = 1232
		}
		m.SetEdns0(size, false)
		o := m.IsEdns0()
		o.Option = append(o.Option, opts...)
	}
	return m
}

func exchange(t *testing.T, addr, network string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s: %v", network, m.Question[0].Name, err)
	}
	return r
}

func TestScope(t *testing.T) {
	lo := Listener{Addr: netip.MustParseAddr("127.0.0.1"), Static: true}
	lo6 := Listener{Addr: netip.MustParseAddr("::1"), Static: true}
	any4 := Listener{Addr: netip.MustParseAddr("0.0.0.0"), Static: true}
	pub := Listener{Addr: netip.MustParseAddr("192.0.2.1"), Static: true}
	net18 := Listener{Addr: netip.MustParseAddr("fdaa:0:18::3")}
	machines := Listener{Addr: sixpn.MachineDNS()}
	dynLo := Listener{Addr: netip.MustParseAddr("127.0.0.2")}
	loSrc := netip.MustParseAddr("127.0.0.1")
	pubSrc := netip.MustParseAddr("198.51.100.7")
	src19 := netip.MustParseAddr("fdaa:0:19:a7b:7d:1:0:2")
	cases := []struct {
		name string
		l    Listener
		src  netip.Addr
		ecs  *dns.EDNS0_SUBNET
		net  uint32
		rule Rule
	}{
		{"rule 1: sent to fdaa:<net>::3", net18, src19, nil, 0x18, ByListener},
		{"rule 1 beats ECS", net18, src19, ecsOpt("fdaa:0:20::/48"), 0x18, ByListener},
		{"fdaa::3: network from source", machines, src19, nil, 0x19, BySource},
		{"fdaa::3 with non-6PN source", machines, pubSrc, nil, 0, Refused},
		{"rule 2 on a loopback listener", lo, src19, ecsOpt("fdaa:0:18::/48"), 0x19, BySource},
		{"rule 3: loopback + ECS /48", lo, loSrc, ecsOpt("fdaa:0:18::/48"), 0x18, BySubnet},
		{"rule 3: ::1 + ECS /64", lo6, netip.MustParseAddr("::1"), ecsOpt("fdaa:0:18:1::/64"), 0x18, BySubnet},
		{"rule 3: ECS /47 too short", lo, loSrc, ecsOpt("fdaa:0:18::/47"), 0, Refused},
		{"rule 3: ECS outside 6PN", lo, loSrc, ecsOpt("fd00:0:18::/48"), 0, Refused},
		{"rule 3: ECS network 0", lo, loSrc, ecsOpt("fdaa::/48"), 0, Refused},
		{"rule 3: ECS IPv4", lo, loSrc, ecsOpt("10.0.0.0/24"), 0, Refused},
		{"ECS on a public listener grants nothing", pub, pubSrc, ecsOpt("fdaa:0:18::/48"), 0, Refused},
		{"ECS on a wildcard listener from outside", any4, pubSrc, ecsOpt("fdaa:0:18::/48"), 0, Refused},
		{"ECS on a wildcard listener from loopback", any4, loSrc, ecsOpt("fdaa:0:18::/48"), 0x18, BySubnet},
		{"ECS on a dynamic (non --dns-listen) listener", dynLo, loSrc, ecsOpt("fdaa:0:18::/48"), 0, Refused},
		{"rule 4: loopback without ECS", lo, loSrc, nil, 0, Refused},
	}
	for _, c := range cases {
		n, r := Scope(c.l, c.src, c.ecs)
		if n != c.net || r != c.rule {
			t.Errorf("%s: got net %#x rule %d, want %#x rule %d", c.name, n, r, c.net, c.rule)
		}
	}
}

func TestServeUDPAndTCP(t *testing.T) {
	e := start(t, nil)
	ecs := ecsOpt("fdaa:0:18::/48")

	r := exchange(t, e.addr, "udp", msg("web.internal", dns.TypeAAAA, 1232, ecs))
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 3 {
		t.Fatalf("web.internal: %v", r)
	}
	opt := r.IsEdns0()
	if opt == nil || opt.UDPSize() != 1232 {
		t.Fatalf("EDNS not echoed: %v", r)
	}
	var echoed *dns.EDNS0_SUBNET
	for _, o := range opt.Option {
		if s, ok := o.(*dns.EDNS0_SUBNET); ok {
			echoed = s
		}
	}
	if echoed == nil || echoed.SourceScope != 48 || echoed.SourceNetmask != 48 {
		t.Fatalf("ECS echo: %v", opt)
	}

	// No ECS on the loopback listener: REFUSED (rule 4), also for external names;
	// a client that speaks EDNS is told why.
	for _, name := range []string{"web.internal", "example.com"} {
		if r := exchange(t, e.addr, "udp", msg(name, dns.TypeAAAA, 0)); r.Rcode != dns.RcodeRefused {
			t.Fatalf("%s without ECS: %s", name, dns.RcodeToString[r.Rcode])
		}
		r := exchange(t, e.addr, "udp", msg(name, dns.TypeAAAA, 1232))
		var ede *dns.EDNS0_EDE
		if opt := r.IsEdns0(); opt != nil {
			for _, o := range opt.Option {
				if x, ok := o.(*dns.EDNS0_EDE); ok {
					ede = x
				}
			}
		}
		if r.Rcode != dns.RcodeRefused || ede == nil || ede.InfoCode != dns.ExtendedErrorCodeProhibited || !strings.Contains(ede.ExtraText, "EDNS Client Subnet") {
			t.Fatalf("%s with EDNS, without ECS: %v", name, r)
		}
	}

	// Another network's names are invisible.
	r = exchange(t, e.addr, "udp", msg("web.internal", dns.TypeAAAA, 1232, ecsOpt("fdaa:0:19::/48")))
	if r.Rcode != dns.RcodeNameError {
		t.Fatalf("web.internal from NetB: %v", r)
	}

	// Truncation against the client's buffer; TCP gets everything.
	r = exchange(t, e.addr, "udp", msg("big.internal", dns.TypeAAAA, 1232, ecs))
	if !r.Truncated || len(r.Answer) == dnstest.BigN {
		t.Fatalf("UDP big: tc=%v answers=%d", r.Truncated, len(r.Answer))
	}
	r = exchange(t, e.addr, "udp", msg("big.internal", dns.TypeAAAA, 4096, ecs))
	if !r.Truncated {
		t.Fatalf("UDP big with a 4096 buffer must still respect our 1232 cap")
	}
	r = exchange(t, e.addr, "tcp", msg("big.internal", dns.TypeAAAA, 1232, ecs))
	if r.Truncated || len(r.Answer) != dnstest.BigN {
		t.Fatalf("TCP big: tc=%v answers=%d", r.Truncated, len(r.Answer))
	}
	// 512 without EDNS: api has no records, web fits; _instances (~5 KB) does not.
	// Without EDNS there is no ECS, so use a 6PN-sourced scope via TCP? No: use a
	// 512-byte EDNS buffer, which the server treats like no EDNS.
	r = exchange(t, e.addr, "udp", msg("all._instances.internal", dns.TypeTXT, 512, ecs))
	if !r.Truncated || len(r.Answer) != 0 {
		t.Fatalf("512 TXT: tc=%v answers=%d", r.Truncated, len(r.Answer))
	}

	// BADVERS for EDNS version 1.
	m := msg("web.internal", dns.TypeAAAA, 1232, ecs)
	m.IsEdns0().SetVersion(1)
	if r := exchange(t, e.addr, "udp", m); r.Rcode != dns.RcodeBadVers {
		t.Fatalf("EDNS version 1: rcode %d", r.Rcode)
	}

	// Metrics moved.
	if v := testutil.ToFloat64(e.srv.met.queries.WithLabelValues("AAAA", "NOERROR")); v < 1 {
		t.Errorf("queries_total{AAAA,NOERROR} = %v", v)
	}
	if v := testutil.ToFloat64(e.srv.met.queries.WithLabelValues("AAAA", "REFUSED")); v < 1 {
		t.Errorf("queries_total{AAAA,REFUSED} = %v", v)
	}
	if n, err := testutil.GatherAndCount(e.reg, "dogwood_dns_request_duration_seconds"); err != nil || n == 0 {
		t.Errorf("latency histogram: %d series, %v", n, err)
	}
}

// raw sends bytes over UDP and returns the reply, or nil after a short wait.
func raw(t *testing.T, addr string, b []byte) []byte {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

func TestMalformed(t *testing.T) {
	e := start(t, nil)
	ecs := ecsOpt("fdaa:0:18::/48")
	pack := func(m *dns.Msg) []byte {
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rcodeOf := func(b []byte) int {
		if b == nil {
			return -1
		}
		var m dns.Msg
		if err := m.Unpack(b); err != nil {
			t.Fatalf("unparseable reply: %v", err)
		}
		return m.Rcode
	}

	two := msg("web.internal", dns.TypeAAAA, 1232, ecs)
	two.Question = append(two.Question, dns.Question{Name: "api.internal.", Qtype: dns.TypeAAAA, Qclass: dns.ClassINET})
	none := msg("web.internal", dns.TypeAAAA, 1232, ecs)
	none.Question = nil
	notify := msg("web.internal", dns.TypeSOA, 1232, ecs)
	notify.Opcode = dns.OpcodeNotify
	update := msg("web.internal", dns.TypeSOA, 1232, ecs)
	update.Opcode = dns.OpcodeUpdate
	chaos := msg("version.bind", dns.TypeTXT, 1232, ecs)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	axfr := msg("internal", dns.TypeAXFR, 1232, ecs)
	anyq := msg("web.internal", dns.TypeANY, 1232, ecs)
	long := msg(strings.Repeat("a.", 120)+"internal", dns.TypeAAAA, 1232, ecs)
	unknownType := msg("web.internal", 65000, 1232, ecs)
	resp := msg("web.internal", dns.TypeAAAA, 1232, ecs)
	resp.Response = true

	cases := []struct {
		name  string
		b     []byte
		rcode int // -1: no reply
	}{
		{"empty", nil, -1},
		{"short", []byte{1, 2, 3}, -1},
		{"header only, qdcount 1", []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}, dns.RcodeFormatError},
		{"two questions", pack(two), dns.RcodeFormatError},
		{"no question", pack(none), dns.RcodeFormatError},
		{"notify", pack(notify), dns.RcodeNotImplemented},
		{"update", pack(update), dns.RcodeNotImplemented},
		{"CH class, not ours: forwarded, no upstream", pack(chaos), dns.RcodeServerFailure},
		{"axfr", pack(axfr), dns.RcodeRefused},
		{"any", pack(anyq), dns.RcodeSuccess},
		{"long name", pack(long), dns.RcodeNameError},
		{"unknown type", pack(unknownType), dns.RcodeSuccess},
		{"a response", pack(resp), -1},
		{"garbage (reads as opcode 10)", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), dns.RcodeNotImplemented},
	}
	for _, c := range cases {
		if got := rcodeOf(raw(t, e.addr, c.b)); got != c.rcode {
			t.Errorf("%s: rcode %d, want %d", c.name, got, c.rcode)
		}
	}
	// Truncated packets of a valid query, every length.
	full := pack(msg("web.internal", dns.TypeAAAA, 1232, ecs))
	uc, err := net.Dial("udp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(full); i++ {
		uc.Write(full[:i])
	}
	uc.Close()
	// Garbage over TCP: a length prefix promising more than is sent, then close.
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte{0xff, 0xff, 1, 2, 3})
	c.Close()
	// Still alive.
	if r := exchange(t, e.addr, "udp", msg("web.internal", dns.TypeAAAA, 1232, ecs)); len(r.Answer) != 3 {
		t.Fatalf("server unhealthy after garbage: %v", r)
	}
}

// upstream runs a fake resolver on 127.0.0.1:0 answering every A query with ip.
func upstream(t *testing.T, ip string, sawECS *bool) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		if o := r.IsEdns0(); o != nil && sawECS != nil {
			for _, op := range o.Option {
				if op.Option() == dns.EDNS0SUBNET {
					mu.Lock()
					*sawECS = true
					mu.Unlock()
				}
			}
		}
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP(ip)})
		w.WriteMsg(m)
	})
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { close(started) }}
	done := make(chan struct{})
	go func() { defer close(done); srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { srv.Shutdown(); <-done })
	return pc.LocalAddr().String()
}

// deadUpstream returns a loopback UDP port nobody listens on.
func deadUpstream(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := pc.LocalAddr().String()
	pc.Close()
	return a
}

// blackhole listens and never answers.
func blackhole(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

func TestForwarding(t *testing.T) {
	var sawECS bool
	good := upstream(t, "192.0.2.55", &sawECS)
	e := start(t, func(c *Config) {
		c.Upstreams = []string{deadUpstream(t), blackhole(t), good}
		c.ForwardAttempt = 300 * time.Millisecond
		c.ForwardTimeout = 2 * time.Second
	})
	ecs := ecsOpt("fdaa:0:18::/48")
	for i := 0; i < 3; i++ {
		start := time.Now()
		r := exchange(t, e.addr, "udp", msg("example.com", dns.TypeA, 1232, ecs))
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.55" {
			t.Fatalf("forwarded answer: %v", r)
		}
		if i > 0 && time.Since(start) > 200*time.Millisecond {
			t.Errorf("query %d took %v: failover is not sticky", i, time.Since(start))
		}
	}
	if sawECS {
		t.Error("ECS leaked to the upstream")
	}
	r := exchange(t, e.addr, "tcp", msg("example.com", dns.TypeA, 1232, ecs))
	if len(r.Answer) != 0 { // the fake upstream only serves UDP: TCP fails over to SERVFAIL
		t.Logf("tcp forward answered: %v", r.Answer)
	}
	// Reverse names outside 6PN are forwarded too.
	r = exchange(t, e.addr, "udp", msg("1.0.0.127.in-addr.arpa", dns.TypeA, 1232, ecs))
	if len(r.Answer) != 1 {
		t.Fatalf("in-addr.arpa not forwarded: %v", r)
	}
	if v := testutil.ToFloat64(e.srv.met.forwarded); v < 4 {
		t.Errorf("forwarded_total = %v", v)
	}
	if n, _ := testutil.GatherAndCount(e.reg, "dogwood_dns_upstream_failures_total"); n == 0 {
		t.Error("no upstream failures counted")
	}
}

func TestForwardingAllDead(t *testing.T) {
	e := start(t, func(c *Config) {
		c.Upstreams = []string{deadUpstream(t), blackhole(t)}
		c.ForwardAttempt = 200 * time.Millisecond
		c.ForwardTimeout = 1 * time.Second
	})
	startT := time.Now()
	r := exchange(t, e.addr, "udp", msg("example.com", dns.TypeA, 1232, ecsOpt("fdaa:0:18::/48")))
	if r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("want SERVFAIL, got %v", r)
	}
	if d := time.Since(startT); d > 2*time.Second {
		t.Fatalf("SERVFAIL took %v", d)
	}
}

func TestResolvConfDefault(t *testing.T) {
	good := upstream(t, "192.0.2.77", nil)
	host, port, _ := net.SplitHostPort(good)
	path := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(path, []byte("# test\nnameserver "+host+"\noptions ndots:1\n"), 0o644)
	// resolv.conf has no port syntax: use a file with the default port and check parsing,
	// then run the server with the upstream given explicitly on its real port.
	s, err := New(Config{Source: resolve.StaticSource{Snap: dnstest.Fixture()}, ResolvConf: path})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.fwd.Upstreams(); len(got) != 1 || got[0] != host+":53" {
		t.Fatalf("upstreams from resolv.conf: %v", got)
	}
	s.Close()
	e := start(t, func(c *Config) { c.Upstreams = []string{host + ":" + port} })
	r := exchange(t, e.addr, "udp", msg("example.org", dns.TypeA, 1232, ecsOpt("fdaa:0:18::/48")))
	if len(r.Answer) != 1 {
		t.Fatalf("answer %v", r)
	}
}

func TestSyncListeners(t *testing.T) {
	e := start(t, nil)
	// A second loopback address standing in for fdaa:<net>::3 (which needs an interface).
	dyn := netip.MustParseAddrPort("127.0.0.2:0")
	if err := e.srv.SyncListeners([]netip.AddrPort{dyn}); err != nil {
		needs.Skip(t, "cannot bind 127.0.0.2 here: %v", err)
	}
	addrs := e.srv.Addrs()
	if len(addrs) != 2 {
		t.Fatalf("listeners %v", addrs)
	}
	var dynAddr string
	for _, a := range addrs {
		if a.Addr().String() == "127.0.0.2" {
			dynAddr = a.String()
		}
	}
	// A dynamic listener is not a --dns-listen one: ECS must not scope there.
	if r := exchange(t, dynAddr, "udp", msg("web.internal", dns.TypeAAAA, 1232, ecsOpt("fdaa:0:18::/48"))); r.Rcode != dns.RcodeRefused {
		t.Fatalf("ECS honoured on a dynamic listener: %v", r)
	}
	// Same set again: nothing moves.
	if err := e.srv.SyncListeners([]netip.AddrPort{dyn}); err != nil {
		t.Fatal(err)
	}
	if len(e.srv.Addrs()) != 2 {
		t.Fatal("resync changed listeners")
	}
	// Drop it: the static one stays and serves.
	if err := e.srv.SyncListeners(nil); err != nil {
		t.Fatal(err)
	}
	if got := e.srv.Addrs(); len(got) != 1 || got[0].String() != e.addr {
		t.Fatalf("after removal: %v", got)
	}
	c := &dns.Client{Net: "tcp", Timeout: 500 * time.Millisecond}
	if _, _, err := c.Exchange(msg("web.internal", dns.TypeAAAA, 0), dynAddr); err == nil {
		t.Fatal("removed listener still answers")
	}
	if r := exchange(t, e.addr, "udp", msg("web.internal", dns.TypeAAAA, 1232, ecsOpt("fdaa:0:18::/48"))); len(r.Answer) != 3 {
		t.Fatal("static listener broken")
	}
}

func TestSyncListenersFreebind(t *testing.T) {
	// fdaa:<net>::3 is bound before it exists on any interface (IPV6_FREEBIND).
	e := start(t, nil)
	a := netip.AddrPortFrom(sixpn.NetworkDNS(0x18), 0)
	if err := e.srv.SyncListeners([]netip.AddrPort{a}); err != nil {
		needs.Skip(t, "no IPv6 freebind here: %v", err)
	}
	found := false
	for _, b := range e.srv.Addrs() {
		found = found || b.Addr() == a.Addr()
	}
	if !found {
		t.Fatalf("listener on %s missing: %v", a, e.srv.Addrs())
	}
	if err := e.srv.SyncListeners(nil); err != nil {
		t.Fatal(err)
	}
}

func TestRespondScopes(t *testing.T) {
	// Rules 1 and 2 through the full handler path, without sockets.
	e := start(t, nil)
	ask := func(l Listener, src string, name string) *dns.Msg {
		out, _, _, _ := e.srv.respond(context.Background(), nil, msg(name, dns.TypeAAAA, 0), l, netip.MustParseAddr(src), false)
		var m dns.Msg
		if err := m.Unpack(out); err != nil {
			t.Fatal(err)
		}
		return &m
	}
	net18 := Listener{Addr: sixpn.NetworkDNS(dnstest.NetA)}
	machines := Listener{Addr: sixpn.MachineDNS()}
	peer := "fdaa:0:18:a7b:7d:0:a:2"
	secret := "fdaa:0:19:a7b:7d:1:7:2"
	if m := ask(net18, peer, "web.internal"); len(m.Answer) != 3 {
		t.Fatalf("peer via fdaa:0:18::3: %v", m)
	}
	if m := ask(machines, secret, "secret.internal"); len(m.Answer) != 1 {
		t.Fatalf("machine of NetB via fdaa::3: %v", m)
	}
	if m := ask(machines, secret, "web.internal"); m.Rcode != dns.RcodeNameError {
		t.Fatalf("NetB machine sees NetA: %v", m)
	}
	if m := ask(machines, "192.0.2.1", "web.internal"); m.Rcode != dns.RcodeRefused {
		t.Fatalf("non-6PN source on fdaa::3: %v", m)
	}
}

func TestDigAndFormat(t *testing.T) {
	e := start(t, nil)
	snap := dnstest.Fixture()
	id, err := NetworkID(snap, "acme", "")
	if err != nil || id != dnstest.NetA {
		t.Fatalf("NetworkID: %#x %v", id, err)
	}
	if _, err := NetworkID(snap, "acme", "nope"); !errors.Is(err, ErrNoNetwork) {
		t.Fatalf("missing network: %v", err)
	}
	m, err := e.srv.Dig(context.Background(), dnstest.NetA, "big.internal", dns.TypeAAAA)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Answer) != dnstest.BigN || m.Truncated {
		t.Fatalf("dig big: %d answers", len(m.Answer))
	}
	m, err = e.srv.Dig(context.Background(), dnstest.NetA, "web.internal", DefaultType("web.internal"))
	if err != nil {
		t.Fatal(err)
	}
	out := Format(m, false)
	for _, want := range []string{";; ->>HEADER<<- opcode: QUERY, status: NOERROR", ";; flags: qr aa rd ra; QUERY: 1, ANSWER: 3",
		";; QUESTION SECTION:\n;web.internal.", ";; ANSWER SECTION:\nweb.internal.\t5\tIN\tAAAA\tfdaa:0:18:"} {
		if !strings.Contains(out, want) {
			t.Errorf("Format output lacks %q:\n%s", want, out)
		}
	}
	lines := strings.Split(strings.TrimSpace(Format(m, true)), "\n")
	sort.Strings(lines)
	var want []string
	for _, id := range []string{dnstest.WebOrd, dnstest.WebAms, dnstest.WebOrd2} {
		want = append(want, snap.Machine("web", id).Address.String())
	}
	sort.Strings(want)
	if strings.Join(lines, ",") != strings.Join(want, ",") {
		t.Errorf("short: %q want %q", lines, want)
	}
	m, _ = e.srv.Dig(context.Background(), dnstest.NetA, "nope.internal", dns.TypeAAAA)
	if out := Format(m, false); !strings.Contains(out, "status: NXDOMAIN") || !strings.Contains(out, ";; AUTHORITY SECTION:\ninternal.\t5\tIN\tSOA") {
		t.Errorf("NXDOMAIN format:\n%s", out)
	}
	if _, err := e.srv.Dig(context.Background(), 0x999, "web.internal", dns.TypeAAAA); !errors.Is(err, ErrNoNetwork) {
		t.Errorf("unknown network: %v", err)
	}
	if _, err := e.srv.Dig(context.Background(), dnstest.NetA, "example.com", dns.TypeA); err == nil {
		t.Error("external name with no upstream must fail")
	}
	for name, want := range map[string]uint16{"vms.web.internal": dns.TypeTXT, "_http._tcp.web.internal": dns.TypeSRV,
		"_apps.internal": dns.TypeTXT, "_records.internal": dns.TypeTXT, "web.internal": dns.TypeAAAA, "1.0.0.127.in-addr.arpa": dns.TypePTR} {
		if got := DefaultType(name); got != want {
			t.Errorf("DefaultType(%s) = %d want %d", name, got, want)
		}
	}
	if tp, err := ParseType("aaaa"); err != nil || tp != dns.TypeAAAA {
		t.Error("ParseType aaaa")
	}
	if _, err := ParseType("bogus"); err == nil {
		t.Error("ParseType bogus")
	}
}

func TestRealDig(t *testing.T) {
	dig, err := exec.LookPath("dig")
	if err != nil {
		needs.Skip(t, "dig not installed (apt-get install bind9-dnsutils)")
	}
	e := start(t, nil)
	host, port, _ := net.SplitHostPort(e.addr)
	run := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, dig, append([]string{"@" + host, "-p", port, "+time=2", "+tries=1"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("dig %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	snap := dnstest.Fixture()
	short := run("+short", "+subnet=fdaa:0:18::/48", "web.internal", "AAAA")
	for _, id := range []string{dnstest.WebOrd, dnstest.WebAms, dnstest.WebOrd2} {
		if a := snap.Machine("web", id).Address.String(); !strings.Contains(short, a) {
			t.Errorf("dig +short lacks %s:\n%s", a, short)
		}
	}
	full := run("+subnet=fdaa:0:18::/48", "web.internal", "AAAA")
	for _, want := range []string{"status: NOERROR", "flags: qr aa rd ra", "ANSWER: 3", "CLIENT-SUBNET: fdaa:0:18::/48/48"} {
		if !strings.Contains(full, want) {
			t.Errorf("dig output lacks %q:\n%s", want, full)
		}
	}
	// The host asking its own loopback listener without naming a network is
	// refused, and told why and what to do (RFC 8914 Extended DNS Error).
	if out := run("web.internal", "AAAA"); !strings.Contains(out, "status: REFUSED") || !strings.Contains(out, "EDE: 18 (Prohibited)") || !strings.Contains(out, "+subnet=") {
		t.Errorf("no subnet: want REFUSED with an EDE saying to name the network:\n%s", out)
	}
	// dig retries over TCP on TC and shows everything.
	out := run("+subnet=fdaa:0:18::/48", "big.internal", "AAAA")
	if !strings.Contains(out, fmt.Sprintf("ANSWER: %d", dnstest.BigN)) {
		t.Errorf("big over dig:\n%s", out)
	}
	out = run("+subnet=fdaa:0:18::/48", "+notcp", "+ignore", "big.internal", "AAAA")
	if !strings.Contains(out, " tc ") && !strings.Contains(out, "flags: qr aa tc") {
		t.Errorf("+ignore should show the truncated UDP answer:\n%s", out)
	}
	out = run("+subnet=fdaa:0:18::/48", "vms.big.internal", "TXT")
	if !strings.Contains(out, "ANSWER: 1") {
		t.Errorf("TXT:\n%s", out)
	}
}

func TestUnknownNetworkRefused(t *testing.T) {
	e := start(t, nil)
	r := exchange(t, e.addr, "udp", msg("web.internal", dns.TypeAAAA, 1232, ecsOpt("fdaa:1234:5678::/48")))
	if r.Rcode != dns.RcodeRefused {
		t.Fatalf("unknown network: %v", r)
	}
}

func TestChangedSignalAndLiveness(t *testing.T) {
	src := &swapSource{}
	src.set(dnstest.Fixture())
	changed := make(chan struct{}, 1)
	e := start(t, func(c *Config) {
		c.Source = src
		c.Changed = changed
	})
	ecs := ecsOpt("fdaa:0:18::/48")
	if r := exchange(t, e.addr, "udp", msg("ams.web.internal", dns.TypeAAAA, 1232, ecs)); len(r.Answer) != 1 {
		t.Fatal(r)
	}
	src.set(dnstest.FixtureWith(map[string]string{"h-ams": catalog.StatusFailed}))
	changed <- struct{}{}
	// Visible on the very next query, whether or not the prebuild ran yet.
	if r := exchange(t, e.addr, "udp", msg("ams.web.internal", dns.TypeAAAA, 1232, ecs)); len(r.Answer) != 0 || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("failed host still answered: %v", r)
	}
}

type swapSource struct {
	mu   sync.Mutex
	snap *catalog.Snapshot
}

func (s *swapSource) set(snap *catalog.Snapshot) { s.mu.Lock(); s.snap = snap; s.mu.Unlock() }
func (s *swapSource) Snapshot() *catalog.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}

// serveRaw mirrors what miekg/dns's server does with a packet before the handler
// (header check, accept func, unpack, FORMERR on failure), then runs our handler.
func serveRaw(s *Server, l Listener, src netip.Addr, tcp bool, b []byte) []byte {
	if len(b) < 12 {
		return nil
	}
	dh := dns.Header{
		Id: binary.BigEndian.Uint16(b), Bits: binary.BigEndian.Uint16(b[2:]),
		Qdcount: binary.BigEndian.Uint16(b[4:]), Ancount: binary.BigEndian.Uint16(b[6:]),
		Nscount: binary.BigEndian.Uint16(b[8:]), Arcount: binary.BigEndian.Uint16(b[10:]),
	}
	switch dns.DefaultMsgAcceptFunc(dh) {
	case dns.MsgIgnore:
		return nil
	case dns.MsgReject, dns.MsgRejectNotImplemented:
		return []byte{} // miekg answers these itself
	}
	var m dns.Msg
	if err := m.Unpack(b); err != nil {
		return []byte{}
	}
	out, _, _, _ := s.respond(context.Background(), nil, &m, l, src, tcp)
	return out
}

// FuzzHandler: nothing a client sends crashes the server or gets a malformed or
// oversized reply, and the packet path the UDP loop runs (fast path first) answers
// byte for byte what miekg/dns's unpacking followed by our handler answers.
func FuzzHandler(f *testing.F) {
	snap := dnstest.Fixture()
	s := serverOn(f, snap) // forwarding to 127.0.0.1:1 is refused at once
	fast := serverOn(f, snap)
	for _, name := range []string{"web.internal", "big.internal", "top2.nearest.of.web.internal", "_http._tcp.web.internal",
		"all._instances.internal", "primary.role.kv._metadata.web.internal", "alice._peer.internal", "internal",
		"2.0.0.0.1.0.0.0.1.0.0.0.d.7.0.0.b.7.a.0.8.1.0.0.0.0.0.0.a.a.d.f.ip6.arpa", "example.com",
		// custom records (dnstest.Records): aliases, chains, loops, wildcards, empty non-terminals
		"www.internal", "chain.internal", "cloop1.internal", "loop1.internal", "bigcname.internal", "a.foo.dev.internal",
		"b.deep.internal", "long.internal", "_records.internal", "_pg._tcp.db.internal", "gone.internal"} {
		for _, q := range []uint16{dns.TypeAAAA, dns.TypeTXT, dns.TypeANY} {
			b, _ := msg(name, q, 1232, ecsOpt("fdaa:0:18::/48")).Pack()
			f.Add(b, false, uint8(0))
			b, _ = msg(name, q, 0).Pack()
			f.Add(b, true, uint8(1))
		}
	}
	listeners := []Listener{
		{Addr: netip.MustParseAddr("127.0.0.1"), Static: true},
		{Addr: sixpn.NetworkDNS(dnstest.NetA)},
		{Addr: sixpn.MachineDNS()},
	}
	srcs := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("fdaa:0:18:a7b:7d:0:a:2"), netip.MustParseAddr("fdaa:0:19:1:2:3:4:2")}
	f.Fuzz(func(t *testing.T, b []byte, tcp bool, sel uint8) {
		l := listeners[int(sel)%len(listeners)]
		src := srcs[int(sel/3)%len(srcs)]
		out := serveRaw(s, l, src, tcp, b)
		got, _, _, _, _ := fast.respondPacket(context.Background(), nil, b, l, src, tcp)
		if len(out) == 0 {
			return
		}
		if !bytes.Equal(got, out) {
			t.Fatalf("the packet path answers differently\ngot  %x\nwant %x", got, out)
		}
		var req, resp dns.Msg
		req.Unpack(b)
		if err := resp.Unpack(out); err != nil {
			t.Fatalf("response does not parse: %v\n%x", err, out)
		}
		if resp.Id != req.Id || !resp.Response {
			t.Fatalf("id/qr: %v", resp.MsgHdr)
		}
		if !tcp {
			limit := 512
			if o := req.IsEdns0(); o != nil {
				limit = min(max(int(o.UDPSize()), 512), 1232)
			}
			if len(out) > limit && resp.Rcode != dns.RcodeServerFailure {
				t.Fatalf("UDP response of %d bytes over limit %d", len(out), limit)
			}
		}
		if req.IsEdns0() != nil && resp.IsEdns0() == nil && resp.Rcode != dns.RcodeFormatError && resp.Rcode != dns.RcodeNotImplemented && resp.Rcode != dns.RcodeServerFailure {
			t.Fatalf("EDNS not echoed: %v", resp)
		}
	})
}

func TestRcodeLabels(t *testing.T) {
	for rc, want := range map[int]string{0: "NOERROR", 3: "NXDOMAIN", 5: "REFUSED", 16: "BADVERS", 4000: "4000"} {
		if got := rcodeLabel(rc); got != want {
			t.Errorf("rcodeLabel(%d) = %s, want %s", rc, got, want)
		}
	}
}

// TestTCPConnectionCaps: one source holding idle TCP connections gets at most
// MaxTCPPerSource of them; another source is still answered over TCP.
func TestTCPConnectionCaps(t *testing.T) {
	e := start(t, func(c *Config) { c.MaxTCPPerSource = 2 })
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	open := 0
	for i := 0; i < 4; i++ {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
		c, err := d.Dial("tcp", e.addr)
		if err != nil {
			continue // reset during the handshake: refused
		}
		held = append(held, c)
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				open++
			}
		}
	}
	if open != 2 {
		t.Errorf("one source kept %d idle connections, want 2", open)
	}
	c := &dns.Client{Net: "tcp", Dialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}, Timeout: time.Second}
	r, _, err := c.Exchange(msg("web.internal", dns.TypeAAAA, 1232, ecsOpt("fdaa:0:18::/48")), e.addr)
	if err != nil || len(r.Answer) != 3 {
		t.Fatalf("another source over TCP: %v %v", r, err)
	}
}
