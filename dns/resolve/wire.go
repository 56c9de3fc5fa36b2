package resolve

import (
	"encoding/binary"
	"strings"
)

// Wire format is written by hand on the hot path: answers are precomputed as packed
// resource records whose owner is a compression pointer to the question name (every
// answer of ours is owned by the name asked), so a response is the request's
// question plus memcpy, and rotating answers is two copies.

// TTL is the time to live of every record we serve (SPEC §4), and the SOA minimum.
const TTL = 5

// DNS constants used here (RFC 1035, 3596, 2782, 6891).
const (
	typeA     = 1
	typeNS    = 2
	typeCNAME = 5
	typeSOA   = 6
	typePTR   = 12
	typeTXT   = 16
	typeAAAA  = 28
	typeSRV   = 33
	typeOPT   = 41
	typeIXFR  = 251
	typeAXFR  = 252
	typeANY   = 255
	classIN   = 1
	classANY  = 255
	headerLen = 12
	// ptrQName is a compression pointer to offset 12, where the question name starts.
	ptrQName = 0xc00c
)

// Response codes.
const (
	RcodeSuccess  = 0
	RcodeFormErr  = 1
	RcodeServFail = 2
	RcodeNXDomain = 3
	RcodeNotImp   = 4
	RcodeRefused  = 5
	RcodeBadVers  = 16
)

// MaxMsg is the largest DNS message (TCP).
const MaxMsg = 65535

// rrset is a packed list of records of one type owned by the question name.
type rrset struct {
	wire []byte
	offs []int32 // start of each record in wire; nil when stride is set
	// stride is the length of every record when they all have the same (an app's
	// AAAA set): offsets are then i*stride, and a large set keeps no offset table.
	stride int32
}

func (s rrset) len() int {
	if s.stride > 0 {
		return len(s.wire) / int(s.stride)
	}
	return len(s.offs)
}

// off is where record i starts in wire.
func (s rrset) off(i int) int {
	if s.stride > 0 {
		return i * int(s.stride)
	}
	return int(s.offs[i])
}

// record returns the i-th record alone.
func (s rrset) record(i int) rrset {
	o := s.off(i)
	return rrset{wire: s.wire[o : o+s.recLen(i)], offs: singleOff}
}

// singleOff is shared by every one-record view; never written.
var singleOff = []int32{0}

// recLen is the length of record i.
func (s rrset) recLen(i int) int {
	if s.stride > 0 {
		return int(s.stride)
	}
	if i+1 < len(s.offs) {
		return int(s.offs[i+1] - s.offs[i])
	}
	return len(s.wire) - int(s.offs[i])
}

// setBuilder accumulates records into one rrset.
type setBuilder struct {
	wire []byte
	offs []int32
	// ttl replaces TTL when hasTTL (custom records carry their own).
	ttl    uint32
	hasTTL bool
}

// begin starts a record of type t and returns where its rdlength goes.
func (b *setBuilder) begin(t uint16) int {
	b.offs = append(b.offs, int32(len(b.wire)))
	b.wire = binary.BigEndian.AppendUint16(b.wire, ptrQName)
	b.wire = binary.BigEndian.AppendUint16(b.wire, t)
	b.wire = binary.BigEndian.AppendUint16(b.wire, classIN)
	ttl := uint32(TTL)
	if b.hasTTL {
		ttl = b.ttl
	}
	b.wire = binary.BigEndian.AppendUint32(b.wire, ttl)
	b.wire = append(b.wire, 0, 0)
	return len(b.wire) - 2
}

func (b *setBuilder) end(lenAt int) {
	binary.BigEndian.PutUint16(b.wire[lenAt:], uint16(len(b.wire)-lenAt-2))
}

func (b *setBuilder) aaaa(a [16]byte) {
	at := b.begin(typeAAAA)
	b.wire = append(b.wire, a[:]...)
	b.end(at)
}

// txt adds one TXT record holding s split into ≤255-byte strings (SPEC §4).
func (b *setBuilder) txt(s string) {
	at := b.begin(typeTXT)
	for {
		n := min(len(s), 255)
		b.wire = append(b.wire, byte(n))
		b.wire = append(b.wire, s[:n]...)
		s = s[n:]
		if s == "" {
			break
		}
	}
	b.end(at)
}

func (b *setBuilder) a(a [4]byte) {
	at := b.begin(typeA)
	b.wire = append(b.wire, a[:]...)
	b.end(at)
}

func (b *setBuilder) srvRR(prio, weight, port uint16, target string) {
	at := b.begin(typeSRV)
	b.wire = binary.BigEndian.AppendUint16(b.wire, prio)
	b.wire = binary.BigEndian.AppendUint16(b.wire, weight)
	b.wire = binary.BigEndian.AppendUint16(b.wire, port)
	b.wire = appendName(b.wire, target)
	b.end(at)
}

