package tunnel

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"golang.org/x/sys/unix"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/netstack"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/dogwood/dogwood/peers/config"
)

// The test network: network id 0x18, a gateway with host id 0xa7b.
var (
	network    = netip.MustParsePrefix("fdaa:0:18::/48")
	dnsAddr    = netip.MustParseAddr("fdaa:0:18::3")
	webAddr    = netip.MustParseAddr("fdaa:0:18:a7b:7d:f066:b83b:2")
	clientAddr = netip.MustParseAddr("fdaa:0:18:a7b:d6b:0:a:2")
	// An address in the network that nobody owns.
	deadAddr = netip.MustParseAddr("fdaa:0:18:a7b:7d:f066:dead:2")
)

const (
	webPort  = 8080
	bigCount = 100 // AAAA records of big.internal: ~2.8 kB, over any UDP buffer used here
	bigBody  = 1 << 20
)

// gateway plays the Dogwood side without an agent or root: a second
// wireguard-go device whose interface is its own netstack, reachable on a
// UDP socket on 127.0.0.1, serving .internal DNS at fdaa:0:18::3 and HTTP on
// a "machine" address.
type gateway struct {
	pub        wgtypes.Key
	port       uint16
	udpQueries atomic.Int32
	tcpQueries atomic.Int32
}

func startGateway(t *testing.T, clientPub wgtypes.Key, logs io.Writer) *gateway {
	t.Helper()
	priv, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	gw := &gateway{pub: priv.PublicKey()}
	tdev, tnet, err := netstack.CreateNetTUN([]netip.Addr{dnsAddr, webAddr}, nil, DefaultMTU)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("side", "gateway")
	dev := device.NewDevice(tdev, &loopbackBind{}, &device.Logger{
		Verbosef: func(f string, a ...any) { log.Debug(fmt.Sprintf(f, a...)) },
		Errorf:   func(f string, a ...any) { log.Error(fmt.Sprintf(f, a...)) },
	})
	t.Cleanup(dev.Close) // runs last: after the servers below are shut down
	uapi := fmt.Sprintf("private_key=%s\nlisten_port=0\npublic_key=%s\nallowed_ip=%s/128\n",
		hex.EncodeToString(priv[:]), hex.EncodeToString(clientPub[:]), clientAddr)
	if err := dev.IpcSet(uapi); err != nil {
		t.Fatal(err)
	}
	if err := dev.Up(); err != nil {
		t.Fatal(err)
	}
	state, err := dev.IpcGet()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Sscanf(state[strings.Index(state, "listen_port="):], "listen_port=%d", &gw.port); err != nil || gw.port == 0 {
		t.Fatalf("gateway listen port: %v in %q", err, state)
	}

	gw.startDNS(t, tnet)
	gw.startHTTP(t, tnet)
	return gw
}

// dnsHandler answers like a Dogwood agent would for the few names the tests use.
func (gw *gateway) dnsHandler(w dns.ResponseWriter, req *dns.Msg) {
	udp := w.LocalAddr().Network() == "udp"
	if udp {
		gw.udpQueries.Add(1)
	} else {
		gw.tcpQueries.Add(1)
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	q := req.Question[0]
	aaaa := func(a netip.Addr) dns.RR {
		return &dns.AAAA{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: 5}, AAAA: a.AsSlice()}
	}
	switch strings.ToLower(q.Name) {
	case "web.internal.":
		if q.Qtype == dns.TypeAAAA {
			m.Answer = append(m.Answer, aaaa(webAddr))
		}
	case "dead.internal.":
		if q.Qtype == dns.TypeAAAA {
			m.Answer = append(m.Answer, aaaa(deadAddr))
		}
	case "big.internal.":
		if q.Qtype == dns.TypeAAAA {
			for i := range bigCount {
				b := webAddr.As16()
				b[13] = byte(i)
				m.Answer = append(m.Answer, aaaa(netip.AddrFrom16(b)))
			}
		}
	case "empty.internal.":
	default:
		m.Rcode = dns.RcodeNameError
	}
	if udp {
		size := dns.MinMsgSize
		if o := req.IsEdns0(); o != nil {
			size = int(o.UDPSize())
		}
		m.Truncate(size) // sets TC when records had to go (SPEC §4)
	}
	w.WriteMsg(m)
}

