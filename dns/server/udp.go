package server

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// UDP sockets bound to one address are served by our own loop rather than miekg/dns's
// (which reads each packet into a fresh buffer and answers it on a fresh goroutine):
// a batch of queries comes in with one recvmmsg, the common ones are answered in
// place from wire format into reused buffers, and their responses leave with one
// sendmmsg. The rest (forwarded names, odd shapes) go to the unpacked path on a
// goroutine of their own, at most maxSlow at a time per socket.
const (
	batchSize = 16
	// readSize bounds a query read over UDP. Queries are a few hundred bytes; one
	// that was cut (MSG_TRUNC) is dropped and counted as malformed.
	readSize = 4096
	maxSlow  = 256
)

// packetBatch reads datagrams and sends replies a batch at a time. read returns
// what the socket has queued, up to batchSize, without waiting for more; the
// datagrams of one read stay valid until the next, and reply queues an answer to
// the sender of datagram i until flush sends them all.
type packetBatch interface {
	read() (int, error)
	// datagram is datagram i of the last read and its sender's address; ok is
	// false for one that was cut (MSG_TRUNC).
	datagram(i int) (pkt []byte, src netip.Addr, ok bool)
	// from is the sender of datagram i as a net.Addr, for the unpacked path
	// (allocates).
	from(i int) net.Addr
	reply(i int, out []byte)
	flush() error
}

// udpServer serves one UDP socket.
type udpServer struct {
	s    *Server
	l    Listener
	pc   net.PacketConn
	log  *slog.Logger
	slow chan struct{} // semaphore of goroutines on the unpacked path
	wg   sync.WaitGroup
	done chan struct{}
}

func newUDPServer(s *Server, l Listener, pc net.PacketConn) *udpServer {
	return &udpServer{s: s, l: l, pc: pc, log: s.log, slow: make(chan struct{}, maxSlow), done: make(chan struct{})}
}

func (u *udpServer) start() {
	go func() {
		defer close(u.done)
		u.run()
		u.wg.Wait()
	}()
}

// close stops the loop and waits for queries on the unpacked path (bounded by the
// forward timeout).
func (u *udpServer) close() {
	u.pc.Close()
	<-u.done
}

func (u *udpServer) run() {
	b, err := newPacketBatch(u.pc)
	if err != nil {
		u.log.Warn("dns udp socket failed", "addr", u.l.Addr.String(), "err", err)
		return
	}
	var scr [batchSize]scratch
	for i := range scr {
		scr[i].buf = make([]byte, 0, 1536)
	}
	for {
		n, err := b.read()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			//lint:ignore SA1019 the same rule miekg/dns's UDP loop applies
			if ne, ok := err.(net.Error); ok && ne.Temporary() {
				continue
			}
			u.log.Warn("dns udp socket failed", "addr", u.l.Addr.String(), "err", err)
			return
		}
		start := time.Now()
		for i := 0; i < n; i++ {
			pkt, src, ok := b.datagram(i)
			if !ok || len(pkt) < headerLen {
				u.s.met.malformed.Inc()
				continue
			}
			sc := &scr[i]
			if pkt[2]&0x80 == 0 { // a query: response-rate limiting (off by default)
				if v := u.s.rrl.decide(src); v != answer {
					if out := u.s.limitedPacket(sc, v, pkt); out != nil {
						b.reply(i, out)
					}
					continue
				}
			}
			out, qtype, rcode, ok := u.s.respondRaw(sc, pkt, u.l, src, false)
			if !ok {
				u.unpacked(pkt, b.from(i), src)
				continue
			}
			u.s.met.answered(qtype, rcode, false, start)
			b.reply(i, out)
			if cap(out) <= 64<<10 {
				sc.buf = out[:0]
			}
		}
		if err := b.flush(); err != nil {
			u.log.Debug("dns write", "err", err)
		}
	}
}

// batchConn is what ipv4.PacketConn and ipv6.PacketConn have in common.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// xnetBatch is packetBatch through x/net's ReadBatch and WriteBatch, for sockets
// without a descriptor of their own and systems other than Linux (where they read
// one datagram a call). Each datagram's sender is a fresh *net.UDPAddr.
type xnetBatch struct {
	bc   batchConn
	rms  [batchSize]ipv4.Message
	wms  [batchSize]ipv4.Message
	rbuf [batchSize][1][]byte
	wbuf [batchSize][1][]byte
	w    int
}

func newXNetBatch(pc net.PacketConn) *xnetBatch {
	b := &xnetBatch{}
	if a, ok := pc.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() != nil {
		b.bc = ipv4.NewPacketConn(pc)
	} else {
		b.bc = ipv6.NewPacketConn(pc)
	}
	for i := range b.rms {
		b.rbuf[i][0] = make([]byte, readSize)
		b.rms[i].Buffers = b.rbuf[i][:]
		b.wms[i].Buffers = b.wbuf[i][:]
	}
	return b
}

func (b *xnetBatch) read() (int, error) { return b.bc.ReadBatch(b.rms[:], 0) }

func (b *xnetBatch) datagram(i int) ([]byte, netip.Addr, bool) {
	m := &b.rms[i]
	if m.Flags&msgTrunc != 0 {
		return nil, netip.Addr{}, false
	}
	return b.rbuf[i][0][:m.N], addrOf(m.Addr), true
}

func (b *xnetBatch) from(i int) net.Addr { return b.rms[i].Addr }

