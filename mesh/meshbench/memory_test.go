package meshbench

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dogwood/dogwood/dns/resolve"
	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/store"
)

type mem struct {
	heap uint64 // HeapAlloc after GC: live heap
	rss  uint64 // VmRSS after GC and FreeOSMemory
}

func measure() mem {
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return mem{heap: ms.HeapAlloc, rss: vmRSS()}
}

func vmRSS() uint64 { return procStatus("VmRSS:") }

func procStatus(field string) uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), field); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// resetPeakRSS starts a new VmHWM period (Linux: "5" to clear_refs); peakRSS reads it.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

func peakRSS() uint64 { return procStatus("VmHWM:") }

func delta(a, b uint64) float64 { return float64(int64(b) - int64(a)) }

// latest serves a catalog's newest snapshot to a resolver, as the agent's DNS server does.
type latest struct{ c *catalog.Catalog }

func (l latest) Snapshot() *catalog.Snapshot { return l.c.Latest() }

// checkDNS marks the synthetic hosts alive and resolves, against what the synthetic
// records hold: every app's address set (which builds every network's index), a
// sample of machines by id, and a few apps' vms listings. It returns the resolver so
// the caller can measure what its indexes hold.
func checkDNS(t *testing.T, c *catalog.Catalog, n int) *resolve.Resolver {
	t.Helper()
	for h := 0; h < SynthHosts; h++ {
		c.SetStatus(synthHost(h), catalog.StatusAlive)
	}
	r := resolve.New(latest{c}, nil)
	per := func(a int) int {
		k := n / SynthApps
		if a < n%SynthApps {
			k++
		}
		return k
	}
	for a := 0; a < SynthApps; a++ {
		name, net := synthApp(a), synthNetID(a%SynthOrgs)
		m, ok := r.Query(net, name+".internal", dns.TypeAAAA)
		if !ok || m.Rcode != dns.RcodeSuccess || len(m.Answer) != per(a) {
			t.Fatalf("%s.internal: %d AAAA (rcode %d), want %d", name, answers(m), rcode(m), per(a))
		}
	}
	// A sample spread over every app (and so every network): i mod SynthApps varies.
	samples := min(n, 1000)
	for k := 0; k < samples; k++ {
		sm := synthMachine((k*(n/samples)+k)%n, false)
		net, addr := sm.NetworkID, sm.Address
		q := sm.ID + ".vm." + sm.App + ".internal"
		m, ok := r.Query(net, q, dns.TypeAAAA)
		if !ok || len(m.Answer) != 1 {
			t.Fatalf("%s: %d answers (rcode %d), want 1", q, answers(m), rcode(m))
		}
		if got, ok := m.Answer[0].(*dns.AAAA); !ok || got.AAAA.String() != addr.String() {
			t.Fatalf("%s: answer %v, want %s", q, m.Answer[0], addr)
		}
		rev, _ := dns.ReverseAddr(addr.String())
		m, ok = r.Query(net, rev, dns.TypePTR)
		if !ok || len(m.Answer) != 1 {
			t.Fatalf("%s PTR: %d answers (rcode %d), want 1", rev, answers(m), rcode(m))
		}
		if got, ok := m.Answer[0].(*dns.PTR); !ok || got.Ptr != q+"." {
			t.Fatalf("%s PTR: answer %v, want %s.", rev, m.Answer[0], q)
		}
	}
	listings := 0
	for a := 0; a < SynthApps; a += SynthApps / 10 {
		listings++
		name, net := synthApp(a), synthNetID(a%SynthOrgs)
		m, ok := r.Query(net, "vms."+name+".internal", dns.TypeTXT)
		if !ok || len(m.Answer) != 1 {
			t.Fatalf("vms.%s.internal: %d answers", name, answers(m))
		}
		txt := strings.Join(m.Answer[0].(*dns.TXT).Txt, "")
		if got := strings.Count(txt, ",") + 1; per(a) > 0 && got != per(a) && len(txt) < 59000 {
			t.Fatalf("vms.%s.internal lists %d machines, want %d", name, got, per(a))
		}
	}
	Line("dns check: %d apps' AAAA sets complete, %d machines resolved by id to their address and back (PTR), %d vms listings complete",
		SynthApps, samples, listings)
	return r
}

func answers(m *dns.Msg) int {
	if m == nil {
		return -1
	}
	return len(m.Answer)
}

func rcode(m *dns.Msg) int {
	if m == nil {
		return -1
	}
	return m.Rcode
}

// benchMachines makes the synthetic machine records TestBenchMemory holds: attached
// to network namespaces with DOGWOOD_BENCH_NETNS=1.
func benchMachines(from, to int) []*catalog.Record {
	if os.Getenv("DOGWOOD_BENCH_NETNS") == "1" {
		return AttachedMachineRecords(from, to)
	}
	return MachineRecords(from, to)
}

// benchRecords is the number of machine records TestBenchMemory holds.
func benchRecords(t *testing.T) int {
	n := 1_000_000
	if v := os.Getenv("DOGWOOD_BENCH_RECORDS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("DOGWOOD_BENCH_RECORDS=%q", v)
		}
	}
	return n
}

