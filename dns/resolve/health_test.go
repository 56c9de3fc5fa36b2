package resolve

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dogwood/dogwood/dns/internal/dnstest"
	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/sixpn"
)

// cutSource is a Reachability tests set.
type cutSource struct{ p atomic.Pointer[HostSet] }

func (c *cutSource) Unreachable() *HostSet { return c.p.Load() }

const healthNet = 0x00000042

// healthFixture: three hosts (h1 is this host), apps web (fails open), db
// (--when-none-healthy none) and api (fails open, every machine critical).
func healthFixture() *catalog.Snapshot {
	hosts := []catalog.HostView{
		{Host: catalog.Host{Name: "h1", ID: 1, Region: "ord"}, Status: catalog.StatusAlive},
		{Host: catalog.Host{Name: "h2", ID: 2, Region: "ord"}, Status: catalog.StatusAlive},
		{Host: catalog.Host{Name: "h3", ID: 3, Region: "ams"}, Status: catalog.StatusAlive},
	}
	region := map[string]string{"h1": "ord", "h2": "ord", "h3": "ams"}
	hid := map[string]uint32{"h1": 1, "h2": 2, "h3": 3}
	mk := func(app, id, host, state, health, pg, role string) catalog.Machine {
		field := uint32(0x10000) + uint32(len(id)) + uint32(id[len(id)-1])
		return catalog.Machine{ID: id,
			MachinePlace: &catalog.MachinePlace{App: app, Org: "acme", Network: "default", NetworkID: healthNet, Host: host, HostID: hid[host], Region: region[host]},
			Field:        field, Address: sixpn.MachineAddr(healthNet, hid[host], field),
			MachineAttrs: &catalog.MachineAttrs{State: state, Health: health, ProcessGroup: pg, Metadata: map[string]string{"role": role},
				Services: []catalog.Service{{Name: "http", Proto: "tcp", Port: 80}}}}
	}
	ms := []catalog.Machine{
		mk("web", "0000000000000a", "h1", catalog.StateStarted, catalog.HealthPassing, "app", "a"),
		mk("web", "0000000000000b", "h2", catalog.StateStarted, catalog.HealthCritical, "app", "a"),
		mk("web", "0000000000000c", "h3", catalog.StateStarted, "", "worker", "b"),
		mk("web", "0000000000000d", "h1", catalog.StateStopped, catalog.HealthPassing, "app", "a"),
		mk("web", "0000000000000e", "h2", catalog.StateStarted, catalog.HealthUnknown, "app", "u"),
		mk("db", "0000000000000f", "h2", catalog.StateStarted, catalog.HealthCritical, "app", "a"),
		mk("db", "00000000000010", "h3", catalog.StateStarted, catalog.HealthPassing, "app", "a"),
		mk("api", "00000000000011", "h2", catalog.StateStarted, catalog.HealthCritical, "app", "a"),
	}
	apps := []catalog.App{
		{Name: "web", Org: "acme", Network: "default", NetworkID: healthNet},
		{Name: "db", Org: "acme", Network: "default", NetworkID: healthNet, WhenNoneHealthy: catalog.WhenNoneNone},
		{Name: "api", Org: "acme", Network: "default", NetworkID: healthNet, WhenNoneHealthy: catalog.WhenNoneAll},
	}
	return catalog.Build("h1", hosts, []catalog.Org{{Slug: "acme"}}, []catalog.Network{{Org: "acme", Name: "default", ID: healthNet}}, apps, ms, nil)
}

