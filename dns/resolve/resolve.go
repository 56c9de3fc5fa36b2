// Package resolve owns the answers of Dogwood's `.internal` DNS (SPEC §4): given the
// latest catalog snapshot, a network id and a question, it produces the response in
// wire format. It owns no socket and knows nothing about scoping or forwarding; the
// server package decides which network a query is for and what to do with names
// that are not ours.
//
// Answers come from a per-network index built from the snapshot (custom records,
// `dogwood dns add`, in records.go). Indexes are built
// lazily on the first query that sees a new snapshot and are cached by the identity
// of the catalog's NetworkView and AppView pointers (the catalog shares unchanged
// views between consecutive snapshots), so a change rebuilds only what it touched.
// Readers never wait for a writer: a query uses the index for exactly the snapshot
// that Source returned when it started, building it itself when nobody has yet.
package resolve

import (
	"hash/maphash"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/dogwood/dogwood/dns/qname"
	"github.com/dogwood/dogwood/mesh/catalog"
)

// Source hands out the latest catalog snapshot. Snapshot must be cheap (an atomic
// load): it is called on every query.
type Source interface {
	Snapshot() *catalog.Snapshot
}

// Nearness gives the measured round-trip time from the answering host to another
// host (by name); ok is false when nothing was measured.
type Nearness interface {
	RTT(host string) (time.Duration, bool)
}

// Reachability says which hosts this host cannot reach over WireGuard right now: its
// own view of the data plane, no gossip involved. Names leave those hosts' machines
// out (SPEC §4).
type Reachability interface {
	// Unreachable returns the hosts this host cannot reach; the same pointer while
	// the set does not change (the resolver rebuilds its indexes when it does).
	Unreachable() *HostSet
}

// HostSet is an immutable set of host names. A nil set is empty.
type HostSet struct{ hosts map[string]struct{} }

// NewHostSet makes a set of the given hosts (nil when there are none).
func NewHostSet(hosts ...string) *HostSet {
	if len(hosts) == 0 {
		return nil
	}
	s := &HostSet{hosts: make(map[string]struct{}, len(hosts))}
	for _, h := range hosts {
		s.hosts[h] = struct{}{}
	}
	return s
}

// Has reports whether host is in the set.
func (s *HostSet) Has(host string) bool {
	if s == nil {
		return false
	}
	_, ok := s.hosts[host]
	return ok
}

// Len is the number of hosts in the set.
func (s *HostSet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.hosts)
}

// StaticSource is a Source that always returns one snapshot (tests, `dogwood dig`
// against a fixed view).
type StaticSource struct{ Snap *catalog.Snapshot }

// Snapshot implements Source.
func (s StaticSource) Snapshot() *catalog.Snapshot { return s.Snap }

// Resolver answers queries from the latest snapshot of a Source. Safe for concurrent use.
type Resolver struct {
	src   Source
	near  Nearness
	reach Reachability
	seed  maphash.Seed

	cur atomic.Pointer[state]

	// last remembers the newest index built per network so the next snapshot's
	// builders can reuse unchanged apps. Only builders take the lock.
	mu   sync.Mutex
	last map[uint32]*netIndex
}

// New returns a resolver over src. near may be nil (top<N> then orders by host name).
func New(src Source, near Nearness) *Resolver {
	return &Resolver{src: src, near: near, seed: maphash.MakeSeed(), last: map[uint32]*netIndex{}}
}

// SetReachability makes answers leave out machines on hosts reach says this host
// cannot reach. Call it before the resolver answers.
func (r *Resolver) SetReachability(reach Reachability) { r.reach = reach }

// state is the resolver's view of one snapshot and one reachability set.
type state struct {
	r    *Resolver
	snap *catalog.Snapshot
	cut  *HostSet
	nets sync.Map // uint32 → *netIndex

	sigOnce sync.Once
	sig     uint64

	regOnce sync.Once
	regions map[string]bool
}

// liveSig summarises which hosts are live; equal signatures mean equal liveness.
func (st *state) liveSig() uint64 {
	st.sigOnce.Do(func() {
		var sum uint64
		for name, h := range st.snap.Hosts {
			var hh maphash.Hash
			hh.SetSeed(st.r.seed)
			hh.WriteString(name)
			if h.Live() {
				hh.WriteByte(1)
			}
			if st.cut.Has(name) {
				hh.WriteByte(2)
			}
			sum += hh.Sum64() // order-independent
		}
		st.sig = sum
	})
	return st.sig
}

