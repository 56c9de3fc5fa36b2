package netlimit

import (
	"io"
	"net"
	"testing"
	"time"
)

// served accepts on l and reports each accepted connection (kept open).
func served(t *testing.T, l *Listener) chan net.Conn {
	got := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			got <- c
		}
	}()
	t.Cleanup(func() { l.Close() })
	return got
}

// open dials from src and reports whether the server kept the connection: a
// refused one is closed by the server, so a read sees EOF or a reset at once.
func open(t *testing.T, addr string, src string) (net.Conn, bool) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nopConn{}, false // reset before the handshake finished: refused
	}
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, err = c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.SetReadDeadline(time.Time{})
		return c, true
	}
	if err != io.EOF && err != nil {
		return c, false
	}
	return c, false
}

func TestPerSourceAndTotalCaps(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Wrap(ln, NewPool(5), 2)
	accepted := served(t, l)
	addr := ln.Addr().String()

	var keep []net.Conn
	for i, want := range []bool{true, true, false} { // a third from one source: refused
		c, ok := open(t, addr, "127.0.0.2")
		if ok != want {
			t.Fatalf("connection %d from 127.0.0.2 kept=%v, want %v", i, ok, want)
		}
		keep = append(keep, c)
	}
	// Other sources still get in, up to the total of 5.
	for i, src := range []string{"127.0.0.3", "127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		c, ok := open(t, addr, src)
		if want := i < 3; ok != want {
			t.Fatalf("connection from %s kept=%v, want %v (total cap 5)", src, ok, want)
		}
		keep = append(keep, c)
	}
	if got := l.Refused(); got != 2 {
		t.Errorf("refused %d, want 2", got)
	}
	// Closing server-side connections frees their slots.
	for i := 0; i < 2; i++ {
		(<-accepted).Close()
	}
	if _, ok := open(t, addr, "127.0.0.2"); !ok {
		t.Errorf("after two closes a new connection was refused (active %d)", l.Active())
	}
	for _, c := range keep {
		c.Close()
	}
}

func TestSourceKeys(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"198.18.0.7", "198.18.0.7/32"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"fdaa:0:18:7:1:1:1:2", "fdaa:0:18:7:1:1:1:0/112"},
		{"::ffff:10.0.0.1", "10.0.0.1/32"},
	} {
		if got := Source(&net.TCPAddr{IP: net.ParseIP(tc.ip)}).String(); got != tc.want {
			t.Errorf("Source(%s) = %s, want %s", tc.ip, got, tc.want)
		}
	}
}

type nopConn struct{ net.Conn }

func (nopConn) Close() error { return nil }