// TestHealthFiltering covers every name that answers machines, with nothing cut off
// and with h3 unreachable: critical machines and machines on unreachable hosts are
// left out; a name they would leave empty answers as if nothing were filtered,
// unless its app says none; all. forms show everything.
func TestHealthFiltering(t *testing.T) {
	snap := healthFixture()
	cut := &cutSource{}
	r := New(StaticSource{snap}, nil)
	r.SetReachability(cut)
	ip := func(app, id string) string { return addr(snap, app, id) }
	const (
		wA, wB, wC, wD, wE = "0000000000000a", "0000000000000b", "0000000000000c", "0000000000000d", "0000000000000e"
		d1, d2, a1         = "0000000000000f", "00000000000010", "00000000000011"
	)
	srv := func(ids ...string) []string {
		var out []string
		for _, id := range ids {
			out = append(out, "0 10 80 "+id+".vm.web.internal.")
		}
		return out
	}
	inst := func(app, id string) string {
		return fmt.Sprintf("instance=%s,app=%s,ip=%s,region=%s", id, app, ip(app, id), snap.Machine(app, id).Region)
	}
	type tc struct {
		name  string
		qtype uint16
		want  []string // sorted unless the name orders (nearest); nil: NODATA
	}
	all := []tc{
		{"web.internal", dns.TypeAAAA, []string{ip("web", wA), ip("web", wC), ip("web", wE)}},
		{"global.web.internal", dns.TypeAAAA, []string{ip("web", wA), ip("web", wC), ip("web", wE)}},
		{"ord.web.internal", dns.TypeAAAA, []string{ip("web", wA), ip("web", wE)}},
		{"ams.web.internal", dns.TypeAAAA, []string{ip("web", wC)}},
		{"top2.nearest.of.web.internal", dns.TypeAAAA, []string{ip("web", wA), ip("web", wE)}},
		{wA + ".vm.web.internal", dns.TypeAAAA, []string{ip("web", wA)}},
		{wB + ".vm.web.internal", dns.TypeAAAA, []string{ip("web", wB)}}, // the name's only machine is critical: fail open
		{wD + ".vm.web.internal", dns.TypeAAAA, nil},                     // stopped: never
		{"app.process.web.internal", dns.TypeAAAA, []string{ip("web", wA), ip("web", wE)}},
		{"worker.process.web.internal", dns.TypeAAAA, []string{ip("web", wC)}},
		{"a.role.kv._metadata.web.internal", dns.TypeAAAA, []string{ip("web", wA)}},
		{"_http._tcp.web.internal", dns.TypeSRV, srv(wA, wC, wE)},
		{"vms.web.internal", dns.TypeTXT, []string{`"` + wA + " ord," + wC + " ams," + wE + ` ord"`}},
		{"all.vms.web.internal", dns.TypeTXT, []string{`"` + wA + " ord," + wB + " ord," + wC + " ams," + wD + " ord," + wE + ` ord"`}},
		{"regions.web.internal", dns.TypeTXT, []string{`"ams,ord"`}},
		{"db.internal", dns.TypeAAAA, []string{ip("db", d2)}},
		{"api.internal", dns.TypeAAAA, []string{ip("api", a1)}}, // every machine critical: fail open
		{"vms.api.internal", dns.TypeTXT, []string{`"` + a1 + ` ord"`}},
		{"_instances.internal", dns.TypeTXT, []string{`"` + inst("api", a1) + ";" + inst("db", d2) + ";" + inst("web", wA) + ";" + inst("web", wC) + ";" + inst("web", wE) + `"`}},
	}
	cutH3 := []tc{
		{"web.internal", dns.TypeAAAA, []string{ip("web", wA), ip("web", wE)}},
		{"ams.web.internal", dns.TypeAAAA, []string{ip("web", wC)}}, // only h3 there: fail open
		{"ord.web.internal", dns.TypeAAAA, []string{ip("web", wA), ip("web", wE)}},
		{"top3.nearest.of.web.internal", dns.TypeAAAA, []string{ip("web", wA), ip("web", wE)}},
		{wC + ".vm.web.internal", dns.TypeAAAA, []string{ip("web", wC)}},
		{"worker.process.web.internal", dns.TypeAAAA, []string{ip("web", wC)}},
		{"b.role.kv._metadata.web.internal", dns.TypeAAAA, []string{ip("web", wC)}},
		{"_http._tcp.web.internal", dns.TypeSRV, srv(wA, wE)},
		{"vms.web.internal", dns.TypeTXT, []string{`"` + wA + " ord," + wE + ` ord"`}},
		{"regions.web.internal", dns.TypeTXT, []string{`"ord"`}},
		{"all.regions.web.internal", dns.TypeTXT, []string{`"ams,ord"`}},
		// db says none: d1 critical, d2 unreachable.
		{"db.internal", dns.TypeAAAA, nil},
		{"global.db.internal", dns.TypeAAAA, nil},
		{"ams.db.internal", dns.TypeAAAA, nil},
		{"top1.nearest.of.db.internal", dns.TypeAAAA, nil},
		{d2 + ".vm.db.internal", dns.TypeAAAA, nil},
		{"app.process.db.internal", dns.TypeAAAA, nil},
		{"a.role.kv._metadata.db.internal", dns.TypeAAAA, nil},
		{"vms.db.internal", dns.TypeTXT, nil},
		{"regions.db.internal", dns.TypeTXT, nil},
		{"all.vms.db.internal", dns.TypeTXT, []string{`"` + d1 + " ord," + d2 + ` ams"`}},
		{"_instances.internal", dns.TypeTXT, []string{`"` + inst("api", a1) + ";" + inst("web", wA) + ";" + inst("web", wE) + `"`}},
	}
	run := func(label string, cases []tc) {
		for _, c := range cases {
			t.Run(label+"/"+c.name, func(t *testing.T) {
				m := query(t, r, healthNet, c.name, c.qtype, MaxMsg, false)
				if m.Rcode != dns.RcodeSuccess {
					t.Fatalf("rcode %s", dns.RcodeToString[m.Rcode])
				}
				got := shorts(m.Answer)
				if c.qtype == dns.TypeTXT && len(got) > 0 {
					if len(got) > 1 {
						t.Fatalf("%d TXT records", len(got))
					}
					got = []string{`"` + strings.Join(m.Answer[0].(*dns.TXT).Txt, "") + `"`} // split at 255 bytes
				}
				if c.qtype != dns.TypeTXT && !slices.Contains([]string{"top2", "top3"}, c.name[:4]) {
					sort.Strings(got)
				}
				want := slices.Clone(c.want)
				if c.qtype != dns.TypeTXT && !slices.Contains([]string{"top2", "top3"}, c.name[:4]) {
					sort.Strings(want)
				}
				if !slices.Equal(got, want) {
					t.Errorf("got %q\nwant %q", got, want)
				}
				if len(want) == 0 && len(m.Ns) == 0 {
					t.Error("NODATA without SOA")
				}
			})
		}
	}
	run("nothing-cut", all)
	cut.p.Store(NewHostSet("h3"))
	run("h3-cut", cutH3)
	cut.p.Store(nil)
	run("back", all[:3])
}

