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
	"cmp"
	"hash/maphash"
	"slices"
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

// StaticSource is a Source that always returns one snapshot (tests, `dogwood dig`
// against a fixed view).
type StaticSource struct{ Snap *catalog.Snapshot }

// Snapshot implements Source.
func (s StaticSource) Snapshot() *catalog.Snapshot { return s.Snap }

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

// Resolver answers queries from the latest snapshot of a Source. Safe for concurrent use.
type Resolver struct {
	src   Source
	near  Nearness
	reach Reachability
	seed  maphash.Seed

	cur atomic.Pointer[state]

	work sync.Pool // *work: per-query buffers

	// last remembers the newest index built per network so the next snapshot's
	// builders can reuse unchanged apps. Only builders take the lock.
	mu   sync.Mutex
	last map[uint32]*netIndex
}

// New returns a resolver over src. near may be nil (top<N> then orders by host name).
func New(src Source, near Nearness) *Resolver {
	r := &Resolver{src: src, near: near, seed: maphash.MakeSeed(), last: map[uint32]*netIndex{}}
	r.work.New = newWork
	return r
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
	w := r.work.Get().(*work)
	out, rcode, ok = r.answer(buf, netID, name, req, w)
	r.work.Put(w)
	return out, rcode, ok
}

// AnswerWire is Answer for a query whose name the caller holds only in wire form
// (req.QName): the name is matched without building a string, so an answered query
// allocates nothing. ok is false, and buf is returned unchanged, both for names that
// are not ours and for names this path does not take (ones that need escapes in
// presentation form): the caller then unpacks the query and calls Answer, which
// gives the same answer the slow way.
func (r *Resolver) AnswerWire(buf []byte, netID uint32, req *Request) (out []byte, rcode int, ok bool) {
	w := r.work.Get().(*work)
	if name, present := w.present(req.QName); present {
		out, rcode, ok = r.answer(buf, netID, name, req, w)
	} else {
		out = buf
	}
	r.work.Put(w)
	return out, rcode, ok
}

// answer is Answer with the query's working memory; name may alias w.
func (r *Resolver) answer(buf []byte, netID uint32, name string, req *Request, w *work) (out []byte, rcode int, ok bool) {
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
	ch := chase{w: w}
	r.lookup(st, n, &q, name, req.QType, &resp, &ch)
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
			set = r.nearest(ch.work(), st.snap, app.hosts, app.answering(), q.N)
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
		exists = false
		for _, m := range app.view.Machines {
			if strings.EqualFold(m.ProcessGroup, q.Group) {
				exists = true
				break
			}
		}
		if exists && (qtype == typeAAAA || qtype == typeANY) {
			// The first set with a match answers: a filtered set (ok), then, failing
			// open, every started machine. Each try reuses w's buffers.
			w := ch.work()
			for _, as := range app.sets() {
				b := w.builder()
				for i, m := range as.live {
					if strings.EqualFold(m.ProcessGroup, q.Group) {
						b.record(as.addrs, i)
					}
				}
				set = b.set()
				w.keep(&b)
				if set.len() > 0 {
					break
				}
			}
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
			// The first set with a match answers: a filtered set (ok), then, failing
			// open, every started machine. Each try reuses w's buffers.
			w := ch.work()
			for _, as := range app.sets() {
				b := w.builder()
				for i, m := range as.live {
					if hasMeta(m, q.Key, q.Value) {
						b.record(as.addrs, i)
					}
				}
				set = b.set()
				w.keep(&b)
				if set.len() > 0 {
					break
				}
			}
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
			w := ch.work()
			for _, as := range app.sets() {
				b := w.builder()
				for _, m := range as.live {
					if port, ok := service(m, q.Service, q.Proto); ok {
						b.srvVM(port, m.ID, q.App)
					}
				}
				set = b.set()
				w.keep(&b)
				if set.len() > 0 {
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

// ranked is a machine (its index in answerSet.live) and its distance.
type ranked struct {
	i    int32
	rank int64
}

// nearest returns the AAAA records of up to k live machines ordered by distance
// from the answering host: its own machines first, then by measured RTT, then hosts
// with no measurement by name; machine ids break ties so the answer is stable. The
// set is packed into w.
func (r *Resolver) nearest(w *work, snap *catalog.Snapshot, hosts []hostLive, a *answerSet, k int) rrset {
	const unknown = int64(1<<63 - 1)
	w.rtt = w.rtt[:0]
	for _, h := range hosts {
		d := unknown
		switch {
		case h.name == snap.Self:
			d = -1
		case r.near != nil:
			if v, ok := r.near.RTT(h.name); ok {
				d = int64(max(v, 0))
			}
		}
		w.rtt = append(w.rtt, d)
	}
	rs := w.ranks[:0]
	for i := range a.live {
		rs = append(rs, ranked{int32(i), w.rtt[a.liveHost[i]]})
	}
	live := a.live
	slices.SortFunc(rs, func(x, y ranked) int {
		if x.rank != y.rank {
			return cmp.Compare(x.rank, y.rank)
		}
		mx, my := live[x.i], live[y.i]
		if c := strings.Compare(mx.Host, my.Host); c != 0 {
			return c
		}
		return strings.Compare(mx.ID, my.ID)
	})
	b := w.builder()
	for j := 0; j < len(rs) && j < k; j++ {
		b.record(a.addrs, int(rs[j].i))
	}
	w.ranks = rs[:0]
	set := b.set()
	w.keep(&b)
	return set
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