// srvVM is a machine's SRV record, priority 0, weight 10 (SPEC §4), with the
// target <id>.vm.<app>.internal. written label by label.
func (b *setBuilder) srvVM(port uint16, id, app string) {
	at := b.begin(typeSRV)
	b.wire = binary.BigEndian.AppendUint16(b.wire, 0)
	b.wire = binary.BigEndian.AppendUint16(b.wire, 10)
	b.wire = binary.BigEndian.AppendUint16(b.wire, port)
	b.wire = appendLabel(b.wire, id)
	b.wire = appendLabel(b.wire, "vm")
	b.wire = appendLabel(b.wire, app)
	b.wire = appendLabel(b.wire, "internal")
	b.wire = append(b.wire, 0)
	b.end(at)
}

// record adds record i of s as it is.
func (b *setBuilder) record(s rrset, i int) {
	o := s.off(i)
	b.offs = append(b.offs, int32(len(b.wire)))
	b.wire = append(b.wire, s.wire[o:o+s.recLen(i)]...)
}

func (b *setBuilder) ptr(target string) { b.name(typePTR, target) }

// name adds a record whose rdata is one domain name (PTR, CNAME).
func (b *setBuilder) name(t uint16, target string) {
	at := b.begin(t)
	b.wire = appendName(b.wire, target)
	b.end(at)
}

func (b *setBuilder) raw(t uint16, rdata []byte) {
	at := b.begin(t)
	b.wire = append(b.wire, rdata...)
	b.end(at)
}

func (b *setBuilder) set() rrset {
	if len(b.offs) == 0 {
		return rrset{}
	}
	if len(b.offs) > 1 {
		stride := int32(len(b.wire)) - b.offs[len(b.offs)-1]
		uniform := true
		for i := 1; i < len(b.offs) && uniform; i++ {
			uniform = b.offs[i]-b.offs[i-1] == stride
		}
		if uniform {
			return rrset{wire: b.wire, stride: stride}
		}
	}
	return rrset{wire: b.wire, offs: b.offs}
}

// appendName writes a name we generated ourselves (plain labels, no escapes).
func appendName(b []byte, name string) []byte {
	name = strings.TrimSuffix(name, ".")
	for name != "" {
		i := strings.IndexByte(name, '.')
		lab := name
		if i >= 0 {
			lab, name = name[:i], name[i+1:]
		} else {
			name = ""
		}
		b = appendLabel(b, lab)
	}
	return append(b, 0)
}

func appendLabel(b []byte, lab string) []byte {
	if len(lab) > 63 {
		lab = lab[:63] // cannot happen for catalog names; keeps the packet valid
	}
	b = append(b, byte(len(lab)))
	return append(b, lab...)
}

// soaRdata is the SOA of a zone we are authoritative for; serial follows the catalog.
func soaRdata(serial uint32) []byte {
	var b []byte
	b = appendName(b, "ns.internal.")
	b = appendName(b, "hostmaster.internal.")
	b = binary.BigEndian.AppendUint32(b, serial)
	b = binary.BigEndian.AppendUint32(b, 60)    // refresh
	b = binary.BigEndian.AppendUint32(b, 10)    // retry
	b = binary.BigEndian.AppendUint32(b, 86400) // expire
	b = binary.BigEndian.AppendUint32(b, TTL)   // minimum: negative answers live 5 s
	return b
}

// Request is what the resolver needs from a query. The handler fills it from the
// unpacked message; QName is the question name in wire format with its case as sent.
type Request struct {
	ID     uint16
	RD, CD bool
	QName  []byte
	QType  uint16
	QClass uint16
	// EDNS is set when the query had an OPT record; then the response has one too,
	// carrying Options (already encoded, e.g. the ECS echo) verbatim.
	EDNS    bool
	DO      bool
	Options []byte
	// Limit is the largest response the client accepts: its UDP buffer, or MaxMsg on TCP.
	Limit int
	// UDPSize is the buffer size we advertise in our OPT record.
	UDPSize uint16
}

// response is an answer before encoding.
type response struct {
	rcode  int
	answer rrset
	// rotate is where rotation starts (0: as stored).
	rotate int
	// soa is the rdata of the authority SOA; zone says which of our zones owns it.
	soa  []byte
	zone zoneID
}

type zoneID uint8

const (
	zoneInternal zoneID = iota
	zoneReverse
)

// zone names in wire format and label counts, to point at them inside the question.
var zoneWire = [...]struct {
	wire   []byte
	labels int
}{
	zoneInternal: {appendName(nil, "internal."), 1},
	zoneReverse:  {appendName(nil, "a.a.d.f.ip6.arpa."), 6},
}

// AppendError appends a response with no records and the given rcode (REFUSED,
// FORMERR, SERVFAIL, …) that echoes the question.
func AppendError(buf []byte, req *Request, rcode int) []byte {
	return encode(buf, req, &response{rcode: rcode}, false)
}

