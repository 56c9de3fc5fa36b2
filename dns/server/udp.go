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

// batchConn is what ipv4.PacketConn and ipv6.PacketConn have in common.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// udpServer serves one UDP socket.
type udpServer struct {
	s    *Server
	l    Listener
	pc   net.PacketConn
	bc   batchConn
	log  *slog.Logger
	slow chan struct{} // semaphore of goroutines on the unpacked path
	wg   sync.WaitGroup
	done chan struct{}
}

func newUDPServer(s *Server, l Listener, pc net.PacketConn) *udpServer {
	u := &udpServer{s: s, l: l, pc: pc, log: s.log, slow: make(chan struct{}, maxSlow), done: make(chan struct{})}
	if l.Addr.Is4() || l.Addr.Is4In6() {
		u.bc = ipv4.NewPacketConn(pc)
	} else {
		u.bc = ipv6.NewPacketConn(pc)
	}
	return u
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
	var (
		rms  [batchSize]ipv4.Message
		wms  [batchSize]ipv4.Message
		rbuf [batchSize][1][]byte
		wbuf [batchSize][1][]byte
		scr  [batchSize]scratch
	)
	for i := range rms {
		rbuf[i][0] = make([]byte, readSize)
		rms[i].Buffers = rbuf[i][:]
		wms[i].Buffers = wbuf[i][:]
		scr[i].buf = make([]byte, 0, 1536)
	}
	for {
		n, err := u.bc.ReadBatch(rms[:], 0)
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
		w := 0
		for i := 0; i < n; i++ {
			m := &rms[i]
			if m.Flags&msgTrunc != 0 || m.N < headerLen {
				u.s.met.malformed.Inc()
				continue
			}
			pkt := rbuf[i][0][:m.N]
			src := addrOf(m.Addr)
			sc := &scr[i]
			if pkt[2]&0x80 == 0 { // a query: response-rate limiting (off by default)
				if v := u.s.rrl.decide(src); v != answer {
					if out := u.s.limitedPacket(sc, v, pkt); out != nil {
						wbuf[w][0], wms[w].Addr = out, m.Addr
						w++
					}
					continue
				}
			}
			out, qtype, rcode, ok := u.s.respondRaw(sc, pkt, u.l, src, false)
			if !ok {
				u.unpacked(pkt, m.Addr, src)
				continue
			}
			u.s.met.answered(qtype, rcode, false, start)
			wbuf[w][0] = out
			wms[w].Addr = m.Addr
			w++
			if cap(out) <= 64<<10 {
				sc.buf = out[:0]
			}
		}
		for k := 0; k < w; {
			sent, err := u.bc.WriteBatch(wms[k:w], 0)
			if err != nil {
				u.log.Debug("dns write", "err", err)
				if sent <= 0 {
					sent = 1 // skip the response that failed
				}
			}
			k += sent
		}
		for i := 0; i < w; i++ {
			wbuf[i][0], wms[i].Addr = nil, nil
		}
	}
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
