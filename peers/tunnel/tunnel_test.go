package tunnel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/dogwood/dogwood/peers/config"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type env struct {
	gw   *gateway
	cfg  config.Config
	logs *syncBuffer
}

// newEnv starts a gateway and returns the client config for it. Logs of both
// sides are printed only if the test fails.
func newEnv(t *testing.T) *env {
	t.Helper()
	priv, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs)
		}
	})
	gw := startGateway(t, priv.PublicKey(), logs)
	return &env{gw: gw, cfg: clientConfig(t, priv, gw), logs: logs}
}

func (e *env) up(t *testing.T, opts Options) *Tunnel {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("side", "client")
	}
	if opts.Bind == nil {
		opts.Bind = &loopbackBind{}
	}
	tun, err := Up(context.Background(), e.cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tun.Close() })
	return tun
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestDig(t *testing.T) {
	e := newEnv(t)
	tun := e.up(t, Options{})
	ctx := testCtx(t)

	r, err := tun.Dig(ctx, "web.internal", dns.TypeAAAA)
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 {
		t.Fatalf("web.internal: %v", r)
	}
	if got := r.Answer[0].(*dns.AAAA).AAAA.String(); got != webAddr.String() {
		t.Errorf("web.internal AAAA = %s, want %s", got, webAddr)
	}

	// NXDOMAIN is an answer, not an error: dig prints it.
	r, err = tun.Dig(ctx, "nope.internal.", dns.TypeAAAA)
	if err != nil || r.Rcode != dns.RcodeNameError {
		t.Errorf("nope.internal: %v, %v", r, err)
	}

	// A UDP answer over the EDNS buffer comes back truncated; Dig must
	// repeat the query over TCP and return everything.
	tcpBefore := e.gw.tcpQueries.Load()
	r, err = tun.Dig(ctx, "big.internal", dns.TypeAAAA)
	if err != nil {
		t.Fatal(err)
	}
	if r.Truncated || len(r.Answer) != bigCount {
		t.Errorf("big.internal: TC=%v, %d answers, want %d", r.Truncated, len(r.Answer), bigCount)
	}
	if e.gw.tcpQueries.Load() == tcpBefore {
		t.Error("big.internal was not retried over TCP")
	}

	if _, err := tun.Dig(ctx, "bad name..internal", dns.TypeAAAA); err == nil {
		t.Error("Dig accepted an invalid name")
	}
}

// TestDigOneShot goes through the package-level helper, i.e. the default
// options and the default (real UDP) bind the CLI uses; the only peer
// address is 127.0.0.1.
func TestDigOneShot(t *testing.T) {
	e := newEnv(t)
	r, err := Dig(testCtx(t), e.cfg, "web.internal", dns.TypeAAAA)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answer) != 1 {
		t.Fatalf("answer: %v", r)
	}
}

