// Package netlimit owns connection caps for the agent's TCP listeners: a total
// cap, shareable between listeners (every DNS listener draws from one pool), and a
// cap per source, so that one client (a tenant machine, a scanner on the underlay)
// can never hold all of a listener's connections, and no listener can take the
// process's file descriptors from the others.
//
// A connection over a cap is accepted and closed at once rather than left in the
// kernel's backlog: a flood then costs the attacker a connection each time and
// legitimate clients from other sources keep being served.
package netlimit

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Pool is a total connection budget. One Pool may back several listeners.
type Pool struct {
	max    int
	active atomic.Int64
}

// NewPool returns a budget of max connections (max <= 0: unlimited).
func NewPool(max int) *Pool { return &Pool{max: max} }

func (p *Pool) take() bool {
	if p.max <= 0 {
		p.active.Add(1)
		return true
	}
	if p.active.Add(1) > int64(p.max) {
		p.active.Add(-1)
		return false
	}
	return true
}

func (p *Pool) release() { p.active.Add(-1) }

// Active is the number of connections open against the pool.
func (p *Pool) Active() int { return int(p.active.Load()) }

// Gate admits connections within a total and a per-source cap. Listener uses it
// for sockets it accepts; a transport that receives connections accepted
// elsewhere (memberlist's stream channel) uses it directly.
type Gate struct {
	pool    *Pool
	perSrc  int
	mu      sync.Mutex
	bySrc   map[netip.Prefix]int
	refused atomic.Uint64
	// OnRefuse, if set, is called for each connection closed for being over a cap.
	OnRefuse func()
}

// NewGate caps connections at pool's budget in total and perSource from one
// source (perSource <= 0: no per-source cap). A nil pool is unlimited.
func NewGate(pool *Pool, perSource int) *Gate {
	if pool == nil {
		pool = NewPool(0)
	}
	return &Gate{pool: pool, perSrc: perSource, bySrc: map[netip.Prefix]int{}}
}

// Admit returns c wrapped so that closing it frees its place, or, over a cap,
// closes c and returns false.
func (g *Gate) Admit(c net.Conn) (net.Conn, bool) {
	src := Source(c.RemoteAddr())
	if !g.pool.take() {
		g.refuse(c)
		return nil, false
	}
	if g.perSrc > 0 {
		g.mu.Lock()
		if g.bySrc[src] >= g.perSrc {
			g.mu.Unlock()
			g.pool.release()
			g.refuse(c)
			return nil, false
		}
		g.bySrc[src]++
		g.mu.Unlock()
	}
	return &conn{Conn: c, release: func() { g.release(src) }}, true
}

// Listener wraps a net.Listener with a Gate.
type Listener struct {
	net.Listener
	*Gate
}

// Wrap caps ln: at most pool's budget in total and perSource connections from one
// source (perSource <= 0: no per-source cap). A nil pool is unlimited.
func Wrap(ln net.Listener, pool *Pool, perSource int) *Listener {
	return &Listener{Listener: ln, Gate: NewGate(pool, perSource)}
}

// Source is what a per-source cap counts: a 6PN machine or peer (/112, the block
// one tenant owns), another IPv6 client's /64 (what one site typically holds), or
// one IPv4 address. Unix-socket clients share one key.
func Source(a net.Addr) netip.Prefix {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Prefix{}
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return netip.Prefix{}
	}
	ip = ip.Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
		if netip.MustParsePrefix("fdaa::/16").Contains(ip) {
			bits = 112
		}
	}
	p, _ := ip.Prefix(bits)
	return p
}

// Accept returns the next connection within the caps; connections over a cap are
// closed and counted.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if c, ok := l.Admit(c); ok {
			return c, nil
		}
	}
}

func (g *Gate) refuse(c net.Conn) {
	g.refused.Add(1)
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0) // RST: no TIME_WAIT left behind per refused flood connection
	}
	c.Close()
	if g.OnRefuse != nil {
		g.OnRefuse()
	}
}

func (g *Gate) release(src netip.Prefix) {
	if g.perSrc > 0 {
		g.mu.Lock()
		if g.bySrc[src]--; g.bySrc[src] <= 0 {
			delete(g.bySrc, src)
		}
		g.mu.Unlock()
	}
	g.pool.release()
}

// Refused counts connections closed for being over a cap.
func (g *Gate) Refused() uint64 { return g.refused.Load() }

// Active is the number of connections this gate's pool holds.
func (g *Gate) Active() int { return g.pool.Active() }

type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
