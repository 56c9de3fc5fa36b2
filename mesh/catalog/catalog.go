package catalog

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dogwood/dogwood/mesh/record"
	"github.com/dogwood/dogwood/mesh/sixpn"
)

// Catalog is the in-memory replicated catalog of one host. Every record, tombstones
// included, stays here; Apply merges a record under the merge order and reports whether
// it changed anything. It keeps the anti-entropy digest and the indexes snapshots are
// built from up to date incrementally, so a change costs O(1) plus the size of the
// app or network it touched, never the size of the whole catalog.
type Catalog struct {
	mu     sync.Mutex
	self   string
	selfID uint32
	clock  uint64
	// records holds every record but machines, which live in machines (see
	// machines.go): per digest bucket, by id.
	records  map[ID]*Record
	machines [record.Buckets]mtable
	// machineReqs holds machines (tombstones too) by client request id.
	machineReqs mtable
	intern      interner
	// byKind holds the live records of each kind but machines, so listing orgs or
	// peers does not walk every machine.
	byKind map[Kind]map[string]*Record

	buckets  [record.Buckets]uint64
	byBucket [record.Buckets]map[ID]struct{} // records (not machines) per bucket

	// Uniqueness indexes; they include tombstones because ids are never reused.
	hostIDs    map[uint32]map[string]struct{} // host id -> host names claiming it
	networkIDs map[uint32]map[string]struct{} // network id -> network keys
	// selfFields are the machine fields used on this host (selfID): the ones it
	// may not allocate again. Other hosts' fields are theirs to allocate.
	selfFields map[uint32]struct{}
	peersOn    map[uint32]map[uint32]map[int]int // gateway -> network -> peer index -> count

	status map[string]string

	// Live objects for snapshots.
	hosts map[string]*Host
	orgs  map[string]*Org
	nets  map[uint32]*netIndex
	// Machines and peers on this host, for Snapshot.LocalMachines/LocalPeers.
	localM map[string]*Machine
	localP map[string]*Peer

	seq        uint64
	snap       *Snapshot
	dirtyHosts bool
	dirtyOrgs  bool
	dirtyNets  map[uint32]struct{}
	dirtyApps  map[string]struct{}
	dirtyRecs  map[uint32]struct{} // networks whose custom DNS records changed
	dirtyLocal bool

	watchers map[chan struct{}]struct{}

	horizon   func() time.Time // tombstones deleted before it are collected; nil: never
	requests  map[string]ID    // kind byte + client request id -> record (tombstones too)
	conflicts conflictQueue
	latest    atomic.Pointer[Snapshot]
}

type netIndex struct {
	net        *Network
	apps       map[string]*App
	machines   map[string]*appMachines // by app name
	peers      map[string]*Peer
	hostCounts map[uint32]int
	records    map[string]*DNSRecord // custom DNS records by key
}

// New returns an empty catalog for the host named self.
func New(self string) *Catalog {
	c := &Catalog{
		self:       self,
		records:    map[ID]*Record{},
		byKind:     map[Kind]map[string]*Record{},
		localM:     map[string]*Machine{},
		localP:     map[string]*Peer{},
		hostIDs:    map[uint32]map[string]struct{}{},
		networkIDs: map[uint32]map[string]struct{}{},
		selfFields: map[uint32]struct{}{},
		peersOn:    map[uint32]map[uint32]map[int]int{},
		status:     map[string]string{self: StatusAlive},
		hosts:      map[string]*Host{},
		orgs:       map[string]*Org{},
		nets:       map[uint32]*netIndex{},
		dirtyNets:  map[uint32]struct{}{},
		dirtyApps:  map[string]struct{}{},
		dirtyRecs:  map[uint32]struct{}{},
		watchers:   map[chan struct{}]struct{}{},
		requests:   map[string]ID{},
		dirtyHosts: true,
		intern:     newInterner(),
	}
	c.machineReqs.byRequest = true
	for i := range c.byBucket {
		c.byBucket[i] = map[ID]struct{}{}
	}
	return c
}

// Self is the name of the host holding the catalog.
func (c *Catalog) Self() string { return c.self }