// encode writes a complete response. Answers that do not fit req.Limit are cut at a
// record boundary and TC is set (the client retries over TCP and gets everything).
func encode(buf []byte, req *Request, r *response, aa bool) []byte {
	optLen := 0
	if req.EDNS {
		optLen = 11 + len(req.Options)
	}
	qLen := len(req.QName) + 4
	limit := max(req.Limit, 512)
	fixed := headerLen + qLen + optLen

	soaLen := 0
	if r.soa != nil {
		soaLen = soaSize(req.QName, r.zone, r.soa)
	}

	total := fixed + len(r.answer.wire) + soaLen
	tc := false
	n := r.answer.len()
	if total > limit {
		tc = true
		soaLen = 0
		room := limit - fixed
		k := 0
		for ; k < n; k++ {
			l := r.answer.recLen((r.rotate + k) % n)
			if l > room {
				break
			}
			room -= l
		}
		n = k
	}

	var flags uint16 = 1 << 15 // QR
	if aa {
		flags |= 1 << 10
	}
	if tc {
		flags |= 1 << 9
	}
	if req.RD {
		flags |= 1 << 8
	}
	flags |= 1 << 7 // RA: names outside our zones are resolved for the client
	if req.CD {
		flags |= 1 << 4
	}
	flags |= uint16(r.rcode & 0xf)
	buf = binary.BigEndian.AppendUint16(buf, req.ID)
	buf = binary.BigEndian.AppendUint16(buf, flags)
	buf = binary.BigEndian.AppendUint16(buf, 1)
	buf = binary.BigEndian.AppendUint16(buf, uint16(n))
	ns := 0
	if soaLen > 0 {
		ns = 1
	}
	buf = binary.BigEndian.AppendUint16(buf, uint16(ns))
	ar := 0
	if req.EDNS {
		ar = 1
	}
	buf = binary.BigEndian.AppendUint16(buf, uint16(ar))
	buf = append(buf, req.QName...)
	buf = binary.BigEndian.AppendUint16(buf, req.QType)
	buf = binary.BigEndian.AppendUint16(buf, req.QClass)

	if n > 0 {
		all := r.answer.len()
		if n == all {
			// Whole set, rotated: the tail from the rotation point, then the head.
			at := r.answer.off(r.rotate % all)
			buf = append(buf, r.answer.wire[at:]...)
			buf = append(buf, r.answer.wire[:at]...)
		} else {
			for k := 0; k < n; k++ {
				i := (r.rotate + k) % all
				o := r.answer.off(i)
				buf = append(buf, r.answer.wire[o:o+r.answer.recLen(i)]...)
			}
		}
	}
	if soaLen > 0 {
		buf = appendSOA(buf, req.QName, r.zone, r.soa)
	}
	if req.EDNS {
		buf = append(buf, 0) // root owner
		buf = binary.BigEndian.AppendUint16(buf, typeOPT)
		buf = binary.BigEndian.AppendUint16(buf, req.UDPSize)
		buf = append(buf, byte(r.rcode>>4), 0) // extended rcode, version 0
		var do uint16
		if req.DO {
			do = 1 << 15
		}
		buf = binary.BigEndian.AppendUint16(buf, do)
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(req.Options)))
		buf = append(buf, req.Options...)
	}
	return buf
}

// appendSOA writes the authority SOA, its owner compressed into the question name when
// the question ends in the zone's labels (it always should; the fallback keeps odd
// spellings correct).
func appendSOA(b []byte, qname []byte, z zoneID, rdata []byte) []byte {
	zw := zoneWire[z]
	if off, ok := suffixAt(qname, zw.wire, zw.labels); ok && headerLen+off < 0x3fff {
		b = binary.BigEndian.AppendUint16(b, uint16(0xc000|(headerLen+off)))
	} else {
		b = append(b, zw.wire...)
	}
	b = binary.BigEndian.AppendUint16(b, typeSOA)
	b = binary.BigEndian.AppendUint16(b, classIN)
	b = binary.BigEndian.AppendUint32(b, TTL)
	b = binary.BigEndian.AppendUint16(b, uint16(len(rdata)))
	return append(b, rdata...)
}

// soaSize is the length appendSOA will write.
func soaSize(qname []byte, z zoneID, rdata []byte) int {
	zw := zoneWire[z]
	owner := len(zw.wire)
	if off, ok := suffixAt(qname, zw.wire, zw.labels); ok && headerLen+off < 0x3fff {
		owner = 2
	}
	return owner + 10 + len(rdata)
}

// suffixAt finds where the last `labels` labels of an uncompressed wire name start and
// checks (case-insensitively) that they spell zone. It keeps no per-label table: it
// runs on the per-query goroutine, whose stack should stay small.
func suffixAt(name, zone []byte, labels int) (int, bool) {
	total := 0
	for i := 0; i < len(name) && name[i] != 0; i += 1 + int(name[i]) {
		if name[i] > 63 {
			return 0, false
		}
		total++
	}
	if total < labels {
		return 0, false
	}
	off := 0
	for k := 0; k < total-labels; k++ {
		off += 1 + int(name[off])
	}
	if len(name)-off != len(zone) {
		return 0, false
	}
	for i := range zone {
		c := name[off+i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != zone[i] {
			return 0, false
		}
	}
	return off, true
}