func TestDigTimesOutWithoutGateway(t *testing.T) {
	e := newEnv(t)
	cfg := e.cfg
	// A gateway key nobody holds: handshakes never complete.
	other, _ := wgtypes.GeneratePrivateKey()
	cfg.PublicKey = other.PublicKey()
	tun, err := Up(context.Background(), cfg, Options{Bind: &loopbackBind{}, DNSTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer tun.Close()
	start := time.Now()
	_, err = tun.Dig(testCtx(t), "web.internal", dns.TypeAAAA)
	if err == nil {
		t.Fatal("Dig through a dead tunnel succeeded")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Dig took %v, want it bounded by the DNS timeout", d)
	}
}

func TestResolve(t *testing.T) {
	e := newEnv(t)
	tun := e.up(t, Options{})
	ctx := testCtx(t)
	for in, want := range map[string]string{
		"web.internal":                   webAddr.String(),
		"fdaa:0:18::3":                   "fdaa:0:18::3",
		"[fdaa:0:18:a7b:7d:f066:b83b:2]": webAddr.String(),
	} {
		got, err := tun.Resolve(ctx, in)
		if err != nil || len(got) != 1 || got[0].String() != want {
			t.Errorf("Resolve(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	if _, err := tun.Resolve(ctx, "nope.internal"); err == nil || !strings.Contains(err.Error(), "NXDOMAIN") {
		t.Errorf("Resolve(nope.internal) error = %v", err)
	}
	if _, err := tun.Resolve(ctx, "empty.internal"); !errors.Is(err, errNoAddress) {
		t.Errorf("Resolve(empty.internal) error = %v", err)
	}
}

func TestPing(t *testing.T) {
	e := newEnv(t)
	tun := e.up(t, Options{PingInterval: 20 * time.Millisecond, PingWait: 3 * time.Second})
	ctx := testCtx(t)

	var out bytes.Buffer
	if err := tun.Ping(ctx, "web.internal", 3, &out); err != nil {
		t.Fatalf("%v\n%s", err, &out)
	}
	s := out.String()
	for _, want := range []string{
		"PING web.internal (" + webAddr.String() + "): 56 data bytes\n",
		"64 bytes from " + webAddr.String() + ": icmp_seq=1 time=",
		"icmp_seq=2 ", "icmp_seq=3 ",
		"3 packets transmitted, 3 received, 0% packet loss\n",
		"rtt min/avg/max = ",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("ping output lacks %q:\n%s", want, s)
		}
	}

	out.Reset()
	if err := tun.Ping(ctx, dnsAddr.String(), 1, &out); err != nil {
		t.Fatalf("ping literal address: %v\n%s", err, &out)
	}
}

func TestPingNoReply(t *testing.T) {
	e := newEnv(t)
	tun := e.up(t, Options{PingInterval: 20 * time.Millisecond, PingWait: 200 * time.Millisecond})
	var out bytes.Buffer
	err := tun.Ping(testCtx(t), "dead.internal", 2, &out)
	if err == nil || !strings.Contains(err.Error(), "no reply from "+deadAddr.String()) {
		t.Fatalf("error = %v\n%s", err, &out)
	}
	if !strings.Contains(out.String(), "2 packets transmitted, 0 received, 100% packet loss") {
		t.Errorf("output:\n%s", &out)
	}
	if err := tun.Ping(testCtx(t), "nope.internal", 1, io.Discard); err == nil {
		t.Error("ping of an unknown name succeeded")
	}
}

// With count 0, ping runs until cancelled (Ctrl-C) and then summarises.
func TestPingUntilCancelled(t *testing.T) {
	e := newEnv(t)
	tun := e.up(t, Options{PingInterval: 20 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	if err := tun.Ping(ctx, "web.internal", 0, &out); err != nil {
		t.Fatalf("%v\n%s", err, &out)
	}
	var sent, recv int
	i := strings.Index(out.String(), "packets transmitted")
	if i < 0 {
		t.Fatalf("no summary:\n%s", &out)
	}
	line := out.String()[strings.LastIndex(out.String()[:i], "\n")+1:]
	fmt.Sscanf(line, "%d packets transmitted, %d received", &sent, &recv)
	if sent < 3 || recv < 3 {
		t.Errorf("sent %d received %d in 300ms at 20ms interval:\n%s", sent, recv, &out)
	}
}

func TestProxy(t *testing.T) {
	e := newEnv(t)
	tun := e.up(t, Options{})
	ctx, cancel := context.WithCancel(testCtx(t))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- tun.ServeProxy(ctx, ln, "web.internal", webPort) }()

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 60 * time.Second}
	base := "http://" + ln.Addr().String()
	get := func(path string) string {
		t.Helper()
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// The server sees the peer's own 6PN address as the source.
	if got, want := get("/"), fmt.Sprintf("hello from web, you are [%s]:", clientAddr); !strings.HasPrefix(got, want) {
		t.Errorf("GET / = %q, want prefix %q", got, want)
	}
	if got := get("/big"); len(got) != bigBody {
		t.Errorf("GET /big returned %d bytes, want %d", len(got), bigBody)
	}

	// Several connections at once.
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			resp, err := client.Get(base + "/big")
			if err == nil {
				var n int64
				n, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && n != bigBody {
					err = fmt.Errorf("short body: %d", n)
				}
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}

	// A connection held open must not keep the proxy from stopping.
	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	time.Sleep(50 * time.Millisecond) // let the proxy dial the far side

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("ServeProxy after cancel = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeProxy did not return after cancel")
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("listener still accepting after cancel")
	}
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		t.Errorf("held connection not closed on cancel: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// A name that does not resolve, or a port nobody listens on, closes the
// local connection instead of hanging it.
func TestProxyUnreachableTarget(t *testing.T) {
	e := newEnv(t)
	tun := e.up(t, Options{DialTimeout: 2 * time.Second})
	for _, tc := range []struct {
		name string
		port int
	}{{"nope.internal", webPort}, {"web.internal", webPort + 1}} {
		ctx, cancel := context.WithCancel(testCtx(t))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- tun.ServeProxy(ctx, ln, tc.name, tc.port) }()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("%s:%d: read = %d, %v; want EOF", tc.name, tc.port, n, err)
		}
		c.Close()
		cancel()
		<-served
	}
}

func TestProxyListen(t *testing.T) {
	e := newEnv(t)
	logs := &syncBuffer{}
	tun := e.up(t, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ctx, cancel := context.WithCancel(testCtx(t))
	served := make(chan error, 1)
	go func() { served <- tun.Proxy(ctx, "127.0.0.1:0", "web.internal", webPort) }()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "proxy listening") {
		if time.Now().After(deadline) {
			t.Fatalf("no listening log line; logs:\n%s", logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "addr=127.0.0.1:") || !strings.Contains(logs.String(), "target=web.internal:8080") {
		t.Errorf("listening log line: %s", logs)
	}
	cancel()
	if err := <-served; err != nil {
		t.Error(err)
	}
	if err := tun.Proxy(testCtx(t), "127.0.0.1:0", "web.internal", 0); err == nil {
		t.Error("Proxy accepted remote port 0")
	}
}

func TestUAPIConfig(t *testing.T) {
	priv, _ := wgtypes.ParseKey("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=")
	pub, _ := wgtypes.ParseKey("xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=")
	c, err := config.New(priv, clientAddr, dnsAddr, pub, network, "[2001:db8::10]:51820")
	if err != nil {
		t.Fatal(err)
	}
	got := uapiConfig(c, netip.MustParseAddrPort("[2001:db8::10]:51820"))
	want := "private_key=c809f3e5317e9575c9b5ed78b638b7ce530dabe85ddab614220241801ddf0669\n" +
		"replace_peers=true\n" +
		"public_key=c532010" + "39adba14be71f886da1d8dbe9eebded08cb111b75340078999aa9f038\n" +
		"endpoint=[2001:db8::10]:51820\n" +
		"persistent_keepalive_interval=15\n" +
		"replace_allowed_ips=true\n" +
		"allowed_ip=fdaa:0:18::/48\n"
	if got != want {
		t.Errorf("uapi:\n%s\nwant:\n%s", got, want)
	}
}

// A config without DNS (trimmed by hand) still resolves through the
// network's fdaa:<net>::3, derived from the peer's own address.
func TestDNSDerivedFromAddress(t *testing.T) {
	e := newEnv(t)
	e.cfg.DNS = nil
	tun := e.up(t, Options{})
	r, err := tun.Dig(testCtx(t), "web.internal", dns.TypeAAAA)
	if err != nil || len(r.Answer) != 1 {
		t.Fatalf("%v, %v", r, err)
	}
}

func TestUpRejectsBadConfig(t *testing.T) {
	if _, err := Up(context.Background(), config.Config{}, Options{}); err == nil {
		t.Fatal("Up accepted an empty config")
	}
}

// TestBackToBackTunnels is `dogwood dig --config F … && dogwood ping --config F …`:
// two tunnels with one key, the second started right after the first. The gateway
// drops the second's first handshake initiation (WireGuard's flood and replay
// protection: one initiation per peer per ~20 ms); the tunnel must re-initiate at
// once rather than after wireguard-go's 5 s REKEY_TIMEOUT.
func TestBackToBackTunnels(t *testing.T) {
	e := newEnv(t)
	first := e.up(t, Options{})
	if _, err := first.Dig(testCtx(t), "web.internal", dns.TypeAAAA); err != nil {
		t.Fatal(err)
	}
	first.Close()
	second := e.up(t, Options{DNSTimeout: 700 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := second.Dig(ctx, "web.internal", dns.TypeAAAA); err != nil {
		t.Fatalf("second tunnel right after the first: %v (after %v)", err, time.Since(start))
	}
}

// TestExchangeOnceAndHandshaked: one query over each transport, reaching the
// gateway's DNS; a tunnel whose gateway never answers reports no handshake and
// fails its query within the DNS timeout.
func TestExchangeOnceAndHandshaked(t *testing.T) {
	e := newEnv(t)
	tun := e.up(t, Options{})
	ctx := testCtx(t)
	if !tun.Handshaked() {
		t.Error("Handshaked is false after Up with a live gateway")
	}
	for _, network := range []string{"udp", "tcp"} {
		tcpBefore := e.gw.tcpQueries.Load()
		m := new(dns.Msg)
		m.SetQuestion("web.internal.", dns.TypeAAAA)
		r, err := tun.ExchangeOnce(ctx, m, network)
		if err != nil || len(r.Answer) != 1 {
			t.Fatalf("%s: %v %v", network, r, err)
		}
		if got := e.gw.tcpQueries.Load() > tcpBefore; got != (network == "tcp") {
			t.Errorf("%s: the gateway saw a TCP query: %v", network, got)
		}
	}
	if _, err := tun.ExchangeOnce(ctx, new(dns.Msg), "sctp"); err == nil {
		t.Error("ExchangeOnce accepted network sctp")
	}

	cfg := e.cfg
	other, _ := wgtypes.GeneratePrivateKey()
	cfg.PublicKey = other.PublicKey()
	dead, err := Up(context.Background(), cfg, Options{Bind: &loopbackBind{}, DNSTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	if dead.Handshaked() {
		t.Error("Handshaked is true with a gateway that never answers")
	}
	m := new(dns.Msg)
	m.SetQuestion("web.internal.", dns.TypeAAAA)
	if _, err := dead.ExchangeOnce(ctx, m, "udp"); err == nil {
		t.Error("ExchangeOnce through a dead tunnel succeeded")
	}
}
