package resolve

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/dogwood/dogwood/dns/qname"
	"github.com/dogwood/dogwood/mesh/catalog"
)

// Custom records (`dogwood dns add`) are answered after the generated names: a name
// reaches them only when the grammar does not give it to an existing app or to a
// network-wide listing. Creation refuses collisions both ways; when gossip races
// still produce one, the generated name wins everywhere, deterministically.

// maxChase bounds CNAME and ALIAS chains (loops are refused at creation, but two
// hosts may each add half of one).
const maxChase = 8

// recIndex is a network's custom records, built once per catalog.RecordSet (which
// the catalog shares between snapshots while the records do not change).
type recIndex struct {
	set   *catalog.RecordSet
	nodes map[string]*recNode // by owner name ("api.internal", "*.dev.internal")
	// ents are empty non-terminals: proper ancestors of owners, below internal.
	ents map[string]struct{}
	// wild maps a name to the wildcard node directly below it ("dev.internal" →
	// "*.dev.internal").
	wild  map[string]*recNode
	names rrset // _records.internal TXT
}

// recNode is one owner name.
type recNode struct {
	name string
	// sets are the static records by type (A, AAAA, TXT, SRV, CNAME): a slice, not a
	// map, because a name rarely has more than two types and a map per name would
	// be most of the index's memory.
	sets  []typedSet
	any   rrset  // every static record
	cname string // CNAME target (canonical, no final dot)
	// ALIAS target and the alias's TTL.
	alias    string
	aliasTTL uint32
}

type typedSet struct {
	t uint16
	s rrset
}

func (n *recNode) set(t uint16) rrset {
	for _, ts := range n.sets {
		if ts.t == t {
			return ts.s
		}
	}
	return rrset{}
}

func (ri *recIndex) exists(name string) bool {
	if _, ok := ri.nodes[name]; ok {
		return true
	}
	_, ok := ri.ents[name]
	return ok
}

func buildRecs(rs *catalog.RecordSet) *recIndex {
	ri := &recIndex{set: rs, nodes: map[string]*recNode{}, ents: map[string]struct{}{}, wild: map[string]*recNode{}}
	if rs == nil {
		return ri
	}
	var names []string
	l := rs.List // sorted by name, type, value
	for i := 0; i < len(l); {
		j := i
		for j < len(l) && l[j].Name == l[i].Name {
			j++
		}
		node := buildNode(l[i:j])
		ri.nodes[node.name] = node
		names = append(names, node.name)
		if parent, ok := strings.CutPrefix(node.name, "*."); ok {
			ri.wild[parent] = node
		}
		for s := node.name; ; {
			k := strings.IndexByte(s, '.')
			s = s[k+1:]
			if s == "internal" || k < 0 {
				break
			}
			ri.ents[s] = struct{}{}
		}
		i = j
	}
	for name := range ri.nodes {
		delete(ri.ents, name)
	}
	if len(names) > 0 {
		sort.Strings(names)
		var b setBuilder
		b.txt(capTXT(strings.Join(names, ","), ','))
		ri.names = b.set()
	}
	return ri
}

// buildNode packs the records of one name (all with that Name, sorted by type).
func buildNode(recs []*catalog.DNSRecord) *recNode {
	n := &recNode{name: recs[0].Name}
	for i := 0; i < len(recs); {
		j := i
		ttl := recs[i].TTL
		for j < len(recs) && recs[j].Type == recs[i].Type {
			ttl = min(ttl, recs[j].TTL) // one TTL per RRset (RFC 2181 §5.2)
			j++
		}
		var b setBuilder
		b.ttl, b.hasTTL = ttl, true
		t := uint16(0)
		for _, r := range recs[i:j] {
			switch r.Type {
			case "AAAA", "A":
				a, err := netip.ParseAddr(r.Value)
				if err != nil {
					continue
				}
				if a.Is4() {
					t = typeA
					b.a(a.As4())
				} else {
					t = typeAAAA
					b.aaaa(a.As16())
				}
			case "TXT":
				t = typeTXT
				b.txt(r.Value)
			case "SRV":
				t = typeSRV
				prio, weight, port, target := catalog.ParseSRV(r.Value)
				b.srvRR(prio, weight, port, target+".")
			case "CNAME":
				t = typeCNAME
				n.cname = r.Value
				b.name(typeCNAME, r.Value+".")
			case "ALIAS":
				n.alias, n.aliasTTL = r.Value, r.TTL
			}
		}
		if s := b.set(); t != 0 && s.len() > 0 {
			if s.len() == 1 {
				s.offs = singleOff // set() gives one record no stride
			}
			n.sets = append(n.sets, typedSet{t, s})
			n.any = concat(n.any, s) // a single set is shared, not copied
		}
		i = j
	}
	n.sets = slices.Clip(n.sets)
	return n
}

