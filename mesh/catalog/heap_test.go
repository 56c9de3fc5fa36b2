package catalog

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/sixpn"
)

// decodedMachines builds machine records the way a decoder hands them over: every
// string its own allocation, metadata and services per record.
func decodedMachines(from, to int) []*Record {
	out := make([]*Record, 0, to-from)
	for i := from; i < to; i++ {
		a, h := i%1000, uint32(i%50+1)
		net := uint32(0xb00000 + a%100)
		field := sixpn.MinMachineField + uint32(i)
		id := fmt.Sprintf("%014x", (uint64(i)*0x9E3779B97F4A7C15)&(1<<56-1))
		st := Stamp{Clock: uint64(i + 10), Node: h}
		out = append(out, &Record{Kind: KindMachine, Key: id, Gen: 1, Created: st, Version: st, Machine: &Machine{
			ID: id, MachinePlace: &MachinePlace{App: fmt.Sprintf("app%04d", a), Org: fmt.Sprintf("org%03d", a%100),
				Network: strings.Clone("default"), NetworkID: net, Host: fmt.Sprintf("h%02d", h), HostID: h, Region: strings.Clone("ord")},
			Field: field, Address: sixpn.MachineAddr(net, h, field), CreatedAt: time.Unix(1700000000, 0).UTC(), RequestID: fmt.Sprintf("%024x", i),
			MachineAttrs: &MachineAttrs{State: strings.Clone(StateStarted), ProcessGroup: strings.Clone("app"),
				Metadata: map[string]string{strings.Clone("role"): strings.Clone("web")}, Services: []Service{{Name: "http", Proto: "tcp", Port: 8080}}},
		}})
	}
	return out
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestMachineRecordHeap guards the compact representation: a catalog holding
// 100,000 machine records (with its indexes and a snapshot) stays far below what
// records cost before it (~1,100 bytes each). The bound is loose on purpose (the
// target, ~300 bytes with DNS indexes, is measured by TestBenchMemory at 1,000,000
// records); a heap delta, not a time, so it does not flake on a busy machine.
func TestMachineRecordHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("holds 100,000 machine records")
	}
	const n = 100_000
	before := liveHeap()
	c := New("h")
	for i := 0; i < n; i += 10_000 {
		c.ApplyAll(decodedMachines(i, i+10_000))
	}
	c.Snapshot()
	after := liveHeap()
	runtime.KeepAlive(c)
	per := float64(int64(after)-int64(before)) / n
	t.Logf("catalog heap per machine record: %.0f bytes", per)
	if per > 400 {
		t.Fatalf("catalog heap per machine record %.0f bytes, want well under 400", per)
	}
}
