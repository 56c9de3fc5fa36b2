package server

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestBatchLoop drives the batched UDP loop the way a busy client does: bursts of
// queries from several sockets at once on an IPv4 and an IPv6 loopback listener,
// so that reads return several datagrams and replies leave several to a sendmmsg,
// each to its own sender. A datagram longer than the read buffer is dropped and
// counted, and does not disturb the others of its batch.
func TestBatchLoop(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(listen, func(t *testing.T) {
			e := start(t, func(c *Config) { c.Listen = []netip.AddrPort{netip.MustParseAddrPort(listen)} })
			const clients, burst = 4, 40
			conns := make([]*net.UDPConn, clients)
			for i := range conns {
				c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(e.addr)))
				if err != nil {
					t.Skipf("no %s loopback: %v", listen, err)
				}
				defer c.Close()
				conns[i] = c
			}
			big := make([]byte, readSize+100)
			copy(big, []byte{0xbe, 0xef, 0, 0, 0, 1})
			for k := 0; k < burst; k++ {
				for i, c := range conns {
					m := msg("web.internal", dns.TypeAAAA, 1232, ecsOpt("fdaa:0:18::/48"))
					m.Id = uint16(i<<8 | k)
					b, err := m.Pack()
					if err != nil {
						t.Fatal(err)
					}
					if _, err := c.Write(b); err != nil {
						t.Fatal(err)
					}
					if k == burst/2 && i == 0 {
						if _, err := c.Write(big); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			buf := make([]byte, 65535)
			for i, c := range conns {
				seen := map[uint16]bool{}
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				for len(seen) < burst {
					n, err := c.Read(buf)
					if err != nil {
						t.Fatalf("client %d: %d of %d replies: %v", i, len(seen), burst, err)
					}
					var r dns.Msg
					if err := r.Unpack(buf[:n]); err != nil {
						t.Fatalf("client %d: %v", i, err)
					}
					if int(r.Id>>8) != i || seen[r.Id] {
						t.Fatalf("client %d: reply id %#x is not one of its outstanding queries", i, r.Id)
					}
					if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 3 {
						t.Fatalf("client %d: %v", i, &r)
					}
					seen[r.Id] = true
				}
			}
			if v := testutil.ToFloat64(e.srv.met.malformed); v != 1 {
				t.Fatalf("malformed = %v, want 1 (the cut datagram)", v)
			}
		})
	}
}
