package server

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"

	"github.com/dogwood/dogwood/dns/resolve"
)

// handler serves one listener; it knows the address it was bound to, which is what
// scoping rule 1 needs even for TCP.
type handler struct {
	s *Server
	l Listener
}

// ServeDNS implements dns.Handler.
func (h *handler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	start := time.Now()
	ra := w.RemoteAddr()
	_, tcp := ra.(*net.TCPAddr)
	sc := h.s.scratch.Get().(*scratch)
	if !tcp && !req.Response {
		if v := h.s.rrl.decide(addrOf(ra)); v != answer {
			if out := h.s.limited(sc, v, req); out != nil {
				w.Write(out)
			}
			h.s.scratch.Put(sc)
			return
		}
	}
	out, qtype, rcode, fwd := h.s.respond(context.Background(), sc, req, h.l, addrOf(ra), tcp)
	if out != nil {
		if _, err := w.Write(out); err != nil {
			h.s.log.Debug("dns write", "remote", ra.String(), "err", err)
		}
		h.s.met.answered(qtype, rcode, fwd, start)
	}
	h.s.release(sc, out)
}

// release gives a scratch back to the pool with out as its buffer, unless out grew
// too large to keep.
func (s *Server) release(sc *scratch, out []byte) {
	if cap(out) <= 64<<10 {
		sc.buf = out[:0]
		s.scratch.Put(sc)
	}
}

// limited is what response-rate limiting sends instead of the answer (nil: nothing)
// and counts it: a slip is truncated and empty, so a real resolver retries over TCP.
func (s *Server) limited(sc *scratch, v verdict, req *dns.Msg) []byte {
	if v == drop {
		s.met.rrl.WithLabelValues("drop").Inc()
		return nil
	}
	s.met.rrl.WithLabelValues("slip").Inc()
	m := new(dns.Msg)
	m.Id, m.Response, m.Opcode, m.Truncated = req.Id, true, req.Opcode, true
	m.RecursionDesired = req.RecursionDesired
	if len(req.Question) == 1 {
		m.Question = req.Question
	}
	out, err := m.PackBuffer(sc.buf[:0])
	if err != nil {
		return nil
	}
	return out
}

// scratch is per-query working memory, pooled: it keeps the response buffer and the
// packed question name off the garbage collector and off the per-packet goroutine's
// stack (miekg/dns runs every UDP query on a fresh goroutine; growing its stack
// showed up as a tenth of the CPU time).
type scratch struct {
	buf []byte
	qn  [256]byte
	opt [256]byte // the ECS echo and an Extended DNS Error's text
	rq  resolve.Request
	raw rawQuery
}

func newScratch() any { return &scratch{buf: make([]byte, 0, 1536)} }

func addrOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// respond computes the response to req arriving on l from src. It returns nil when
// the query must be dropped (it was a response). fwd reports the forwarding path.
func (s *Server) respond(ctx context.Context, sc *scratch, req *dns.Msg, l Listener, src netip.Addr, tcp bool) (out []byte, qtype uint16, rcode int, fwd bool) {
	if sc == nil {
		sc = newScratch().(*scratch)
	}
	buf := sc.buf[:0]
	if req.Response {
		return nil, 0, 0, false
	}
	if len(req.Question) > 0 {
		qtype = req.Question[0].Qtype
	}
	if req.Opcode != dns.OpcodeQuery {
		return s.fallback(buf, req, dns.RcodeNotImplemented), qtype, dns.RcodeNotImplemented, false
	}
	if len(req.Question) != 1 {
		return s.fallback(buf, req, dns.RcodeFormatError), qtype, dns.RcodeFormatError, false
	}
	q := req.Question[0]

	var opt *dns.OPT
	for _, rr := range req.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			if opt != nil || o.Hdr.Name != "." {
				return s.fallback(buf, req, dns.RcodeFormatError), qtype, dns.RcodeFormatError, false
			}
			opt = o
		}
	}

	n, err := dns.PackDomainName(q.Name, sc.qn[:], 0, nil, false)
	if err != nil {
		return s.fallback(buf, req, dns.RcodeFormatError), qtype, dns.RcodeFormatError, false
	}
	rq := &sc.rq
	*rq = resolve.Request{
		ID: req.Id, RD: req.RecursionDesired, CD: req.CheckingDisabled,
		QName: sc.qn[:n], QType: q.Qtype, QClass: q.Qclass,
	}
	var ecs ecsInfo
	var udp uint16
	if opt != nil {
		rq.EDNS, rq.DO = true, opt.Do()
		if opt.Version() != 0 {
			s.limits(rq, tcp, 0)
			return resolve.AppendError(buf, rq, resolve.RcodeBadVers), qtype, dns.RcodeBadVers, false
		}
		udp = opt.UDPSize()
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_SUBNET); ok {
				ecs = ecsFrom(e)
				break
			}
		}
	}
	s.limits(rq, tcp, udp)
	netID, ok := s.scope(sc, rq, ecs, l, src)
	if !ok {
		return resolve.AppendError(buf, rq, dns.RcodeRefused), qtype, dns.RcodeRefused, false
	}
	out, rcode, ours := s.res.Answer(buf, netID, q.Name, rq)
	if ours {
		return out, qtype, rcode, false
	}
	return s.forward(ctx, buf, req, rq, tcp)
}