// TestHealthIndexReuse: an index is rebuilt when reachability changes and reused
// while it does not.
func TestHealthIndexReuse(t *testing.T) {
	snap := healthFixture()
	cut := &cutSource{}
	r := New(StaticSource{snap}, nil)
	r.SetReachability(cut)
	st := r.current()
	n := r.network(st, healthNet)
	if r.network(r.current(), healthNet) != n {
		t.Fatal("index rebuilt with nothing changed")
	}
	cut.p.Store(NewHostSet("h2"))
	n2 := r.network(r.current(), healthNet)
	if n2 == n || n2.apps["web"] == n.apps["web"] {
		t.Fatal("index kept after h2 became unreachable")
	}
	cut.p.Store(NewHostSet("nobody"))
	if n3 := r.network(r.current(), healthNet); n3.apps["web"] == n2.apps["web"] {
		t.Fatal("app index kept after h2 came back")
	}
	var none *HostSet
	if none.Has("h1") || none.Len() != 0 || !NewHostSet("x").Has("x") {
		t.Fatal("HostSet")
	}
}

// filterBench is one mode of the filtering benchmarks: the same catalog and names
// (an app, a region of it) answered without any filter ("none"), with a
// reachability view that cuts off nothing ("view"), and with one host of four cut
// off and a tenth of the machines critical ("filtering").
type filterBench struct {
	r    *Resolver
	reqs []*Request
}

var filterNames = []string{"app500.internal.", "ord.app500.internal.", "app77.internal.", "ams.app77.internal."}

func newFilterBench(mode string) *filterBench {
	snap := dnstest.Large{Apps: 1000, PerApp: 10, Regions: []string{"ord", "ams", "syd", "fra"}}.Build()
	r := New(StaticSource{snap}, nil)
	cut := &cutSource{}
	switch mode {
	case "view":
		r.SetReachability(cut)
	case "filtering":
		r.SetReachability(cut)
		cut.p.Store(NewHostSet("host-syd"))
		i := 0
		for _, a := range snap.Apps {
			for _, m := range a.Machines {
				if i++; i%10 == 0 {
					attrs := *m.MachineAttrs
					attrs.Health = catalog.HealthCritical
					m.MachineAttrs = &attrs
				}
			}
		}
	}
	f := &filterBench{r: r}
	for _, n := range filterNames {
		f.reqs = append(f.reqs, &Request{ID: 1, QType: dns.TypeAAAA, QClass: dns.ClassINET, QName: appendName(nil, n), Limit: 1232, EDNS: true, UDPSize: 1232})
	}
	return f
}

func (f *filterBench) run(buf []byte, n int) []byte {
	for i := 0; i < n; i++ {
		buf, _, _ = f.r.Answer(buf[:0], dnstest.NetA, filterNames[i%len(filterNames)], f.reqs[i%len(filterNames)])
	}
	return buf
}

// BenchmarkAnswerFiltering measures each mode on its own.
func BenchmarkAnswerFiltering(b *testing.B) {
	for _, mode := range []string{"none", "view", "filtering"} {
		b.Run(mode, func(b *testing.B) {
			f := newFilterBench(mode)
			buf := make([]byte, 0, 1232)
			b.ReportAllocs()
			for b.Loop() {
				buf = f.run(buf, 1)
			}
		})
	}
}

// BenchmarkAnswerFilteringPaired is what filtering costs DNS throughput, measured
// so that a busy machine does not decide it: the three modes run in alternation,
// 20,000 queries each per round, and each mode's fastest round counts. It reports
// ns per query of each mode and the cost of filtering against none, in percent.
func BenchmarkAnswerFilteringPaired(b *testing.B) {
	modes := []string{"none", "view", "filtering"}
	fs := make([]*filterBench, len(modes))
	for i, m := range modes {
		fs[i] = newFilterBench(m)
	}
	buf := make([]byte, 0, 1232)
	const per = 20000
	best := make([]time.Duration, len(modes))
	for i := range best {
		best[i] = time.Hour
	}
	for b.Loop() {
		for i, f := range fs {
			t0 := time.Now()
			buf = f.run(buf, per)
			best[i] = min(best[i], time.Since(t0))
		}
	}
	for i, m := range modes {
		b.ReportMetric(float64(best[i].Nanoseconds())/per, m+"-ns/query")
	}
	b.ReportMetric(100*(float64(best[1])/float64(best[0])-1), "view-cost-%")
	b.ReportMetric(100*(float64(best[2])/float64(best[0])-1), "filtering-cost-%")
}