// knownRegion reports whether any host of the cluster sits in region r, which makes
// <r>.<app>.internal an existing (maybe empty) name.
func (st *state) knownRegion(r string) bool {
	st.regOnce.Do(func() {
		st.regions = map[string]bool{}
		for _, h := range st.snap.Hosts {
			st.regions[strings.ToLower(h.Region)] = true
		}
	})
	return st.regions[r]
}

func (r *Resolver) current() *state {
	snap := r.src.Snapshot()
	if snap == nil {
		snap = catalog.Empty("")
	}
	var cut *HostSet
	if r.reach != nil {
		cut = r.reach.Unreachable()
	}
	st := r.cur.Load()
	if st != nil && st.snap == snap && st.cut == cut {
		return st
	}
	ns := &state{r: r, snap: snap, cut: cut}
	for {
		if r.cur.CompareAndSwap(st, ns) {
			return ns
		}
		st = r.cur.Load()
		if st.snap == snap && st.cut == cut {
			return st
		}
		if st.snap.Seq > snap.Seq {
			// A newer snapshot is installed already; answer this query from ours
			// without moving the resolver backwards.
			return ns
		}
	}
}

// network returns the index of network id in st, building it if needed.
func (r *Resolver) network(st *state, id uint32) *netIndex {
	if v, ok := st.nets.Load(id); ok {
		return v.(*netIndex)
	}
	nv := st.snap.Networks[id]
	if nv == nil {
		return nil
	}
	r.mu.Lock()
	prev := r.last[id]
	r.mu.Unlock()
	var n *netIndex
	if prev != nil && prev.view == nv && prev.liveSig == st.liveSig() {
		n = prev
	} else {
		n = buildNet(nv, st, prev)
	}
	v, _ := st.nets.LoadOrStore(id, n)
	n = v.(*netIndex)
	r.mu.Lock()
	r.last[id] = n
	if len(r.last) > 2*len(st.snap.Networks)+16 {
		for k := range r.last {
			if st.snap.Networks[k] == nil {
				delete(r.last, k)
			}
		}
	}
	r.mu.Unlock()
	return n
}

// Refresh builds the indexes of every network of the latest snapshot now, so the
// first queries after a change do not pay for it. Call it on the catalog's
// "changed" signal; answers are correct without it.
func (r *Resolver) Refresh() {
	st := r.current()
	for id := range st.snap.Networks {
		r.network(st, id)
	}
}

// HasNetwork reports whether the latest snapshot has network id.
func (r *Resolver) HasNetwork(id uint32) bool {
	return r.current().snap.Networks[id] != nil
}

// Answer appends to buf the response to req for network netID. ok is false, and buf
// is returned unchanged, when the name is not ours and should be forwarded.
func (r *Resolver) Answer(buf []byte, netID uint32, name string, req *Request) (out []byte, rcode int, ok bool) {
	q := qname.Parse(name)
	if q.Zone == qname.External {
		return buf, 0, false
	}
	if req.QClass != classIN && req.QClass != classANY {
		return AppendError(buf, req, RcodeRefused), RcodeRefused, true
	}
	switch req.QType {
	case typeAXFR, typeIXFR:
		return AppendError(buf, req, RcodeRefused), RcodeRefused, true
	case typeOPT, 0:
		return AppendError(buf, req, RcodeFormErr), RcodeFormErr, true
	}
	st := r.current()
	n := r.network(st, netID)
	if n == nil {
		return AppendError(buf, req, RcodeRefused), RcodeRefused, true
	}
	var resp response
	r.lookup(st, n, &q, name, req.QType, &resp, &chase{})
	return encode(buf, req, &resp, true), resp.rcode, true
}