// SetSelfID sets the host id used in stamps this catalog issues.
func (c *Catalog) SetSelfID(id uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id == c.selfID {
		return
	}
	c.selfID = id
	clear(c.selfFields)
	c.eachMachine(func(_ int, e *mentry) {
		if !e.bodyless && e.m.HostID == id {
			c.selfFields[e.m.Field] = struct{}{}
		}
	})
}

// Tick advances the Lamport clock for a local write and returns its stamp.
func (c *Catalog) Tick() Stamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clock++
	return Stamp{Clock: c.clock, Node: c.selfID}
}

// Clock returns the current Lamport clock.
func (c *Catalog) Clock() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clock
}

// Get returns the record with this id, tombstones included, or nil. Records are
// immutable once applied: callers must not modify them.
func (c *Catalog) Get(id ID) *Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.getLocked(id)
}

func (c *Catalog) getLocked(id ID) *Record {
	if id.Kind == KindMachine {
		if e := c.machines[record.Bucket(id)].get(c.intern.seed, id.Key); e != nil {
			return e.record()
		}
		return nil
	}
	return c.records[id]
}

// eachMachine calls f for every machine entry, tombstones included. Callers hold mu;
// f must not add or drop entries.
func (c *Catalog) eachMachine(f func(b int, e *mentry)) {
	for b := range c.machines {
		for e := range c.machines[b].all() {
			f(b, e)
		}
	}
}

// Live returns the live record with this id or nil.
func (c *Catalog) Live(id ID) *Record {
	r := c.Get(id)
	if r == nil || r.Deleted {
		return nil
	}
	return r
}