func (b *xnetBatch) reply(i int, out []byte) {
	b.wbuf[b.w][0], b.wms[b.w].Addr = out, b.rms[i].Addr
	b.w++
}

func (b *xnetBatch) flush() error {
	var first error
	for k := 0; k < b.w; {
		sent, err := b.bc.WriteBatch(b.wms[k:b.w], 0)
		if err != nil {
			if first == nil {
				first = err
			}
			if errors.Is(err, net.ErrClosed) {
				break
			}
			if sent <= 0 {
				sent = 1 // skip the response that failed
			}
		}
		k += sent
	}
	for i := 0; i < b.w; i++ {
		b.wbuf[i][0], b.wms[i].Addr = nil, nil
	}
	b.w = 0
	return first
}

// unpacked answers a query on the unpacked path, off the loop: it may wait for an
// upstream resolver. When maxSlow are already waiting, the query is dropped (the
// client retries) rather than letting one socket grow without bound.
func (u *udpServer) unpacked(pkt []byte, to net.Addr, src netip.Addr) {
	select {
	case u.slow <- struct{}{}:
	default:
		u.s.met.dropped.Inc()
		return
	}
	pkt = append([]byte(nil), pkt...)
	u.wg.Add(1)
	go func() {
		defer func() { <-u.slow; u.wg.Done() }()
		start := time.Now()
		sc := u.s.scratch.Get().(*scratch)
		out, qtype, rcode, fwd, counted := u.s.respondPacket(context.Background(), sc, pkt, u.l, src, false)
		if out != nil {
			if _, err := u.pc.WriteTo(out, to); err != nil {
				u.log.Debug("dns write", "remote", to.String(), "err", err)
			}
			if counted {
				u.s.met.answered(qtype, rcode, fwd, start)
			}
		}
		u.s.release(sc, out)
	}()
}

// limitedPacket is limited for a query still in wire form: a slip echoes the
// question of a query of the common shape without unpacking it; anything else is
// unpacked (and dropped when it does not unpack).
func (s *Server) limitedPacket(sc *scratch, v verdict, pkt []byte) []byte {
	p := &sc.raw
	if v == slip && parseQuery(pkt, p) {
		s.met.rrl.WithLabelValues("slip").Inc()
		flags := uint16(1<<15 | 1<<9) // QR, TC
		if p.rd {
			flags |= 1 << 8
		}
		b := binary.BigEndian.AppendUint16(sc.buf[:0], p.id)
		b = binary.BigEndian.AppendUint16(b, flags)
		b = append(b, 0, 1, 0, 0, 0, 0, 0, 0)
		b = append(b, p.qname...)
		b = binary.BigEndian.AppendUint16(b, p.qtype)
		return binary.BigEndian.AppendUint16(b, p.qclass)
	}
	var req dns.Msg
	if v == slip && req.Unpack(pkt) != nil {
		v = drop
	}
	return s.limited(sc, v, &req)
}

// respondPacket answers one query packet exactly as miekg/dns's server followed by
// our handler does (the reference behaviour): the fast path when it takes the query,
// else miekg/dns's header checks, its FORMERR/NOTIMP replies for queries it rejects,
// and respond on the unpacked message. nil means drop. counted is false for the
// replies miekg/dns gave itself, which the query metrics never saw.
func (s *Server) respondPacket(ctx context.Context, sc *scratch, pkt []byte, l Listener, src netip.Addr, tcp bool) (out []byte, qtype uint16, rcode int, fwd, counted bool) {
	if sc == nil {
		sc = newScratch().(*scratch)
	}
	if out, qtype, rcode, ok := s.respondRaw(sc, pkt, l, src, tcp); ok {
		return out, qtype, rcode, false, true
	}
	if len(pkt) < headerLen {
		s.met.malformed.Inc()
		return nil, 0, 0, false, false
	}
	dh := dns.Header{
		Id: binary.BigEndian.Uint16(pkt), Bits: binary.BigEndian.Uint16(pkt[2:]),
		Qdcount: binary.BigEndian.Uint16(pkt[4:]), Ancount: binary.BigEndian.Uint16(pkt[6:]),
		Nscount: binary.BigEndian.Uint16(pkt[8:]), Arcount: binary.BigEndian.Uint16(pkt[10:]),
	}
	var req dns.Msg
	action := dns.DefaultMsgAcceptFunc(dh)
	switch action {
	case dns.MsgIgnore:
		s.met.malformed.Inc()
		return nil, 0, 0, false, false
	case dns.MsgAccept:
		if err := req.Unpack(pkt); err == nil {
			out, qtype, rcode, fwd = s.respond(ctx, sc, &req, l, src, tcp)
			return out, qtype, rcode, fwd, out != nil
		}
		s.met.malformed.Inc()
	default:
		req.Unpack(pkt[:headerLen]) // the header alone, as miekg/dns keeps it
	}
	opcode := req.Opcode
	req.SetRcodeFormatError(&req)
	req.Zero = false
	if action == dns.MsgRejectNotImplemented {
		req.Opcode = opcode
		req.Rcode = dns.RcodeNotImplemented
	}
	req.Ns, req.Answer, req.Extra = nil, nil, nil
	out, err := req.PackBuffer(sc.buf[:0])
	if err != nil {
		return nil, 0, 0, false, false
	}
	return out, 0, 0, false, false
}
