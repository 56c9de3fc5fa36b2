package gossip

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// hangingDial is memberlist's in-memory transport whose TCP dials, once hang is
// set, wait until release is closed: a host behind a link that drops SYNs.
type hangingDial struct {
	*memberlist.MockTransport
	hang    atomic.Bool
	release chan struct{}
}

func (h *hangingDial) DialAddressTimeout(a memberlist.Address, d time.Duration) (net.Conn, error) {
	if h.hang.Load() {
		<-h.release
		return nil, errors.New("released")
	}
	return h.MockTransport.DialAddressTimeout(a, d)
}

func (h *hangingDial) DialTimeout(addr string, d time.Duration) (net.Conn, error) {
	return h.DialAddressTimeout(memberlist.Address{Addr: addr}, d)
}

// TestSendNeverWaitsOnTCP: send runs inside memberlist's callbacks; a message too
// large for a packet goes over TCP, and a dial that hangs must not hold the caller.
// Past maxReliableSends in flight, sends are dropped and counted, not queued.
func TestSendNeverWaitsOnTCP(t *testing.T) {
	mock := &memberlist.MockNetwork{}
	start := func(name string, tr memberlist.Transport, join []string) *Gossip {
		s := catalogSink{catalog.New(name)}
		g, err := New(Config{Name: name, HostID: uint32(len(name)), Sink: s, Reader: s, Join: join, Transport: tr,
			AEInterval: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		return g
	}
	h := &hangingDial{MockTransport: mock.NewTransport("h1"), release: make(chan struct{})}
	g1 := start("h1", h, nil)
	t.Cleanup(func() { close(h.release) }) // before Close (cleanups run last first)
	a, p := g1.LocalAddr()
	start("h22", mock.NewTransport("h22"), []string{(&memberlist.Node{Addr: a, Port: p}).Address()})
	eventually(t, "h22 is a member of h1", func() bool { return g1.members.node("h22") != nil })

	h.hang.Store(true)
	n := g1.members.node("h22")
	big := frame(msgRecords, make([]byte, 2*bestEffortLimit))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < maxReliableSends+10; i++ {
			g1.send(n, msgRecords, big)
		}
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatalf("%d sends over a hanging dial held their caller", maxReliableSends+10)
	}
	if got := testutil.ToFloat64(g1.metrics.sendErrors.WithLabelValues(msgRecords.String())); got < 10 {
		t.Errorf("sends past the limit counted as failed: %v, want at least 10", got)
	}
}