// chase carries the state of one lookup through CNAME and ALIAS chains.
type chase struct {
	// w is the query's working memory; chased lookups get none of their own (see work).
	w     *work
	depth int
	// dynamic is set when the answer depends on more than the network index (the
	// RTT order of top<N>.nearest.of), so it must not be cached.
	dynamic bool
}

// dynKey identifies a cached chased answer in a netIndex.
type dynKey struct {
	node  *recNode
	qtype uint16
}

type dynAnswer struct {
	answer rrset
	rcode  int
	neg    bool // authority SOA
}

// lookupCustom answers name from the network's custom records.
func (r *Resolver) lookupCustom(st *state, n *netIndex, name string, qtype uint16, resp *response, ch *chase) {
	ri := n.recs
	key := strings.ToLower(strings.TrimSuffix(name, "."))
	node := ri.nodes[key]
	if node == nil {
		if _, ok := ri.ents[key]; ok {
			return // empty non-terminal: NODATA
		}
		if node = ri.wildcard(key); node == nil {
			resp.rcode = RcodeNXDomain
			return
		}
	}
	switch {
	case node.cname != "":
		r.answerCNAME(st, n, node, qtype, resp, ch)
	case node.alias != "" && (qtype == typeAAAA || qtype == typeA || qtype == typeANY):
		set := r.aliasAddrs(st, n, node, qtype, ch)
		if qtype == typeANY {
			set = concat(set, node.any)
		}
		if set.len() > 0 {
			resp.answer, resp.soa = set, nil
			if set.len() > 1 && qtype != typeANY {
				resp.rotate = int(n.rot.Add(1) % uint32(set.len()))
			}
		}
	default:
		set := node.set(qtype)
		if qtype == typeANY {
			set = node.any
		}
		if set.len() > 0 {
			resp.answer, resp.soa = set, nil
			if set.len() > 1 && (qtype == typeAAAA || qtype == typeA) {
				resp.rotate = int(n.rot.Add(1) % uint32(set.len()))
			}
		}
	}
}

// wildcard finds the source of synthesis for a name that does not exist (RFC 4592
// §3.3.1): the closest encloser is the longest existing ancestor, and only a
// wildcard directly below it matches.
func (ri *recIndex) wildcard(name string) *recNode {
	for s := name; ; {
		k := strings.IndexByte(s, '.')
		if k < 0 {
			return nil
		}
		s = s[k+1:]
		if s == "internal" {
			return nil // *.internal cannot be created
		}
		if ri.exists(s) {
			return ri.wild[s]
		}
	}
}

// answerCNAME answers with the CNAME and, for a target under internal., the
// target's records of the asked type (as an authoritative server that holds the
// target's zone does), following chains.
func (r *Resolver) answerCNAME(st *state, n *netIndex, node *recNode, qtype uint16, resp *response, ch *chase) {
	cname := node.set(typeCNAME)
	if qtype == typeCNAME || !catalog.InZone(node.cname) {
		resp.answer, resp.soa = cname, nil
		return
	}
	cacheable := qtype == typeAAAA || qtype == typeA || qtype == typeTXT || qtype == typeSRV || qtype == typeANY
	if cacheable {
		if v, ok := n.dyn.Load(dynKey{node, qtype}); ok {
			d := v.(*dynAnswer)
			resp.answer, resp.rcode = d.answer, d.rcode
			if !d.neg {
				resp.soa = nil
			}
			return
		}
	}
	sub := ch.next()
	var tr response
	r.lookupName(st, n, node.cname, qtype, &tr, sub)
	d := &dynAnswer{rcode: tr.rcode, neg: tr.soa != nil}
	if sub.depth > maxChase {
		d.rcode, d.neg = RcodeServFail, false
	}
	d.answer = concat(cname, reown(tr.answer, appendName(nil, node.cname+"."), nil))
	if cacheable && !sub.dynamic {
		n.dyn.Store(dynKey{node, qtype}, d)
	}
	ch.dynamic = ch.dynamic || sub.dynamic
	resp.answer, resp.rcode = d.answer, d.rcode
	if !d.neg {
		resp.soa = nil
	}
}

