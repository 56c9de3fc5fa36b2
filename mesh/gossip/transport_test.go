package gossip

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"
)

func newTestTransport(t *testing.T) *Transport {
	t.Helper()
	tr, err := NewTransport("127.0.0.1", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Shutdown() })
	return tr
}

// TestTransportPackets: every packet comes out whole, in a buffer of its own size,
// and a later packet does not overwrite an earlier one (the read buffer is reused).
func TestTransportPackets(t *testing.T) {
	tr := newTestTransport(t)
	to := fmt.Sprintf("127.0.0.1:%d", tr.GetAutoBindPort())
	sender := newTestTransport(t)
	sent := [][]byte{bytes.Repeat([]byte{1}, 1200), {2}, bytes.Repeat([]byte{3}, 300)}
	for _, p := range sent {
		if _, err := sender.WriteTo(p, to); err != nil {
			t.Fatal(err)
		}
	}
	var got [][]byte
	for range sent {
		select {
		case p := <-tr.PacketCh():
			if cap(p.Buf) != len(p.Buf) {
				t.Errorf("packet of %d bytes holds a %d-byte buffer", len(p.Buf), cap(p.Buf))
			}
			if p.From.String() != fmt.Sprintf("127.0.0.1:%d", sender.GetAutoBindPort()) || p.Timestamp.IsZero() {
				t.Errorf("packet from %v at %v", p.From, p.Timestamp)
			}
			got = append(got, p.Buf)
		case <-time.After(5 * time.Second):
			t.Fatalf("packet %d never arrived", len(got))
		}
	}
	for i := range sent {
		if !bytes.Equal(got[i], sent[i]) {
			t.Errorf("packet %d: got %d bytes starting %v, sent %d starting %v", i, len(got[i]), got[i][:1], len(sent[i]), sent[i][:1])
		}
	}
}

func TestTransportStreams(t *testing.T) {
	tr := newTestTransport(t)
	c, err := tr.DialTimeout(fmt.Sprintf("127.0.0.1:%d", tr.GetAutoBindPort()), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("push"))
	select {
	case s := <-tr.StreamCh():
		defer s.Close()
		buf := make([]byte, 4)
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := s.Read(buf); err != nil || string(buf) != "push" {
			t.Fatalf("stream read %q, %v", buf, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream never accepted")
	}
}

// TestTransportShutdownUnread: a packet and a stream nobody reads must not keep
// Shutdown waiting (memberlist's NetTransport waited for a reader forever).
func TestTransportShutdownUnread(t *testing.T) {
	tr, err := NewTransport("127.0.0.1", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", tr.GetAutoBindPort())
	u, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	u.Write([]byte("x"))
	u.Close()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(50 * time.Millisecond) // let both listeners block on their channels
	done := make(chan struct{})
	go func() { tr.Shutdown(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown hung on an unread packet or stream")
	}
	tr.Shutdown() // twice is harmless
}

func TestTransportAdvertiseAndBind(t *testing.T) {
	tr := newTestTransport(t)
	ip, port, err := tr.FinalAdvertiseAddr("", 0)
	if err != nil || !ip.Equal(net.IPv4(127, 0, 0, 1)) || port != tr.GetAutoBindPort() {
		t.Fatalf("bound address: %v %d %v", ip, port, err)
	}
	ip, port, err = tr.FinalAdvertiseAddr("198.18.0.7", 7946)
	if err != nil || ip.String() != "198.18.0.7" || len(ip) != net.IPv4len || port != 7946 {
		t.Fatalf("explicit address: %v %d %v", ip, port, err)
	}
	if _, _, err := tr.FinalAdvertiseAddr("not-an-ip", 1); err == nil {
		t.Fatal("a bad advertise address was accepted")
	}
	if _, err := NewTransport("nonsense", 0, nil); err == nil {
		t.Fatal("a bad bind address was accepted")
	}
	// The port is taken (TCP and UDP) by tr.
	if _, err := NewTransport("127.0.0.1", tr.GetAutoBindPort(), nil); err == nil {
		t.Fatal("binding a port in use succeeded")
	}
}
