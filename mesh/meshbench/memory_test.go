package meshbench

import (
	"bufio"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

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

func vmRSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func delta(a, b uint64) float64 { return float64(int64(b) - int64(a)) }

// TestBenchMemory: resident memory per 100,000 machine records.
func TestBenchMemory(t *testing.T) {
	benchOn(t)
	const n = 100_000
	Section("Memory per 100,000 machine records",
		"Synthetic machine records as CreateMachine writes them (14-hex id, one metadata pair, one service) over "+
			"1,000 apps in 100 orgs (+1,200 org/network/app records). Heap = runtime HeapAlloc after two GCs; "+
			"RSS = VmRSS after GC + debug.FreeOSMemory (includes bbolt's mmap pages for the node case).")

	// 1. catalog.Catalog alone: the records themselves, then the catalog's indexes and
	// its first snapshot.
	m0 := measure()
	recs := append(ParentRecords(), MachineRecords(0, n)...)
	m1 := measure()
	c := catalog.New("bench")
	start := time.Now()
	c.ApplyAll(recs)
	applyDur := time.Since(start)
	c.Snapshot()
	m2 := measure()
	runtime.KeepAlive(recs)
	runtime.KeepAlive(c)
	Line("memory catalog-only records=%d: record structs %s + catalog indexes/digest/snapshot %s = heap %s per 100k machines (%.0f B/record); ApplyAll took %v",
		n, Bytes(delta(m0.heap, m1.heap)), Bytes(delta(m1.heap, m2.heap)), Bytes(delta(m0.heap, m2.heap)),
		delta(m0.heap, m2.heap)/float64(len(recs)), applyDur.Round(time.Millisecond))
	// c and recs are dead from here on; the next measurements do not count them.

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
	if err := st.Put(append(ParentRecords(), MachineRecords(0, n)...)...); err != nil {
		t.Fatal(err)
	}
	st.Close()
	fi, _ := os.Stat(dir + "/dogwood.db")
	b2 := measure()
	start = time.Now()
	loaded := cl.startNodeIn("loaded", dir)
	startDur := time.Since(start)
	b3 := measure()
	live, _ := loaded.Catalog().Len()
	if live[catalog.KindMachine] != n {
		t.Fatalf("loaded agent holds %d machines", live[catalog.KindMachine])
	}
	Line("memory agent-with-records records=%d (loaded from bbolt at start, db file %s): heap %s, RSS %s per 100k machines incl. the agent's fixed cost; start took %v",
		n, Bytes(float64(fi.Size())), Bytes(delta(b2.heap, b3.heap)), Bytes(delta(b2.rss, b3.rss)), startDur.Round(time.Millisecond))
}
