package mesh

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/gossip"
	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// wire is what an attacker on the underlay records: every packet and every TCP
// stream a host sends, exactly as it leaves (memberlist has encrypted it already).
type wire struct {
	mu      sync.Mutex
	packets []capture
	streams []*recConn
}

type capture struct {
	to   string
	data []byte
}

// recorder is a memberlist transport that copies everything sent into a wire.
type recorder struct {
	*gossip.Transport
	w *wire
}

func (r *recorder) WriteTo(b []byte, addr string) (time.Time, error) {
	r.w.mu.Lock()
	r.w.packets = append(r.w.packets, capture{addr, append([]byte(nil), b...)})
	r.w.mu.Unlock()
	return r.Transport.WriteTo(b, addr)
}

func (r *recorder) DialTimeout(addr string, d time.Duration) (net.Conn, error) {
	c, err := r.Transport.DialTimeout(addr, d)
	if err != nil {
		return nil, err
	}
	rc := &recConn{Conn: c, to: addr}
	r.w.mu.Lock()
	r.w.streams = append(r.w.streams, rc)
	r.w.mu.Unlock()
	return rc, nil
}

// memberlist uses the address-aware forms when the transport has them.
func (r *recorder) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return r.WriteTo(b, a.Addr)
}

func (r *recorder) DialAddressTimeout(a memberlist.Address, d time.Duration) (net.Conn, error) {
	return r.DialTimeout(a.Addr, d)
}

type recConn struct {
	net.Conn
	to  string
	mu  sync.Mutex
	out []byte
}

func (c *recConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.out = append(c.out, b...)
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (w *wire) take() ([]capture, []capture) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var streams []capture
	for _, s := range w.streams {
		s.mu.Lock()
		streams = append(streams, capture{s.to, append([]byte(nil), s.out...)})
		s.mu.Unlock()
	}
	pk := w.packets
	w.packets, w.streams = nil, nil
	return pk, streams
}

func startRecorded(t *testing.T, name, ip string, join []string, reg *prometheus.Registry, w *wire) *Node {
	t.Helper()
	nt, err := gossip.NewTransport(ip, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := Start(Config{Name: name, DataDir: t.TempDir(), Region: "ord",
		GossipAddr: fmt.Sprintf("%s:%d", ip, nt.GetAutoBindPort()), Join: join, GossipKey: testKey,
		AEInterval: 200 * time.Millisecond, Transport: &recorder{nt, w}, TuneMemberlist: fastFailureDetection,
		Registerer: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		nt.Shutdown()
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// TestReplayedGossipHasNoEffect records the wire while h0 forwards `machines stop`
// to the machine's host h1, starts the machine again, then sends every recorded
// packet and stream to h1 again from another address (what anyone on the underlay
// can do without the key). The machine must stay started, and h1 must count the
// replays as dropped.
func TestReplayedGossipHasNoEffect(t *testing.T) {
	base := 10 + ipCounter.Add(2)
	ip0, ip1, attacker := fmt.Sprintf("127.0.%d.1", 150+base%50), fmt.Sprintf("127.0.%d.2", 150+base%50), fmt.Sprintf("127.0.%d.3", 150+base%50)
	w0, w1 := &wire{}, &wire{}
	reg1 := prometheus.NewRegistry()
	h0 := startRecorded(t, "h0", ip0, nil, prometheus.NewRegistry(), w0)
	a, p := h0.gossip.LocalAddr()
	h1 := startRecorded(t, "h1", ip1, []string{fmt.Sprintf("%s:%d", a, p)}, reg1, w1)
	ctx := context.Background()
	waitFor(t, 10*time.Second, "membership", func() bool { return len(h0.gossip.Members()) == 2 && len(h1.gossip.Members()) == 2 })

	if _, err := h0.Orgs.Create(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := h0.Apps.Create(ctx, AppSpec{Name: "web", Org: "acme", Network: ""}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "app on h1", func() bool { _, err := h1.Machines.List("acme", "web"); return err == nil })
	m, err := h1.Machines.Create(ctx, MachineSpec{App: "web"})
	if err != nil {
		t.Fatal(err)
	}
	state := func(n *Node) string {
		mm, err := n.Machines.Get(m.ID)
		if err != nil {
			return err.Error()
		}
		return mm.State
	}
	waitFor(t, 5*time.Second, "machine on h0", func() bool { return state(h0) == "started" })

	w0.take() // from here on, record the operation only
	if _, err := h0.Machines.Action(ctx, m.ID, "stop"); err != nil {
		t.Fatal(err)
	}
	packets, streams := w0.take()
	if _, err := h0.Machines.Action(ctx, m.ID, "start"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "restart seen on both hosts", func() bool { return state(h0) == "started" && state(h1) == "started" })
	replays := func() float64 {
		mfs, _ := reg1.Gather()
		for _, mf := range mfs {
			if mf.GetName() != "dogwood_gossip_messages_dropped_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "reason" && l.GetValue() == "replay" {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
		return 0
	}
	before := replays()

	// Replay everything h0 sent to h1 during the stop, from another address.
	sent := 0
	for _, s := range streams {
		if !strings.HasPrefix(s.to, ip1+":") || len(s.data) == 0 {
			continue
		}
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(attacker)}, Timeout: time.Second}
		c, err := d.Dial("tcp", s.to)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(s.data)
		c.Close()
		sent++
	}
	uc, err := net.ListenPacket("udp", attacker+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	for _, pk := range packets {
		if strings.HasPrefix(pk.to, ip1+":") {
			ua, _ := net.ResolveUDPAddr("udp", pk.to)
			uc.WriteTo(pk.data, ua)
			sent++
		}
	}
	if len(streams) == 0 {
		t.Fatal("recorded no stream: the stop request was not captured")
	}
	t.Logf("replayed %d recorded packets and streams", sent)
	waitFor(t, 5*time.Second, "h1 to refuse or act on the replayed request", func() bool {
		return replays() > before || state(h1) != "started"
	})
	// The refused replay changed nothing, now or in the second after: every change
	// h1's catalog makes meanwhile is looked at.
	changed, stop := h1.cat.Watch()
	defer stop()
	quiet := time.NewTimer(time.Second)
	defer quiet.Stop()
	for watching := true; watching; {
		if s := state(h1); s != "started" {
			t.Fatalf("the replayed stop took effect: machine is %s on h1", s)
		}
		select {
		case <-changed:
		case <-quiet.C:
			watching = false
		}
	}
	t.Logf("h1 dropped %v replayed messages", replays()-before)
}

func waitFor(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !f() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
