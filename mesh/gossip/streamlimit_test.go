package gossip

import (
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/record"
)

func TestStreamLimiter(t *testing.T) {
	nt, err := NewTransport("127.0.0.1", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	var drops atomic.Int32
	l := newStreamLimiter(nt, 3, 2, func() { drops.Add(1) })
	defer l.Shutdown()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(nt.GetAutoBindPort()))
	dial := func(src string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return closed{} // reset already: the limiter was quicker than the handshake
		}
		return c
	}
	var got []net.Conn
	recv := func(want bool) {
		t.Helper()
		select {
		case c := <-l.StreamCh():
			if !want {
				t.Fatal("a stream over the cap was delivered")
			}
			got = append(got, c)
		case <-time.After(300 * time.Millisecond):
			if want {
				t.Fatal("a stream within the cap was not delivered")
			}
		}
	}
	for i := 0; i < 3; i++ {
		defer dial("127.0.0.2").Close()
		recv(i < 2) // per source: 2
	}
	defer dial("127.0.0.3").Close()
	recv(true) // another source: total 3
	defer dial("127.0.0.4").Close()
	recv(false) // total cap
	if drops.Load() != 2 {
		t.Errorf("dropped %d, want 2", drops.Load())
	}
	got[0].Close() // frees a slot of 127.0.0.2 and of the total
	defer dial("127.0.0.2").Close()
	recv(true)
}

type closed struct{ net.Conn }

func (closed) Close() error { return nil }

// TestRecordMessagesFitTheStreamBudget: anti-entropy splits records into messages a
// receiver's per-stream budget admits, whatever the batch holds.
func TestRecordMessagesFitTheStreamBudget(t *testing.T) {
	var rs []*record.Record
	for i := 0; i < 500; i++ {
		attrs := &record.MachineAttrs{}
		for j := 0; j < 300; j++ {
			attrs.Services = append(attrs.Services, record.Service{Name: fmt.Sprintf("svc-%d-%d", i, j), Proto: "tcp", Port: uint16(1000 + j)})
		}
		m := &record.Machine{ID: fmt.Sprintf("%014x", i), MachinePlace: &record.MachinePlace{App: "web", Org: "acme", Network: "default"}, MachineAttrs: attrs}
		rs = append(rs, &record.Record{Kind: record.KindMachine, Key: m.ID, Machine: m})
	}
	parts := splitRecordList(rs, maxRecordsMsg)
	got := 0
	for _, p := range parts {
		if len(p)+64 > maxStreamBytes {
			t.Fatalf("a records message of %d bytes, stream budget %d", len(p), maxStreamBytes)
		}
		dec, err := record.DecodeRecords(p)
		if err != nil {
			t.Fatal(err)
		}
		got += len(dec)
	}
	if got != len(rs) || len(parts) < 2 {
		t.Fatalf("%d records in %d messages, want %d in several", got, len(parts), len(rs))
	}
}
