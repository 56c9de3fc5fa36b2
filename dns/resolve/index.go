package resolve

import (
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/sixpn"
)

// appIndex is everything precomputed for one app. It depends only on the AppView and
// on the liveness and reachability of the hosts its machines run on, so it is reused
// across snapshots while those stay the same. What it keeps per machine is what
// address answers need (a pointer and one AAAA record); listings are built on first
// use.
//
// Two answer sets: ok are the machines a name answers (started, on a live host this
// host reaches over WireGuard, not critical); open are every started machine on a
// live host, what a name answers when ok leaves it empty and the app fails open
// (SPEC §4). Deciding eligibility here, once per index, keeps filtering out of the
// query path: when nothing is filtered both are the same set.
type appIndex struct {
	view  *catalog.AppView
	hosts []hostLive
	ok    *answerSet
	open  *answerSet
	// failOpen is the app's when_none_healthy: answer open when ok has nothing.
	failOpen bool
	sets1    [1]*answerSet
	sets2    [2]*answerSet

	// The TXT listings: rare queries, so built by the first one.
	listOnce sync.Once
	vms      rrset
	allVMs   rrset
	regions  rrset
	allRegs  rrset
	// rot turns multi-record address answers between queries.
	rot atomic.Uint32
}

// answerSet is one set of machines of an app with their address answers.
type answerSet struct {
	// live are the machines, sorted by id; liveHost[i] is where live[i]'s host is in
	// the app's hosts.
	live     []*catalog.Machine
	liveHost []int32
	addrs    rrset // AAAA of live, same order
	// byRegion has every region where the app has a machine in any state; the set holds
	// those of live (empty: the name exists, NODATA). An app in one region shares
	// addrs.
	byRegion map[string]rrset
}

// sets returns the sets to try for a name, in order: ok, then open if the app fails
// open and filtering left something out.
func (a *appIndex) sets() []*answerSet {
	if a.ok == a.open || !a.failOpen {
		return a.sets1[:]
	}
	return a.sets2[:]
}

type hostLive struct {
	name  string
	live  bool
	reach bool
}

func (a *appIndex) valid(av *catalog.AppView, snap *catalog.Snapshot, cut *HostSet) bool {
	if a.view != av {
		return false
	}
	for _, h := range a.hosts {
		if snap.HostLive(h.name) != h.live || cut.Has(h.name) == h.reach {
			return false
		}
	}
	return true
}

func buildApp(av *catalog.AppView, snap *catalog.Snapshot, cut *HostSet) *appIndex {
	a := &appIndex{view: av, failOpen: av.FailOpen()}
	seen := map[string]int32{}
	var regions []string
	var open, ok []*catalog.Machine
	var openHost, okHost []int32
	for _, m := range av.Machines {
		hi, known := seen[m.Host]
		if !known {
			hi = int32(len(a.hosts))
			seen[m.Host] = hi
			a.hosts = append(a.hosts, hostLive{name: m.Host, live: snap.HostLive(m.Host), reach: !cut.Has(m.Host)})
		}
		h := a.hosts[hi]
		if len(regions) < 2 && (len(regions) == 0 || !strings.EqualFold(regions[0], m.Region)) {
			regions = append(regions, strings.ToLower(m.Region))
		}
		if m.Started() && h.live && m.Address.Is6() {
			open, openHost = append(open, m), append(openHost, hi)
			if h.reach && !m.Critical() {
				ok, okHost = append(ok, m), append(okHost, hi)
			}
		}
	}
	a.open = newAnswerSet(av, slices.Clip(open), slices.Clip(openHost), len(regions) == 1)
	a.ok = a.open
	if len(ok) != len(open) {
		a.ok = newAnswerSet(av, slices.Clip(ok), slices.Clip(okHost), len(regions) == 1)
	}
	a.sets1 = [1]*answerSet{a.ok}
	a.sets2 = [2]*answerSet{a.ok, a.open}
	return a
}

