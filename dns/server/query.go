package server

import (
	"encoding/binary"

	"github.com/miekg/dns"
)

// headerLen is the length of a DNS message header.
const headerLen = 12

// rawQuery is what the fast path reads from a query packet without unpacking it
// into a dns.Msg (which costs about ten allocations a query).
type rawQuery struct {
	id     uint16
	rd, cd bool
	qname  []byte // wire format, as sent; aliases the packet
	qtype  uint16
	qclass uint16
	edns   bool
	do     bool
	udp    uint16
	ecs    ecsInfo
}

// ecsInfo is the EDNS Client Subnet option of a query, in the form scoping and the
// echo need; the unpacked path fills it from miekg/dns's option.
type ecsInfo struct {
	present bool
	family  uint16
	mask    uint8
	// addr is the address zero-padded to 16 bytes (family 2) or 4 (family 1).
	addr [16]byte
}

func ecsFrom(e *dns.EDNS0_SUBNET) ecsInfo {
	if e == nil {
		return ecsInfo{}
	}
	info := ecsInfo{present: true, family: e.Family, mask: e.SourceNetmask}
	switch e.Family {
	case 1:
		copy(info.addr[:], e.Address.To4())
	case 2:
		copy(info.addr[:], e.Address.To16())
	}
	return info
}

// parseQuery reads the common shape of a query: QR clear, opcode QUERY, one
// question whose name has no compression pointer, no answer or authority records,
// and at most one additional record, an OPT of version 0 at the root whose only
// option is at most one EDNS Client Subnet of family 2. It reports false for
// anything else (those take miekg/dns's unpacking, whose behaviour is the
// reference), so the two paths cannot answer a query differently.
func parseQuery(b []byte, q *rawQuery) bool {
	if len(b) < headerLen {
		return false
	}
	flags := binary.BigEndian.Uint16(b[2:])
	if flags&(1<<15) != 0 || (flags>>11)&0xf != dns.OpcodeQuery {
		return false
	}
	qd, an, ns, ar := binary.BigEndian.Uint16(b[4:]), binary.BigEndian.Uint16(b[6:]), binary.BigEndian.Uint16(b[8:]), binary.BigEndian.Uint16(b[10:])
	if qd != 1 || an != 0 || ns != 0 || ar > 1 {
		return false
	}
	*q = rawQuery{id: binary.BigEndian.Uint16(b), rd: flags&(1<<8) != 0, cd: flags&(1<<4) != 0}
	off := headerLen
	for {
		if off >= len(b) {
			return false
		}
		l := int(b[off])
		if l == 0 {
			off++
			break
		}
		if l > 63 {
			return false // a compression pointer or a reserved label type
		}
		off += 1 + l
	}
	if off-headerLen > 255 || off+4 > len(b) {
		return false
	}
	q.qname = b[headerLen:off]
	q.qtype = binary.BigEndian.Uint16(b[off:])
	q.qclass = binary.BigEndian.Uint16(b[off+2:])
	off += 4
	if ar == 0 {
		return off == len(b)
	}
	// OPT: root owner, type, class = UDP size, TTL = extended rcode, version, flags.
	if off+11 > len(b) || b[off] != 0 || binary.BigEndian.Uint16(b[off+1:]) != dns.TypeOPT {
		return false
	}
	q.edns = true
	q.udp = binary.BigEndian.Uint16(b[off+3:])
	if b[off+6] != 0 { // version
		return false
	}
	q.do = binary.BigEndian.Uint16(b[off+7:])&(1<<15) != 0
	rdlen := int(binary.BigEndian.Uint16(b[off+9:]))
	off += 11
	if off+rdlen != len(b) {
		return false
	}
	for opts := b[off:]; len(opts) > 0; {
		if len(opts) < 4 {
			return false
		}
		code, l := binary.BigEndian.Uint16(opts), int(binary.BigEndian.Uint16(opts[2:]))
		if 4+l > len(opts) || code != dns.EDNS0SUBNET || q.ecs.present {
			return false
		}
		o := opts[4 : 4+l]
		if l < 4 || binary.BigEndian.Uint16(o) != 2 || o[2] > 128 || o[3] > 128 || l-4 > 16 {
			return false
		}
		q.ecs = ecsInfo{present: true, family: 2, mask: o[2]}
		copy(q.ecs.addr[:], o[4:])
		opts = opts[4+l:]
	}
	return true
}