// lookup fills resp for q (parsed from name) in network n. Names the grammar does
// not give to an existing app or listing go to the custom records.
func (r *Resolver) lookup(st *state, n *netIndex, q *qname.Query, name string, qtype uint16, resp *response, ch *chase) {
	resp.soa = n.soa
	if q.Zone == qname.Reverse {
		resp.zone = zoneReverse
		r.lookupReverse(n, q, qtype, resp)
		return
	}
	resp.zone = zoneInternal

	// set is the records the name has; typ their type (one type per name).
	var set rrset
	var typ uint16
	rotate := false
	exists := true

	var app *appIndex
	if q.App != "" {
		app = n.apps[q.App]
		if app == nil {
			r.lookupCustom(st, n, name, qtype, resp, ch)
			return
		}
	}
	switch q.Kind {
	case qname.Apex:
		var b setBuilder
		b.raw(typeSOA, n.soa)
		set, typ = b.set(), typeSOA
	case qname.App:
		set, typ, rotate = app.answering().addrs, typeAAAA, true
	case qname.Region:
		var ok bool
		for _, as := range app.sets() {
			if set, ok = as.byRegion[q.Region]; set.len() > 0 {
				break
			}
		}
		if !ok && !st.knownRegion(q.Region) {
			exists = false
		}
		typ, rotate = typeAAAA, true
	case qname.Nearest:
		ch.dynamic = true
		if qtype == typeAAAA || qtype == typeANY {
			set = aaaaSet(r.nearest(st.snap, app.answering(), q.N))
		}
		typ = typeAAAA
	case qname.VM:
		m := app.view.Machine(q.ID)
		if m == nil {
			exists = false
			break
		}
		typ = typeAAAA
		for _, as := range app.sets() {
			if i := sort.Search(len(as.live), func(i int) bool { return as.live[i].ID >= m.ID }); i < len(as.live) && as.live[i] == m {
				set = as.addrs.record(i)
				break
			}
		}
	case qname.Process:
		var ms []*catalog.Machine
		exists = false
		for _, m := range app.view.Machines {
			if strings.EqualFold(m.ProcessGroup, q.Group) {
				exists = true
				break
			}
		}
		if exists && (qtype == typeAAAA || qtype == typeANY) {
			for _, as := range app.sets() {
				for _, m := range as.live {
					if strings.EqualFold(m.ProcessGroup, q.Group) {
						ms = append(ms, m)
					}
				}
				if len(ms) > 0 {
					break
				}
			}
			set = aaaaSet(ms)
		}
		typ, rotate = typeAAAA, true
	case qname.Meta:
		exists = false
		for _, m := range app.view.Machines {
			if hasMeta(m, q.Key, q.Value) {
				exists = true
				break
			}
		}
		if exists && (qtype == typeAAAA || qtype == typeANY) {
			var ms []*catalog.Machine
			for _, as := range app.sets() {
				for _, m := range as.live {
					if hasMeta(m, q.Key, q.Value) {
						ms = append(ms, m)
					}
				}
				if len(ms) > 0 {
					break
				}
			}
			set = aaaaSet(ms)
		}
		typ, rotate = typeAAAA, true
	case qname.Service:
		exists = false
		for _, m := range app.view.Machines {
			if _, ok := service(m, q.Service, q.Proto); ok {
				exists = true
				break
			}
		}
		if exists && (qtype == typeSRV || qtype == typeANY) {
			for _, as := range app.sets() {
				var b setBuilder
				for _, m := range as.live {
					if port, ok := service(m, q.Service, q.Proto); ok {
						b.srv(port, m.ID+".vm."+q.App+".internal.")
					}
				}
				if set = b.set(); set.len() > 0 {
					break
				}
			}
		}
		typ = typeSRV
	case qname.Peer:
		s, ok := n.peers[q.Peer]
		exists = ok
		set, typ = s, typeAAAA
	case qname.VMs:
		app.listings()
		set, typ = app.vms, typeTXT
		if q.All {
			set = app.allVMs
		}
	case qname.Regions:
		app.listings()
		set, typ = app.regions, typeTXT
		if q.All {
			set = app.allRegs
		}
	case qname.Apps:
		n.listings()
		set, typ = n.appsTXT, typeTXT
	case qname.Peers:
		n.listings()
		set, typ = n.peersTXT, typeTXT
	case qname.Instances:
		n.listings()
		set, typ = n.instances, typeTXT
		if q.All {
			set = n.allInst
		}
	case qname.Records:
		set, typ = n.recs.names, typeTXT
	case qname.Interior:
		// exists (the app does), no records of its own
	case qname.Unknown:
		r.lookupCustom(st, n, name, qtype, resp, ch)
		return
	default:
		exists = false
	}
	if !exists {
		resp.rcode = RcodeNXDomain
		return
	}
	if set.len() == 0 || (qtype != typ && qtype != typeANY) {
		return // NODATA, SOA in authority
	}
	resp.answer = set
	resp.soa = nil
	if rotate && set.len() > 1 {
		resp.rotate = int(app.rot.Add(1) % uint32(set.len()))
	}
}

