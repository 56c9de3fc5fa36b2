package netlimit

import (
	"errors"
	"io"
	"net"
	"testing"
)

// pipeConn is a net.Conn whose remote address names a source.
type pipeConn struct {
	net.Conn
	src string
}

func (c pipeConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.ParseIP(c.src), Port: 1} }

func stream(t *testing.T, b *Bytes, src string, payload []byte) (net.Conn, func() (int, error)) {
	a, z := net.Pipe()
	go func() { z.Write(payload); z.Close() }()
	c := b.Wrap(pipeConn{a, src})
	return c, func() (int, error) {
		n, err := io.Copy(io.Discard, c)
		return int(n), err
	}
}

func TestBytesBudget(t *testing.T) {
	b := &Bytes{PerStream: 100, PerSource: 150, Total: 250,
		Declared: func(p []byte) (int64, bool) { return int64(p[0]), p[0] != 0 }}
	// Within every limit.
	c1, read := stream(t, b, "10.0.0.1", make([]byte, 90))
	if n, err := read(); n != 90 || err != nil {
		t.Fatalf("a stream within its budget: %d %v", n, err)
	}
	// Over the per-stream limit.
	c2, read := stream(t, b, "10.0.0.2", make([]byte, 120))
	if _, err := read(); !errors.Is(err, ErrBudget) {
		t.Fatalf("a 120-byte stream: %v", err)
	}
	c2.Close()
	// Over the source's limit while c1 holds 90.
	c3, read := stream(t, b, "10.0.0.1", make([]byte, 80))
	if _, err := read(); !errors.Is(err, ErrBudget) {
		t.Fatalf("a source over its budget: %v", err)
	}
	c3.Close()
	if b.Held() != 90 {
		t.Fatalf("held %d, want c1's 90", b.Held())
	}
	c1.Close()
	if b.Held() != 0 {
		t.Fatalf("held %d after every stream closed", b.Held())
	}
	// A header announcing more than a stream may read is cut at once.
	big := make([]byte, 50)
	big[0] = 200
	c4, read := stream(t, b, "10.0.0.3", big)
	if _, err := read(); !errors.Is(err, ErrBudget) {
		t.Fatalf("a stream announcing 200 bytes: %v", err)
	}
	c4.Close()
	if b.Refused() != 3 {
		t.Errorf("refused %d, want 3", b.Refused())
	}
}