func newAnswerSet(av *catalog.AppView, live []*catalog.Machine, liveHost []int32, oneRegion bool) *answerSet {
	s := &answerSet{live: live, liveHost: liveHost, addrs: aaaaSet(live), byRegion: map[string]rrset{}}
	if oneRegion {
		if len(av.Machines) > 0 {
			s.byRegion[strings.ToLower(av.Machines[0].Region)] = s.addrs
		}
		return s
	}
	regionMachines := map[string][]*catalog.Machine{}
	for _, m := range av.Machines {
		region := strings.ToLower(m.Region)
		if _, ok := regionMachines[region]; !ok {
			regionMachines[region] = nil
		}
	}
	for _, m := range live {
		region := strings.ToLower(m.Region)
		regionMachines[region] = append(regionMachines[region], m)
	}
	for r, ms := range regionMachines {
		s.byRegion[r] = aaaaSet(ms)
	}
	return s
}

// answering is the set a name that covers the whole app answers from.
func (a *appIndex) answering() *answerSet {
	if len(a.ok.live) == 0 && a.failOpen {
		return a.open
	}
	return a.ok
}

// listings builds the app's TXT listings on first use.
func (a *appIndex) listings() {
	a.listOnce.Do(func() {
		live := a.answering().live
		a.vms = vmsTXT(live)
		a.regions = regionsTXT(live)
		if len(live) == len(a.view.Machines) {
			a.allVMs, a.allRegs = a.vms, a.regions // every machine is answered
			return
		}
		a.allVMs = vmsTXT(a.view.Machines)
		a.allRegs = regionsTXT(a.view.Machines)
	})
}

func aaaaSet(ms []*catalog.Machine) rrset {
	var b setBuilder
	b.wire = make([]byte, 0, 28*len(ms))
	for _, m := range ms {
		b.aaaa(m.Address.As16())
	}
	return b.set()
}

func vmsTXT(ms []*catalog.Machine) rrset {
	if len(ms) == 0 {
		return rrset{}
	}
	var sb strings.Builder
	for i, m := range ms {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(m.ID)
		sb.WriteByte(' ')
		sb.WriteString(m.Region)
	}
	var b setBuilder
	b.txt(capTXT(sb.String(), ','))
	return b.set()
}

func regionsTXT(ms []*catalog.Machine) rrset {
	if len(ms) == 0 {
		return rrset{}
	}
	set := map[string]bool{}
	var rs []string
	for _, m := range ms {
		if !set[m.Region] {
			set[m.Region] = true
			rs = append(rs, m.Region)
		}
	}
	sort.Strings(rs)
	var b setBuilder
	b.txt(strings.Join(rs, ","))
	return b.set()
}

// maxTXT keeps a listing inside one DNS message. Longer listings (tens of thousands
// of machines) are cut at an item boundary; the name-based lookups stay complete.
const maxTXT = 60000

func capTXT(s string, sep byte) string {
	if len(s) <= maxTXT {
		return s
	}
	s = s[:maxTXT]
	if i := strings.LastIndexByte(s, sep); i > 0 {
		s = s[:i]
	}
	return s
}

// netIndex is one network's view. It is immutable once built except for the lazily
// computed listings, which are guarded by sync.Once.
type netIndex struct {
	view    *catalog.NetworkView
	liveSig uint64
	prefix  netip.Prefix
	soa     []byte
	apps    map[string]*appIndex // by lowercase name
	peers   map[string]rrset     // AAAA by lowercase peer name

	listOnce  sync.Once
	appsTXT   rrset
	peersTXT  rrset
	instances rrset
	allInst   rrset

	// The reverse index, built by the first PTR query: machines sorted by address (a
	// pointer each; answers are built per query, PTR is not a hot path) and peers.
	revOnce     sync.Once
	revMachines []*catalog.Machine
	revPeers    map[netip.Addr]string

	recs *recIndex // custom records, shared between indexes while unchanged
	// dyn caches chased answers (ALIAS, in-zone CNAME): they depend only on this
	// index, which is rebuilt whenever an app, a record or a host's liveness changes.
	dyn sync.Map // dynKey → *dynAnswer
	// rot turns multi-record custom answers between queries.
	rot atomic.Uint32
}