func (r *Resolver) lookupReverse(n *netIndex, q *qname.Query, qtype uint16, resp *response) {
	switch q.Kind {
	case qname.PTR:
		if s, ok := n.ptr(q.Addr); ok {
			if qtype == typePTR || qtype == typeANY {
				resp.answer, resp.soa = s, nil
			}
			return
		}
	case qname.ReverseInterior:
		// A label on the way down to this network's /48, or inside it, exists
		// (empty non-terminal); anything else in fdaa::/16 is another network's.
		if q.Prefix.Overlaps(n.prefix) {
			return
		}
	}
	resp.rcode = RcodeNXDomain
}

func hasMeta(m *catalog.Machine, key, value string) bool {
	for k, v := range m.Metadata {
		if strings.EqualFold(k, key) && strings.EqualFold(v, value) {
			return true
		}
	}
	return false
}

func service(m *catalog.Machine, name, proto string) (uint16, bool) {
	for _, s := range m.Services {
		if strings.EqualFold(strings.TrimPrefix(s.Name, "_"), name) && strings.EqualFold(strings.TrimPrefix(s.Proto, "_"), proto) {
			return s.Port, true
		}
	}
	return 0, false
}

// nearest returns up to k live machines ordered by distance from the answering host:
// its own machines first, then by measured RTT, then hosts with no measurement by
// name; machine ids break ties so the answer is stable.
func (r *Resolver) nearest(snap *catalog.Snapshot, a *answerSet, k int) []*catalog.Machine {
	type ranked struct {
		m    *catalog.Machine
		rank time.Duration
	}
	const unknown = time.Duration(1<<63 - 1)
	rtt := map[string]time.Duration{}
	rs := make([]ranked, 0, len(a.live))
	for _, m := range a.live {
		d, ok := rtt[m.Host]
		if !ok {
			switch {
			case m.Host == snap.Self:
				d = -1
			case r.near != nil:
				if v, ok := r.near.RTT(m.Host); ok {
					d = max(v, 0)
				} else {
					d = unknown
				}
			default:
				d = unknown
			}
			rtt[m.Host] = d
		}
		rs = append(rs, ranked{m, d})
	}
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].rank != rs[j].rank {
			return rs[i].rank < rs[j].rank
		}
		if rs[i].m.Host != rs[j].m.Host {
			return rs[i].m.Host < rs[j].m.Host
		}
		return rs[i].m.ID < rs[j].m.ID
	})
	out := make([]*catalog.Machine, 0, min(k, len(rs)))
	for i := 0; i < len(rs) && i < k; i++ {
		out = append(out, rs[i].m)
	}
	return out
}

// Query resolves one name for network netID with no size limit and returns the
// unpacked response; ok is false when the name is not ours. It is the entry point
// for `dogwood dig` through the agent, where there is no packet to answer.
func (r *Resolver) Query(netID uint32, name string, qtype uint16) (*dns.Msg, bool) {
	fqdn := dns.Fqdn(name)
	var qn [256]byte
	n, err := dns.PackDomainName(fqdn, qn[:], 0, nil, false)
	if err != nil {
		return nil, false
	}
	req := &Request{ID: dns.Id(), RD: true, QName: qn[:n], QType: qtype, QClass: classIN, Limit: MaxMsg}
	out, _, ok := r.Answer(nil, netID, fqdn, req)
	if !ok {
		return nil, false
	}
	m := new(dns.Msg)
	if err := m.Unpack(out); err != nil {
		// Our own encoder produced something miekg/dns cannot read: a bug, but
		// callers get an answer they can show rather than a panic.
		m = new(dns.Msg)
		m.SetQuestion(fqdn, qtype)
		m.Response, m.Rcode = true, RcodeServFail
	}
	return m, true
}
