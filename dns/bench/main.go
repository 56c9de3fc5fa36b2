// Command bench is the Go side of dns/bench/run.sh: it generates the benchmark
// catalog (1,000 apps × 10 machines over 4 regions in one network by default), the
// equivalent Knot DNS zone file and the dnsperf query file, serves the catalog with
// the real Dogwood DNS server on a loopback port, measures index memory, and checks
// that both servers give the same answers.
//
//	bench gen    -dir D            write D/internal.zone and D/queries.txt
//	                               (-records N: also D/queries-records.txt, custom names)
//	bench serve  -addr 127.0.0.1:P serve until SIGTERM or SIGINT
//	bench mem                      heap of the DNS index per 100,000 records
//	bench verify -ours A -knot B   compare answers for a sample of queries
//	bench verify -ours A -self     the same against the resolver in process
//	                               (for -health, whose answers Knot's zone lacks)
//	bench freeport                 print a loopback port free for UDP and TCP
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/dogwood/dogwood/dns/internal/dnstest"
	"github.com/dogwood/dogwood/dns/resolve"
	"github.com/dogwood/dogwood/dns/server"
	"github.com/dogwood/dogwood/mesh/catalog"
)

var regions = []string{"ord", "ams", "syd", "fra"}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: bench gen|serve|mem|verify [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	apps := fs.Int("apps", 1000, "apps in the catalog")
	per := fs.Int("per", 10, "machines per app")
	dir := fs.String("dir", ".", "output directory (gen)")
	addr := fs.String("addr", "127.0.0.1:0", "listen address (serve)")
	ours := fs.String("ours", "", "Dogwood server address (verify)")
	knot := fs.String("knot", "", "Knot server address (verify)")
	sample := fs.Int("n", 300, "queries to compare (verify)")
	queries := fs.Int("queries", 30000, "lines in the query file (gen)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile while serving (serve)")
	records := fs.Int("records", 0, "custom DNS records in the network (gen: also writes queries-records.txt)")
	health := fs.Bool("health", false, "health filtering (serve, verify -self): a tenth of the machines critical, host-"+cutHost+" unreachable")
	self := fs.Bool("self", false, "verify against the resolver in process instead of Knot")
	fs.Parse(os.Args[2:])
	l := dnstest.Large{Apps: *apps, PerApp: *per, Regions: regions, Records: *records}
	var err error
	switch os.Args[1] {
	case "gen":
		err = gen(l, *dir, *queries)
	case "serve":
		if *cpuprofile != "" {
			f, perr := os.Create(*cpuprofile)
			if perr != nil {
				err = perr
				break
			}
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
		err = serve(l, *health, *addr)
	case "mem":
		err = mem(l)
	case "verify":
		if *self {
			err = verifySelf(l, *health, *ours, *sample)
		} else {
			err = verify(l, *ours, *knot, *sample)
		}
	case "freeport":
		err = freeport()
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// gen writes the zone Knot serves and the query mix both servers get.
func gen(l dnstest.Large, dir string, nq int) error {
	snap := l.Build()
	nv := snap.Networks[dnstest.NetA]
	f, err := os.Create(filepath.Join(dir, "internal.zone"))
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "$ORIGIN internal.\n$TTL 5")
	fmt.Fprintln(w, "@ SOA ns.internal. hostmaster.internal. 1 60 10 86400 5")
	fmt.Fprintln(w, "@ NS ns.internal.")
	fmt.Fprintln(w, "ns AAAA fdaa::3")
	records := 3
	for _, name := range nv.AppNames {
		a := nv.Apps[name]
		byRegion := map[string][]string{}
		var regs []string
		for _, m := range a.Machines {
			fmt.Fprintf(w, "%s AAAA %s\n", name, m.Address)
			if byRegion[m.Region] == nil {
				regs = append(regs, m.Region)
			}
			byRegion[m.Region] = append(byRegion[m.Region], m.Address.String())
			records++
		}
		for r, as := range byRegion {
			for _, ad := range as {
				fmt.Fprintf(w, "%s.%s AAAA %s\n", r, name, ad)
				records++
			}
		}
		sort.Strings(regs)
		fmt.Fprintf(w, "regions.%s TXT \"%s\"\n", name, strings.Join(regs, ","))
		records++
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	q, err := os.Create(filepath.Join(dir, "queries.txt"))
	if err != nil {
		return err
	}
	qw := bufio.NewWriter(q)
	for i := 0; i < nq; i++ {
		app := nv.AppNames[rng.IntN(len(nv.AppNames))]
		switch i % 3 {
		case 0:
			fmt.Fprintf(qw, "%s.internal AAAA\n", app)
		case 1:
			fmt.Fprintf(qw, "%s.%s.internal AAAA\n", regions[rng.IntN(len(regions))], app)
		case 2:
			fmt.Fprintf(qw, "regions.%s.internal TXT\n", app)
		}
	}
	if err := qw.Flush(); err != nil {
		return err
	}
	fmt.Printf("zone records: %d\n", records)
	if err := q.Close(); err != nil {
		return err
	}
	if l.Records == 0 {
		return nil
	}
	// Custom names only, by type: what a records-heavy network's clients ask.
	q, err = os.Create(filepath.Join(dir, "queries-records.txt"))
	if err != nil {
		return err
	}
	qw = bufio.NewWriter(q)
	for i := 0; i < nq; i++ {
		k := rng.IntN(l.Records)
		_, name := dnstest.RecordName(k)
		t := "AAAA"
		if k%10 == 4 || k%10 == 5 || k%10 == 9 {
			t = "TXT"
		}
		fmt.Fprintf(qw, "%s %s\n", name, t)
	}
	if err := qw.Flush(); err != nil {
		return err
	}
	return q.Close()
}

// cutHost is the host -health makes unreachable: a quarter of every app's machines.
const cutHost = "syd"

// unreachable is a Reachability that never changes.
type unreachable struct{ set *resolve.HostSet }

func (u unreachable) Unreachable() *resolve.HostSet { return u.set }

// build is the benchmark catalog; with health, every tenth machine is critical and
// the resolver is told host-syd is unreachable, as the agent's health checks and
// WireGuard handshakes would (the same filtering as resolve's
// BenchmarkAnswerFiltering "filtering" mode). Filtering is decided when an app's
// index is built, so the query path does the same work; the answers are shorter.
func build(l dnstest.Large, health bool) (*catalog.Snapshot, resolve.Reachability) {
	snap := l.Build()
	if !health {
		return snap, nil
	}
	i := 0
	for _, name := range snap.Networks[dnstest.NetA].AppNames {
		for _, m := range snap.Networks[dnstest.NetA].Apps[name].Machines {
			if i++; i%10 == 0 {
				attrs := *m.MachineAttrs
				attrs.Health = catalog.HealthCritical
				m.MachineAttrs = &attrs
			}
		}
	}
	return snap, unreachable{resolve.NewHostSet("host-" + cutHost)}
}

// serve runs the real server with the catalog on a static loopback listener; the
// queries carry ECS for the network, so scoping runs exactly as in production.
func serve(l dnstest.Large, health bool, addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return err
	}
	snap, reach := build(l, health)
	s, err := server.New(server.Config{
		Source:       resolve.StaticSource{Snap: snap},
		Reachability: reach,
		Listen:       []netip.AddrPort{ap},
		Upstreams:    []string{"127.0.0.1:9"}, // never used: every benchmark name is ours
		ResolvConf:   os.DevNull,
	})
	if err != nil {
		return err
	}
	s.Resolver().Refresh()
	if err := s.Start(); err != nil {
		return err
	}
	defer s.Close()
	fmt.Printf("listening %s\n", s.Addrs()[0])
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	return nil
}

// mem measures the heap the DNS index takes on top of the catalog snapshot itself,
// expressed per 100,000 served records (the same record count as the Knot zone:
// app AAAA + region AAAA + regions TXT).
func mem(l dnstest.Large) error {
	snap := l.Build()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := resolve.New(resolve.StaticSource{Snap: snap}, nil)
	r.Refresh()
	// Touch every app so lazily built parts are in.
	for i := 0; i < l.Apps; i++ {
		r.Query(dnstest.NetA, fmt.Sprintf("app%d.internal", i), dns.TypeAAAA)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	records := l.Apps*l.PerApp*2 + l.Apps
	idx := float64(after.HeapAlloc - before.HeapAlloc)
	fmt.Printf("records: %d\nindex heap: %.1f MiB (%.1f MiB per 100,000 records)\n",
		records, idx/(1<<20), idx/(1<<20)*100000/float64(records))
	runtime.KeepAlive(r)
	runtime.KeepAlive(snap)
	return nil
}

// verify asks both servers the same sample and compares answer sections as sets
// (Dogwood rotates AAAA order; Knot does not).
func verify(l dnstest.Large, ours, knot string, n int) error {
	snap := l.Build()
	names := sampleQueries(snap, n)
	c := &dns.Client{Net: "tcp", Timeout: 3 * time.Second}
	ecs := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: 48, Address: netip.MustParseAddr("fdaa:0:18::").AsSlice()}
	bad := 0
	for _, q := range names {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.SetEdns0(1232, false)
		m.IsEdns0().Option = append(m.IsEdns0().Option, ecs)
		a, _, err := c.Exchange(m, ours)
		if err != nil {
			return fmt.Errorf("ours %s: %w", q.name, err)
		}
		b, _, err := c.Exchange(m, knot)
		if err != nil {
			return fmt.Errorf("knot %s: %w", q.name, err)
		}
		ka, kb := canon(a), canon(b)
		if ka != kb || a.Rcode != b.Rcode {
			bad++
			if bad <= 5 {
				fmt.Printf("DIFF %s %s\n ours: %s %s\n knot: %s %s\n", q.name, dns.TypeToString[q.qtype],
					dns.RcodeToString[a.Rcode], ka, dns.RcodeToString[b.Rcode], kb)
			}
		}
	}
	fmt.Printf("verified %d queries: %d differ\n", len(names), bad)
	if bad > 0 {
		return fmt.Errorf("%d answers differ", bad)
	}
	return nil
}

// verifySelf asks the server at ours the same sample over UDP and compares each
// answer with what a resolver in this process, over the same catalog and filter,
// gives (as sets, with the response code): for a server whose answers Knot's zone
// does not have.
func verifySelf(l dnstest.Large, health bool, ours string, n int) error {
	snap, reach := build(l, health)
	r := resolve.New(resolve.StaticSource{Snap: snap}, nil)
	if reach != nil {
		r.SetReachability(reach)
	}
	// The same catalog unfiltered, to count the answers filtering changed.
	plain := resolve.New(resolve.StaticSource{Snap: l.Build()}, nil)
	names := sampleQueries(snap, n)
	c := &dns.Client{Net: "udp", UDPSize: 65535, Timeout: 3 * time.Second}
	ecs := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: 48, Address: netip.MustParseAddr("fdaa:0:18::").AsSlice()}
	bad, filtered := 0, 0
	for _, q := range names {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.SetEdns0(4096, false)
		m.IsEdns0().Option = append(m.IsEdns0().Option, ecs)
		a, _, err := c.Exchange(m, ours)
		if err != nil {
			return fmt.Errorf("ours %s: %w", q.name, err)
		}
		b, ok := r.Query(dnstest.NetA, q.name, q.qtype)
		if !ok {
			return fmt.Errorf("resolver: %s is not ours", q.name)
		}
		ka, kb := canon(a), canon(b)
		if p, _ := plain.Query(dnstest.NetA, q.name, q.qtype); p != nil && canon(p) != kb {
			filtered++
		}
		if ka != kb || a.Rcode != b.Rcode {
			bad++
			if bad <= 5 {
				fmt.Printf("DIFF %s %s\n ours: %s %s\n self: %s %s\n", q.name, dns.TypeToString[q.qtype],
					dns.RcodeToString[a.Rcode], ka, dns.RcodeToString[b.Rcode], kb)
			}
		}
	}
	fmt.Printf("verified %d queries against the resolver in process: %d differ (%d answers filtered)\n", len(names), bad, filtered)
	if bad > 0 {
		return fmt.Errorf("%d answers differ", bad)
	}
	return nil
}

type q struct {
	name  string
	qtype uint16
}

func sampleQueries(snap *catalog.Snapshot, n int) []q {
	nv := snap.Networks[dnstest.NetA]
	rng := rand.New(rand.NewPCG(3, 4))
	var out []q
	for i := 0; i < n; i++ {
		app := nv.AppNames[rng.IntN(len(nv.AppNames))]
		switch i % 5 {
		case 0:
			out = append(out, q{app + ".internal.", dns.TypeAAAA})
		case 1:
			out = append(out, q{regions[rng.IntN(len(regions))] + "." + app + ".internal.", dns.TypeAAAA})
		case 2:
			out = append(out, q{"regions." + app + ".internal.", dns.TypeTXT})
		case 3:
			out = append(out, q{app + ".internal.", dns.TypeTXT}) // NODATA on both
		case 4:
			out = append(out, q{"no" + app + ".internal.", dns.TypeAAAA}) // NXDOMAIN on both
		}
	}
	return out
}

// canon is the answer section as a sorted set of "name ttl class type rdata".
func canon(m *dns.Msg) string {
	var rs []string
	for _, rr := range m.Answer {
		rs = append(rs, strings.ToLower(rr.String()))
	}
	sort.Strings(rs)
	return strings.Join(rs, " | ")
}

func freeport() error {
	for i := 0; i < 50; i++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		pc.Close()
		if err != nil {
			continue
		}
		ln.Close()
		fmt.Println(port)
		return nil
	}
	return fmt.Errorf("no free port")
}