// List returns the live records of one kind, sorted by key.
func (c *Catalog) List(kind Kind) []*Record {
	c.mu.Lock()
	out := make([]*Record, 0, len(c.byKind[kind]))
	for _, r := range c.byKind[kind] {
		out = append(out, r)
	}
	if kind == KindMachine {
		c.eachMachine(func(_ int, e *mentry) {
			if e.live() {
				out = append(out, e.record())
			}
		})
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// All returns every record, tombstones included (for tests and full dumps).
func (c *Catalog) All() []*Record {
	c.mu.Lock()
	out := make([]*Record, 0, len(c.records))
	for _, r := range c.records {
		out = append(out, r)
	}
	c.eachMachine(func(_ int, e *mentry) { out = append(out, e.record()) })
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// Len counts records by kind (tombstones included under their kind).
func (c *Catalog) Len() (live map[Kind]int, tombstones int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	live = map[Kind]int{}
	for _, r := range c.records {
		if r.Deleted {
			tombstones++
		} else {
			live[r.Kind]++
		}
	}
	c.eachMachine(func(_ int, e *mentry) {
		if e.deleted {
			tombstones++
		} else {
			live[KindMachine]++
		}
	})
	return live, tombstones
}

// Apply merges r. It returns true when r replaced what the catalog had (and so must be
// persisted and may be passed on). r must not be modified afterwards.
func (c *Catalog) Apply(r *Record) bool { return len(c.ApplyAll([]*Record{r})) > 0 }

// Conflict is two different creates of one key (two live records with different
// identities) that the merge order decided between.
type Conflict struct {
	Kept, Lost *Record
}

// OnConflict sets a function told about every conflict this catalog decides. It runs
// on the applying goroutine (often a gossip callback), outside the catalog lock, and
// must not block. Set it before records arrive.
func (c *Catalog) OnConflict(f func(Conflict)) {
	c.mu.Lock()
	c.conflicts.report = f
	c.mu.Unlock()
}

// conflictQueue holds the conflicts a merge decided under the catalog's lock until
// the lock is released, so the report function never runs with it held. Its fields
// are guarded by the catalog's mu.
type conflictQueue struct {
	report  func(Conflict)
	pending []Conflict
}

func (q *conflictQueue) add(kept, lost *Record) {
	q.pending = append(q.pending, Conflict{Kept: kept, Lost: lost})
}

// take empties the queue (under the catalog's lock) and returns a function that
// reports what it held, to call once the lock is released.
func (q *conflictQueue) take() func() {
	cs, f := q.pending, q.report
	q.pending = nil
	return func() {
		if f == nil {
			return
		}
		for _, x := range cs {
			f(x)
		}
	}
}

// ApplyAll merges records and returns those that changed the catalog.
func (c *Catalog) ApplyAll(rs []*Record) []*Record {
	var changed []*Record
	c.mu.Lock()
	for _, r := range rs {
		if c.applyLocked(r) {
			changed = append(changed, r)
		}
	}
	report := c.conflicts.take()
	c.mu.Unlock()
	report()
	if len(changed) > 0 {
		c.notify()
	}
	return changed
}

func (c *Catalog) applyLocked(r *Record) bool {
	if r.Version.Clock > c.clock {
		c.clock = r.Version.Clock
	}
	if r.Created.Clock > c.clock {
		c.clock = r.Created.Clock
	}
	if r.Kind == KindMachine {
		return c.applyMachineLocked(r)
	}
	id := r.ID()
	old := c.records[id]
	if old == nil && c.collected(r) {
		// A tombstone past the horizon for something we do not hold (or already
		// collected): accepting it would only bring garbage back.
		return false
	}
	win := r.Wins(old)
	if old != nil && !old.Deleted && !r.Deleted && !old.SameIdentity(r) {
		if win {
			c.conflicts.add(r, old)
		} else {
			c.conflicts.add(old, r)
		}
	}
	if !win {
		return false
	}
	b := record.Bucket(id)
	if old != nil {
		c.buckets[b] ^= old.Header().Hash()
		c.unindex(old)
	}
	c.records[id] = r
	live := c.byKind[r.Kind]
	if live == nil {
		live = map[string]*Record{}
		c.byKind[r.Kind] = live
	}
	if r.Deleted {
		delete(live, r.Key)
	} else {
		live[r.Key] = r
	}
	c.buckets[b] ^= r.Header().Hash()
	c.byBucket[b][id] = struct{}{}
	c.index(r)
	c.seq++
	return true
}

func (c *Catalog) net(id uint32) *netIndex {
	n := c.nets[id]
	if n == nil {
		n = &netIndex{
			apps:       map[string]*App{},
			machines:   map[string]*appMachines{},
			peers:      map[string]*Peer{},
			hostCounts: map[uint32]int{},
			records:    map[string]*DNSRecord{},
		}
		c.nets[id] = n
	}
	return n
}

func addTo[K comparable, V comparable](m map[K]map[V]struct{}, k K, v V) {
	s := m[k]
	if s == nil {
		s = map[V]struct{}{}
		m[k] = s
	}
	s[v] = struct{}{}
}

// index adds what r contributes to the indexes. Uniqueness indexes see tombstones too.
func (c *Catalog) index(r *Record) {
	if rid := requestID(r); rid != "" {
		c.requests[string(rune(r.Kind))+rid] = r.ID()
	}
	switch {
	case r.Host != nil:
		addTo(c.hostIDs, r.Host.ID, r.Host.Name)
		if !r.Deleted {
			c.hosts[r.Key] = r.Host
		}
		c.dirtyHosts = true
	case r.Org != nil:
		if !r.Deleted {
			c.orgs[r.Key] = r.Org
		}
		c.dirtyOrgs = true
	case r.Network != nil:
		addTo(c.networkIDs, r.Network.ID, r.Key)
		if !r.Deleted {
			c.net(r.Network.ID).net = r.Network
		}
		c.dirtyNets[r.Network.ID] = struct{}{}
	case r.App != nil:
		if !r.Deleted && !r.App.IsLimits() { // an org's limits carrier is no app (orglimits.go)
			c.net(r.App.NetworkID).apps[r.App.Name] = r.App
		}
		c.dirtyNets[r.App.NetworkID] = struct{}{}
		c.dirtyApps[r.App.Name] = struct{}{}
	case r.Peer != nil:
		p := r.Peer
		if !r.Deleted {
			n := c.net(p.NetworkID)
			n.peers[p.Name] = p
			n.hostCounts[p.GatewayID]++
			if i, ok := peerIndex(p); ok {
				c.peerSlot(p.GatewayID, p.NetworkID)[i]++
			}
			if p.Gateway == c.self {
				c.localP[r.Key] = p
			}
		}
		c.dirtyNets[p.NetworkID] = struct{}{}
		if p.Gateway == c.self {
			c.dirtyLocal = true
		}
	case r.DNS != nil:
		if !r.Deleted {
			c.net(r.DNS.NetworkID).records[r.Key] = r.DNS
		}
		c.dirtyNets[r.DNS.NetworkID] = struct{}{}
		c.dirtyRecs[r.DNS.NetworkID] = struct{}{}
	}
}

func (c *Catalog) unindex(r *Record) {
	if r.Deleted {
		return // tombstones only ever added to the uniqueness indexes, which keep them
	}
	switch {
	case r.Host != nil:
		delete(c.hosts, r.Key)
		c.dirtyHosts = true
	case r.Org != nil:
		delete(c.orgs, r.Key)
		c.dirtyOrgs = true
	case r.Network != nil:
		if n := c.nets[r.Network.ID]; n != nil && n.net == r.Network {
			n.net = nil
		}
		c.dirtyNets[r.Network.ID] = struct{}{}
	case r.App != nil:
		if n := c.nets[r.App.NetworkID]; n != nil && n.apps[r.App.Name] == r.App {
			delete(n.apps, r.App.Name)
		}
		c.dirtyNets[r.App.NetworkID] = struct{}{}
		c.dirtyApps[r.App.Name] = struct{}{}
	case r.Peer != nil:
		p := r.Peer
		if n := c.nets[p.NetworkID]; n != nil {
			delete(n.peers, p.Name)
			decr(n.hostCounts, p.GatewayID)
		}
		delete(c.localP, r.Key)
		if i, ok := peerIndex(p); ok {
			slots := c.peerSlot(p.GatewayID, p.NetworkID)
			if slots[i]--; slots[i] <= 0 {
				delete(slots, i)
			}
		}
		c.dirtyNets[p.NetworkID] = struct{}{}
		if p.Gateway == c.self {
			c.dirtyLocal = true
		}
	case r.DNS != nil:
		if n := c.nets[r.DNS.NetworkID]; n != nil {
			delete(n.records, r.Key)
		}
		c.dirtyNets[r.DNS.NetworkID] = struct{}{}
		c.dirtyRecs[r.DNS.NetworkID] = struct{}{}
	}
}

func decr(m map[uint32]int, k uint32) {
	if m[k]--; m[k] <= 0 {
		delete(m, k)
	}
}

func (c *Catalog) peerSlot(gw, net uint32) map[int]int {
	g := c.peersOn[gw]
	if g == nil {
		g = map[uint32]map[int]int{}
		c.peersOn[gw] = g
	}
	s := g[net]
	if s == nil {
		s = map[int]int{}
		g[net] = s
	}
	return s
}

// SetStatus records what membership says about a host. It returns true on a change.
func (c *Catalog) SetStatus(name, status string) bool {
	c.mu.Lock()
	if c.status[name] == status {
		c.mu.Unlock()
		return false
	}
	c.status[name] = status
	c.dirtyHosts = true
	c.seq++
	c.mu.Unlock()
	c.notify()
	return true
}

// Status returns a host's membership status; hosts membership has never reported are
// failed until it does.
func (c *Catalog) Status(name string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.statusLocked(name)
}

func (c *Catalog) statusLocked(name string) string {
	if s, ok := c.status[name]; ok {
		return s
	}
	return StatusFailed
}

// HostIDClaims returns the names of hosts (live or removed) whose records carry id.
func (c *Catalog) HostIDClaims(id uint32) []string { return c.claims(c.hostIDs, id) }

// NetworkIDClaims returns the keys of networks (live or removed) with this id.
func (c *Catalog) NetworkIDClaims(id uint32) []string { return c.claims(c.networkIDs, id) }

func (c *Catalog) claims(index map[uint32]map[string]struct{}, id uint32) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(index[id]))
	for n := range index[id] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// FieldUsed reports whether a machine field was ever used on a host (tombstones count).
func (c *Catalog) FieldUsed(host, field uint32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if host == c.selfID {
		_, ok := c.selfFields[field]
		return ok
	}
	used := false
	c.eachMachine(func(_ int, e *mentry) {
		used = used || (!e.bodyless && e.m.HostID == host && e.m.Field == field)
	})
	return used
}

// FreePeerIndex returns the lowest peer index on gateway gw in network net that no live
// peer uses, skipping those in reserved.
func (c *Catalog) FreePeerIndex(gw, net uint32, reserved map[int]bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	used := c.peersOn[gw][net]
	for i := 0; ; i++ {
		if used[i] == 0 && !reserved[i] {
			return i
		}
	}
}

// Digest returns the XOR digest of every bucket and of the whole catalog.
func (c *Catalog) Digest() (root uint64, buckets [record.Buckets]uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.buckets {
		root ^= b
	}
	return root, c.buckets
}

// Records returns the current records for these ids (unknown ids are skipped).
func (c *Catalog) Records(ids []ID) []*Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Record, 0, len(ids))
	for _, id := range ids {
		if r := c.getLocked(id); r != nil {
			out = append(out, r)
		}
	}
	return out
}