func buildNet(nv *catalog.NetworkView, st *state, prev *netIndex) *netIndex {
	n := &netIndex{
		view:    nv,
		liveSig: st.liveSig(),
		prefix:  sixpn.NetworkPrefix(nv.ID),
		soa:     soaRdata(uint32(st.snap.Seq)),
		apps:    make(map[string]*appIndex, len(nv.Apps)),
		peers:   make(map[string]rrset, len(nv.Peers)),
	}
	for name, av := range nv.Apps {
		key := strings.ToLower(name)
		if prev != nil {
			if a := prev.apps[key]; a != nil && a.valid(av, st.snap, st.cut) {
				n.apps[key] = a
				continue
			}
		}
		n.apps[key] = buildApp(av, st.snap, st.cut)
	}
	if prev != nil && prev.recs.set == nv.Records {
		n.recs = prev.recs
	} else {
		n.recs = buildRecs(nv.Records)
	}
	for name, p := range nv.Peers {
		if !p.Address.Is6() {
			continue
		}
		var b setBuilder
		b.aaaa(p.Address.As16())
		n.peers[strings.ToLower(name)] = b.set()
	}
	return n
}

// listings builds the network-wide TXT listings on first use: they are rare queries
// and can be large, so rebuilding them on every catalog change would be waste.
func (n *netIndex) listings() {
	n.listOnce.Do(func() {
		var b setBuilder
		if len(n.view.AppNames) > 0 {
			b.txt(capTXT(strings.Join(n.view.AppNames, ","), ','))
			n.appsTXT = b.set()
		}
		if len(n.view.PeerNames) > 0 {
			b = setBuilder{}
			b.txt(capTXT(strings.Join(n.view.PeerNames, ","), ','))
			n.peersTXT = b.set()
		}
		var live, all strings.Builder
		for _, name := range n.view.AppNames {
			a := n.apps[strings.ToLower(name)]
			if a == nil {
				continue
			}
			for _, m := range a.view.Machines {
				writeInstance(&all, m)
			}
			for _, m := range a.answering().live {
				writeInstance(&live, m)
			}
		}
		if live.Len() > 0 {
			b = setBuilder{}
			b.txt(capTXT(live.String(), ';'))
			n.instances = b.set()
		}
		if all.Len() > 0 {
			b = setBuilder{}
			b.txt(capTXT(all.String(), ';'))
			n.allInst = b.set()
		}
	})
}

func writeInstance(sb *strings.Builder, m *catalog.Machine) {
	if sb.Len() > 0 {
		sb.WriteByte(';')
	}
	sb.WriteString("instance=")
	sb.WriteString(m.ID)
	sb.WriteString(",app=")
	sb.WriteString(m.App)
	sb.WriteString(",ip=")
	sb.WriteString(m.Address.String())
	sb.WriteString(",region=")
	sb.WriteString(m.Region)
}

// ptr returns the PTR set for an address of this network, building the reverse index
// on first use. Machines in any state keep their reverse name: an address seen in a
// log should still say whose it was. A peer's name wins over a machine's if both
// claim an address.
func (n *netIndex) ptr(a netip.Addr) (rrset, bool) {
	n.revOnce.Do(func() {
		for _, ai := range n.apps {
			for _, m := range ai.view.Machines {
				if n.prefix.Contains(m.Address) {
					n.revMachines = append(n.revMachines, m)
				}
			}
		}
		sort.Slice(n.revMachines, func(i, j int) bool {
			x, y := n.revMachines[i], n.revMachines[j]
			if c := x.Address.Compare(y.Address); c != 0 {
				return c < 0
			}
			return x.ID < y.ID
		})
		n.revPeers = map[netip.Addr]string{}
		for name, p := range n.view.Peers {
			if n.prefix.Contains(p.Address) {
				n.revPeers[p.Address] = name
			}
		}
	})
	var b setBuilder
	if name, ok := n.revPeers[a]; ok {
		b.ptr(strings.ToLower(name) + "._peer.internal.")
		return b.set(), true
	}
	ms := n.revMachines
	i := sort.Search(len(ms), func(i int) bool { return ms[i].Address.Compare(a) >= 0 })
	if i == len(ms) || ms[i].Address != a {
		return rrset{}, false
	}
	b.ptr(ms[i].ID + ".vm." + strings.ToLower(ms[i].App) + ".internal.")
	return b.set(), true
}