// respondRaw is respond for a query still in wire form: it answers the common shape
// of query (see parseQuery) for names that are ours without unpacking it or
// allocating. ok is false when the query needs the unpacked path (respond).
func (s *Server) respondRaw(sc *scratch, pkt []byte, l Listener, src netip.Addr, tcp bool) (out []byte, qtype uint16, rcode int, ok bool) {
	p := &sc.raw
	if !parseQuery(pkt, p) {
		return nil, 0, 0, false
	}
	rq := &sc.rq
	*rq = resolve.Request{
		ID: p.id, RD: p.rd, CD: p.cd,
		QName: p.qname, QType: p.qtype, QClass: p.qclass,
		EDNS: p.edns, DO: p.do,
	}
	s.limits(rq, tcp, p.udp)
	netID, ok := s.scope(sc, rq, p.ecs, l, src)
	if !ok {
		return resolve.AppendError(sc.buf[:0], rq, dns.RcodeRefused), p.qtype, dns.RcodeRefused, true
	}
	out, rcode, ok = s.res.AnswerWire(sc.buf[:0], netID, rq)
	return out, p.qtype, rcode, ok
}

// limits sets how large the response may be and the buffer size we advertise: 512
// bytes over UDP without EDNS, the client's EDNS buffer (udp) capped by ours, and
// everything over TCP.
func (s *Server) limits(rq *resolve.Request, tcp bool, udp uint16) {
	rq.Limit, rq.UDPSize = resolve.MaxMsg, uint16(s.maxUDP)
	if !tcp {
		rq.Limit = 512
		if rq.EDNS {
			rq.Limit = min(max(int(udp), 512), s.maxUDP)
		}
	}
}

// scope decides the query's network (SPEC §4) and prepares the ECS echo; false
// means REFUSED.
func (s *Server) scope(sc *scratch, rq *resolve.Request, ecs ecsInfo, l Listener, src netip.Addr) (uint32, bool) {
	netID, rule := scope(l, src, ecs)
	rq.Options = sc.opt[:0]
	if ecs.present {
		sp := uint8(0)
		if rule == BySubnet {
			sp = 48 // the answer is the same for the whole /48
		}
		rq.Options = appendECS(rq.Options, ecs, sp)
	}
	if rule == Refused {
		if rq.EDNS {
			rq.Options = appendEDE(rq.Options, edeProhibited, refusedReason(l, src, ecs))
		}
		return 0, false
	}
	return netID, true
}

func (s *Server) forward(ctx context.Context, buf []byte, req *dns.Msg, rq *resolve.Request, tcp bool) ([]byte, uint16, int, bool) {
	qtype := rq.QType
	s.met.forwarded.Inc()
	resp, err := s.fwd.Exchange(ctx, req, tcp)
	if err != nil {
		s.log.Debug("forward failed", "name", req.Question[0].Name, "err", err)
		return resolve.AppendError(buf, rq, dns.RcodeServerFailure), qtype, dns.RcodeServerFailure, true
	}
	resp.Compress = true
	if !tcp && resp.Len() > rq.Limit {
		resp.Truncate(rq.Limit)
	}
	out, err := resp.PackBuffer(buf)
	if err != nil {
		return resolve.AppendError(buf, rq, dns.RcodeServerFailure), qtype, dns.RcodeServerFailure, true
	}
	return out, qtype, resp.Rcode, true
}

// fallback answers queries too odd for the fast path (bad opcode, question count,
// names that do not pack) with miekg/dns's own reply builder.
func (s *Server) fallback(buf []byte, req *dns.Msg, rcode int) []byte {
	m := new(dns.Msg)
	m.Id = req.Id
	m.Response = true
	m.Opcode = req.Opcode
	m.RecursionDesired = req.RecursionDesired
	m.Rcode = rcode
	if rcode != dns.RcodeFormatError && len(req.Question) == 1 {
		m.Question = req.Question
	}
	out, err := m.PackBuffer(buf)
	if err != nil {
		m.Question = nil
		out, _ = m.PackBuffer(buf)
	}
	return out
}

// appendECS encodes an EDNS Client Subnet option echoing the query's with our scope.
func appendECS(b []byte, e ecsInfo, scope uint8) []byte {
	var addr []byte
	switch e.family {
	case 1:
		addr = e.addr[:4]
	case 2:
		addr = e.addr[:16]
	}
	nb := (int(e.mask) + 7) / 8
	if nb > len(addr) {
		nb = len(addr)
	}
	b = binary.BigEndian.AppendUint16(b, dns.EDNS0SUBNET)
	b = binary.BigEndian.AppendUint16(b, uint16(4+nb))
	b = binary.BigEndian.AppendUint16(b, e.family)
	b = append(b, e.mask, scope)
	return append(b, addr[:nb]...)
}

// edeProhibited is RFC 8914's info-code 18: the server refuses by policy.
const edeProhibited = 18

// appendEDE appends an Extended DNS Error option (RFC 8914) to OPT rdata.
func appendEDE(b []byte, code uint16, text string) []byte {
	b = binary.BigEndian.AppendUint16(b, dns.EDNS0EDE)
	b = binary.BigEndian.AppendUint16(b, uint16(2+len(text)))
	b = binary.BigEndian.AppendUint16(b, code)
	return append(b, text...)
}