// Watch returns a level-triggered signal: the channel holds at most one pending
// notification, so a slow consumer sees "something changed" once and then reads the
// latest snapshot instead of a backlog of events.
func (c *Catalog) Watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	c.watchers[ch] = struct{}{}
	c.mu.Unlock()
	ch <- struct{}{}
	return ch, func() {
		c.mu.Lock()
		delete(c.watchers, ch)
		c.mu.Unlock()
	}
}

// Latest returns the newest published snapshot without taking the catalog lock, so
// readers on hot paths (DNS) never wait behind gossip writes.
func (c *Catalog) Latest() *Snapshot {
	if s := c.latest.Load(); s != nil {
		return s
	}
	return c.Snapshot()
}

// notify publishes a fresh snapshot (built incrementally) and wakes watchers.
func (c *Catalog) notify() {
	c.Snapshot()
	c.mu.Lock()
	defer c.mu.Unlock()
	for ch := range c.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Seq is the change counter; equal Seq means equal content.
func (c *Catalog) Seq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq
}

func peerIndex(p *Peer) (int, bool) { return sixpn.PeerIndex(p.Address) }

// SubDigests returns, for each bucket, the XOR digests of its SubBuckets leaves.
// It costs a pass over the records of those buckets only.
func (c *Catalog) SubDigests(buckets []int) [][]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([][]uint64, len(buckets))
	for i, b := range buckets {
		out[i] = make([]uint64, SubBuckets)
		if b < 0 || b >= record.Buckets {
			continue
		}
		for id := range c.byBucket[b] {
			out[i][record.Leaf(id)%SubBuckets] ^= c.records[id].Header().Hash()
		}
		for e := range c.machines[b].all() {
			h := e.header()
			out[i][record.Leaf(h.ID())%SubBuckets] ^= h.Hash()
		}
	}
	return out
}