// chunk is how many synthetic records exist at once while a catalog or store is
// filled, so the generator's garbage does not distort the measurement.
const chunk = 100_000

// TestBenchMemory: heap per machine record in a catalog, with DNS indexes, and in an
// agent that loaded the records from its data dir at start; start-up time.
func TestBenchMemory(t *testing.T) {
	benchOn(t)
	n := benchRecords(t)
	Section(fmt.Sprintf("Memory and start-up with %d machine records", n),
		"Synthetic machine records as Machines.Create writes them (14-hex id, one metadata pair, one service) over "+
			"1,000 apps in 100 orgs on 50 hosts (+1,250 host/org/network/app records). Heap = runtime HeapAlloc after two GCs; "+
			"RSS = VmRSS after GC + debug.FreeOSMemory (includes bbolt's mmap pages for the agent). "+
			"B/record divides by the number of machine records. DNS indexes are built by resolving every app's AAAA set "+
			"and machines' PTR names in every network.")

	// 1. catalog.Catalog alone (the input records are garbage once applied), then
	// with the DNS indexes of every network built.
	m0 := measure()
	c := catalog.New("bench")
	c.ApplyAll(append(HostRecords(), ParentRecords()...))
	var applyDur time.Duration
	for i := 0; i < n; i += chunk {
		rs := benchMachines(i, min(n, i+chunk))
		start := time.Now()
		c.ApplyAll(rs)
		applyDur += time.Since(start)
	}
	c.Snapshot()
	m1 := measure()
	r := checkDNS(t, c, n)
	m2 := measure()
	runtime.KeepAlive(c)
	runtime.KeepAlive(r)
	Line("memory catalog-only records=%d: catalog (records, indexes, digest, snapshot) %s = %.0f B/record; DNS indexes %s = %.0f B/record; "+
		"total %.0f B/record; ApplyAll took %v",
		n, Bytes(delta(m0.heap, m1.heap)), delta(m0.heap, m1.heap)/float64(n), Bytes(delta(m1.heap, m2.heap)),
		delta(m1.heap, m2.heap)/float64(n), delta(m0.heap, m2.heap)/float64(n), applyDur.Round(time.Millisecond))
	c, r = nil, nil // dead from here on; the next measurements do not count them

	// 2. A running agent that loaded them from its own store at start (the restart
	// path: store.Load, Catalog.ApplyAll, snapshot), versus an empty agent.
	cl := &cluster{t: t}
	t.Cleanup(cl.close)
	b0 := measure()
	cl.startNode("empty", false, nil)
	b1 := measure()
	Line("memory empty-agent: heap %s, RSS %s (fixed cost of one agent)", Bytes(delta(b0.heap, b1.heap)), Bytes(delta(b0.rss, b1.rss)))

	dir := t.TempDir()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	// No host records on disk: an agent that knows other hosts waits at start for one
	// of them to confirm its identity, and these never answer. They arrive after the
	// start, as gossip would bring them.
	if err := st.Put(ParentRecords()...); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += chunk {
		if err := st.Put(benchMachines(i, min(n, i+chunk))...); err != nil {
			t.Fatal(err)
		}
	}
	// The start-up path's parts, timed on their own.
	start := time.Now()
	recs, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	loadDur := time.Since(start)
	start = time.Now()
	lc := catalog.New("probe")
	lc.ApplyAll(recs)
	lc.Snapshot()
	applyDur = time.Since(start)
	recs, lc = nil, nil
	st.Close()
	fi, _ := os.Stat(dir + "/dogwood.db")

	b2 := measure()
	resetPeakRSS()
	start = time.Now()
	loaded := cl.startNodeIn("loaded", dir)
	startDur := time.Since(start)
	peak := peakRSS()
	b3 := measure()
	live, _ := loaded.Catalog().Len()
	if live[catalog.KindMachine] != n {
		t.Fatalf("loaded agent holds %d machines", live[catalog.KindMachine])
	}
	loaded.Catalog().ApplyAll(HostRecords())
	r = checkDNS(t, loaded.Catalog(), n)
	b4 := measure()
	runtime.KeepAlive(r)
	Line("memory agent-with-records records=%d (loaded from bbolt at start, db file %s): heap %s = %.0f B/record, RSS %s, incl. the agent's fixed cost; "+
		"with DNS indexes heap %s = %.0f B/record",
		n, Bytes(float64(fi.Size())), Bytes(delta(b2.heap, b3.heap)), delta(b2.heap, b3.heap)/float64(n), Bytes(delta(b2.rss, b3.rss)),
		Bytes(delta(b2.heap, b4.heap)), delta(b2.heap, b4.heap)/float64(n))
	Line("start records=%d: agent start %v, peak RSS during it %s above before (store.Load alone %v, ApplyAll + first snapshot alone %v)",
		n, startDur.Round(time.Millisecond), Bytes(delta(b2.rss, peak)), loadDur.Round(time.Millisecond), applyDur.Round(time.Millisecond))
}
