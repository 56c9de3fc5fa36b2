package netlimit

import (
	"errors"
	"net"
	"net/netip"
	"sync"
)

// ErrBudget is what a Read returns when a stream went over its byte limits.
var ErrBudget = errors.New("stream over its byte budget before authentication")

// Bytes bounds what unauthenticated streams can make a process hold: a stream may
// read at most PerStream bytes, one source (netlimit.Source) at most PerSource
// over its open streams, and all sources together at most Total. Bytes count from
// the Read that returned them until the stream is closed, which is when a reader
// like memberlist's (it buffers a whole declared message before it can decrypt and
// authenticate it) lets go of them. A stream that would go over gets an error and
// is closed; nothing waits.
type Bytes struct {
	PerStream, PerSource, Total int64
	// Declared, when set, reads the size a stream's first bytes announce (ok false
	// when they announce none): a stream that announces more than PerStream is cut
	// before anything past its header is read.
	Declared func(first []byte) (size int64, ok bool)

	mu      sync.Mutex
	total   int64
	bySrc   map[netip.Prefix]int64
	refused uint64
}

// Wrap charges c's reads to the budget.
func (b *Bytes) Wrap(c net.Conn) net.Conn {
	return &budgetConn{Conn: c, b: b, src: Source(c.RemoteAddr())}
}

// Held is what open streams hold now.
func (b *Bytes) Held() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.total
}

// Refused counts streams cut for going over.
func (b *Bytes) Refused() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.refused
}

func (b *Bytes) take(src netip.Prefix, stream, n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bySrc == nil {
		b.bySrc = map[netip.Prefix]int64{}
	}
	if stream+n > b.PerStream || b.bySrc[src]+n > b.PerSource || b.total+n > b.Total {
		b.refused++
		return false
	}
	b.bySrc[src] += n
	b.total += n
	return true
}

func (b *Bytes) give(src netip.Prefix, n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total -= n
	if b.bySrc[src] -= n; b.bySrc[src] <= 0 {
		delete(b.bySrc, src)
	}
}

type budgetConn struct {
	net.Conn
	b    *Bytes
	src  netip.Prefix
	mu   sync.Mutex
	held int64
	over bool
	done bool
	seen bool // the first bytes were checked against Declared
}

func (c *budgetConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	over := c.over
	c.mu.Unlock()
	if over {
		return 0, ErrBudget
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		ok := !c.done
		if !c.seen && c.b.Declared != nil {
			c.seen = true
			if size, known := c.b.Declared(p[:n]); known && size > c.b.PerStream {
				ok = false
				c.b.mu.Lock()
				c.b.refused++
				c.b.mu.Unlock()
			}
		}
		ok = ok && c.b.take(c.src, c.held, int64(n))
		if ok {
			c.held += int64(n)
		} else {
			c.over = true
		}
		c.mu.Unlock()
		if !ok {
			c.Conn.Close()
			return 0, ErrBudget
		}
	}
	return n, err
}

func (c *budgetConn) Close() error {
	c.mu.Lock()
	held := c.held
	c.held, c.done = 0, true
	c.mu.Unlock()
	c.b.give(c.src, held)
	return c.Conn.Close()
}