// aliasAddrs returns the ALIAS target's current addresses as records of the alias
// itself (owned by the question name, with the alias's TTL).
func (r *Resolver) aliasAddrs(st *state, n *netIndex, node *recNode, qtype uint16, ch *chase) rrset {
	if v, ok := n.dyn.Load(dynKey{node, qtype}); ok {
		return v.(*dynAnswer).answer
	}
	sub := ch.next()
	var out rrset
	for _, t := range []uint16{typeAAAA, typeA} {
		if qtype != typeANY && qtype != t {
			continue
		}
		var tr response
		r.lookupName(st, n, node.alias, t, &tr, sub)
		out = concat(out, reown(tr.answer, nil, &addrFilter{t, node.aliasTTL}))
	}
	ch.dynamic = ch.dynamic || sub.dynamic
	if !sub.dynamic && sub.depth <= maxChase {
		n.dyn.Store(dynKey{node, qtype}, &dynAnswer{answer: out})
	}
	return out
}

func (c *chase) next() *chase {
	return &chase{depth: c.depth + 1}
}

// work returns the memory answers built per query are packed into. A chased lookup
// gets fresh memory: its answer is copied into the chain's, and it must not share
// buffers with the lookup that follows it (an ALIAS asks AAAA then A).
func (c *chase) work() *work {
	if c.w == nil {
		c.w = &work{}
	}
	return c.w
}

// lookupName resolves an in-zone target name inside the same network.
func (r *Resolver) lookupName(st *state, n *netIndex, name string, qtype uint16, resp *response, ch *chase) {
	if ch.depth > maxChase {
		resp.rcode = RcodeServFail
		return
	}
	q := qname.Parse(name)
	if q.Zone != qname.Internal {
		resp.rcode = RcodeNXDomain
		return
	}
	r.lookup(st, n, &q, name, qtype, resp, ch)
}

// addrFilter keeps the address records of one type and gives them a TTL.
type addrFilter struct {
	typ uint16
	ttl uint32
}

// reown copies a set, giving every record owned by the question name (compression
// pointer 0xc00c) the owner in wire format, or keeping the pointer when owner is nil.
// With f, only records of f.typ are kept, all re-owned to the question name with
// f.ttl (an ALIAS answers its target's addresses as its own).
func reown(s rrset, owner []byte, f *addrFilter) rrset {
	if s.len() == 0 {
		return rrset{}
	}
	var b setBuilder
	for i := 0; i < s.len(); i++ {
		rec := s.wire[s.off(i) : s.off(i)+s.recLen(i)]
		ol := ownerLen(rec)
		if ol < 0 || len(rec) < ol+10 {
			continue
		}
		t := binary.BigEndian.Uint16(rec[ol:])
		if f != nil && t != f.typ {
			continue
		}
		b.offs = append(b.offs, int32(len(b.wire)))
		switch {
		case f != nil || (owner == nil && ol == 2):
			b.wire = binary.BigEndian.AppendUint16(b.wire, ptrQName)
		case ol == 2 && rec[0] == 0xc0 && rec[1] == 0x0c:
			b.wire = append(b.wire, owner...)
		default:
			b.wire = append(b.wire, rec[:ol]...)
		}
		at := len(b.wire)
		b.wire = append(b.wire, rec[ol:]...)
		if f != nil {
			binary.BigEndian.PutUint32(b.wire[at+4:], f.ttl)
		}
	}
	return b.set()
}

// ownerLen is the length of a record's owner as we write them: a compression
// pointer or uncompressed labels.
func ownerLen(rec []byte) int {
	for i := 0; i < len(rec); {
		c := rec[i]
		switch {
		case c == 0:
			return i + 1
		case c&0xc0 == 0xc0:
			return i + 2
		case c > 63:
			return -1
		}
		i += 1 + int(c)
	}
	return -1
}

// concat joins two sets into a new one.
func concat(a, b rrset) rrset {
	switch {
	case b.len() == 0:
		return a
	case a.len() == 0:
		return b
	}
	out := rrset{wire: make([]byte, 0, len(a.wire)+len(b.wire)), offs: make([]int32, 0, a.len()+b.len())}
	out.wire = append(out.wire, a.wire...)
	for i := 0; i < a.len(); i++ {
		out.offs = append(out.offs, int32(a.off(i)))
	}
	for i := 0; i < b.len(); i++ {
		out.offs = append(out.offs, int32(b.off(i)+len(a.wire)))
	}
	out.wire = append(out.wire, b.wire...)
	return out
}