func (gw *gateway) startDNS(t *testing.T, tnet *netstack.Net) {
	t.Helper()
	pc, err := tnet.ListenUDPAddrPort(netip.AddrPortFrom(dnsAddr, 53))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tnet.ListenTCPAddrPort(netip.AddrPortFrom(dnsAddr, 53))
	if err != nil {
		t.Fatal(err)
	}
	for _, srv := range []*dns.Server{
		{PacketConn: pc, Handler: dns.HandlerFunc(gw.dnsHandler)},
		{Listener: ln, Handler: dns.HandlerFunc(gw.dnsHandler)},
	} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		served := make(chan struct{})
		go func() {
			defer close(served)
			srv.ActivateAndServe()
		}()
		select {
		case <-started:
		case <-served:
			t.Fatal("DNS server did not start")
		}
		t.Cleanup(func() {
			srv.Shutdown()
			<-served
		})
	}
}

func (gw *gateway) startHTTP(t *testing.T, tnet *netstack.Net) {
	t.Helper()
	ln, err := tnet.ListenTCPAddrPort(netip.AddrPortFrom(webAddr, webPort))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from web, you are %s\n", r.RemoteAddr)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("x"), bigBody))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		srv.Close()
		<-served
	})
}

// clientConfig is what `dogwood wireguard create` would write for this
// gateway, rendered and parsed back through package config.
func clientConfig(t *testing.T, priv wgtypes.Key, gw *gateway) config.Config {
	t.Helper()
	c, err := config.New(priv, clientAddr, dnsAddr, gw.pub, network, fmt.Sprintf("127.0.0.1:%d", gw.port))
	if err != nil {
		t.Fatal(err)
	}
	text, err := config.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := config.Parse(text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	return parsed
}

// loopbackBind is a conn.Bind on one UDP socket bound to 127.0.0.1, so the
// tests open no socket on other addresses.
type loopbackBind struct {
	mu sync.Mutex
	c  *net.UDPConn
}

type loopbackEndpoint netip.AddrPort

func (e loopbackEndpoint) ClearSrc()           {}
func (e loopbackEndpoint) SrcToString() string { return "" }
func (e loopbackEndpoint) DstToString() string { return netip.AddrPort(e).String() }
func (e loopbackEndpoint) DstToBytes() []byte  { b, _ := netip.AddrPort(e).MarshalBinary(); return b }
func (e loopbackEndpoint) DstIP() netip.Addr   { return netip.AddrPort(e).Addr() }
func (e loopbackEndpoint) SrcIP() netip.Addr   { return netip.Addr{} }

func (b *loopbackBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.c != nil {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	pc, err := (&net.ListenConfig{Control: bigSocketBuffers}).ListenPacket(context.Background(), "udp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return nil, 0, err
	}
	c := pc.(*net.UDPConn)
	b.c = c
	recv := func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		n, ap, err := c.ReadFromUDPAddrPort(packets[0])
		if err != nil {
			return 0, err
		}
		sizes[0], eps[0] = n, loopbackEndpoint(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		return 1, nil
	}
	return []conn.ReceiveFunc{recv}, c.LocalAddr().(*net.UDPAddr).AddrPort().Port(), nil
}

// bigSocketBuffers does what wireguard-go's own bind does on Linux: a burst of
// tunnelled TCP overflows the default UDP receive buffer, and the lost
// packets cost the inner TCP whole retransmission timeouts.
func bigSocketBuffers(network, address string, rc syscall.RawConn) error {
	const size = 7 << 20
	return rc.Control(func(fd uintptr) {
		for _, opt := range [][2]int{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt[0], size) != nil {
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt[1], size) // without CAP_NET_ADMIN: capped at rmem_max
			}
		}
	})
}

func (b *loopbackBind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.c == nil {
		return nil
	}
	err := b.c.Close()
	b.c = nil
	return err
}

func (b *loopbackBind) SetMark(uint32) error { return nil }
func (b *loopbackBind) BatchSize() int       { return 1 }

func (b *loopbackBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	b.mu.Lock()
	c := b.c
	b.mu.Unlock()
	if c == nil {
		return net.ErrClosed
	}
	for _, buf := range bufs {
		if _, err := c.WriteToUDPAddrPort(buf, netip.AddrPort(ep.(loopbackEndpoint))); err != nil {
			return err
		}
	}
	return nil
}

func (b *loopbackBind) ParseEndpoint(s string) (conn.Endpoint, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, err
	}
	if !ap.Addr().IsLoopback() {
		return nil, fmt.Errorf("test bind only talks to loopback, not %s", ap)
	}
	return loopbackEndpoint(ap), nil
}

// syncBuffer collects logs from many goroutines; tests print it on failure
// instead of calling t.Log from goroutines that may outlive the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if debugLogs {
		os.Stderr.Write(p)
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var debugLogs = os.Getenv("TUNNEL_DEBUG") != ""
