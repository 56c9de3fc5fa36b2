package server

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/dogwood/dogwood/dns/internal/dnstest"
	"github.com/dogwood/dogwood/dns/resolve"
)

// BenchmarkServeRecords: the whole query path of the UDP loop (parse, scope by ECS,
// answer, encode) for run.sh's catalog without and with 10,000 custom records, heap
// and GC included.
func BenchmarkServeRecords(b *testing.B) {
	for _, records := range []int{0, 10000} {
		b.Run(fmt.Sprintf("records=%d", records), func(b *testing.B) {
			l := dnstest.Large{Apps: 1000, PerApp: 10, Regions: []string{"ord", "ams", "syd", "fra"}, Records: records}
			s, err := New(Config{Source: resolve.StaticSource{Snap: l.Build()}, Upstreams: []string{"127.0.0.1:1"}, ResolvConf: "/nonexistent"})
			if err != nil {
				b.Fatal(err)
			}
			s.Resolver().Refresh()
			var pkts [][]byte
			for i := 0; i < 300; i++ {
				name := fmt.Sprintf("app%d.internal", (i*37)%1000)
				if i%3 == 1 {
					name = "ord." + name
				}
				p, _ := msg(name, dns.TypeAAAA, 1232, ecsOpt("fdaa:0:18::/48")).Pack()
				pkts = append(pkts, p)
			}
			lis := Listener{Addr: netip.MustParseAddr("127.0.0.1"), Static: true}
			src := netip.MustParseAddr("127.0.0.1")
			i := 0
			sc := newScratch().(*scratch)
			b.ReportAllocs()
			for b.Loop() {
				out, _, _, _, _ := s.respondPacket(context.Background(), sc, pkts[i%len(pkts)], lis, src, false)
				if len(out) < 12 {
					b.Fatal("no answer")
				}
				sc.buf = out[:0]
				i++
			}
		})
	}
}