// LeafHeaders returns the headers of every record in the given leaves.
func (c *Catalog) LeafHeaders(leaves []int) []Header {
	want := map[int]bool{}
	byBucket := map[int]bool{}
	for _, l := range leaves {
		if l >= 0 && l < record.Buckets*SubBuckets {
			want[l] = true
			byBucket[l/SubBuckets] = true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Header
	for b := range byBucket {
		for id := range c.byBucket[b] {
			if want[record.Leaf(id)] {
				out = append(out, c.records[id].Header())
			}
		}
		for e := range c.machines[b].all() {
			if h := e.header(); want[record.Leaf(h.ID())] {
				out = append(out, h)
			}
		}
	}
	return out
}

// requestID is the client request id a create carried, if any.
func requestID(r *Record) string {
	switch {
	case r.Machine != nil:
		return r.Machine.RequestID
	case r.App != nil:
		return r.App.RequestID
	case r.Peer != nil:
		return r.Peer.RequestID
	}
	return ""
}

// ByRequest returns the record (tombstones included) a create with this client
// request id made, or nil: a retried create returns the first result instead of
// creating twice.
func (c *Catalog) ByRequest(kind Kind, rid string) *Record {
	if rid == "" {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if kind == KindMachine {
		// The index holds current entries only: a replaced or dropped machine
		// leaves it (forgetRequest) before its entry is released.
		if e := c.machineReqs.get(c.intern.seed, rid); e != nil {
			return e.record()
		}
		return nil
	}
	id, ok := c.requests[string(rune(kind))+rid]
	if !ok {
		return nil
	}
	r := c.getLocked(id)
	if r == nil || requestID(r) != rid {
		return nil
	}
	return r
}
