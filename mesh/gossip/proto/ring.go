package proto

import (
	"hash/fnv"
	"sort"
	"time"
)

// Ring lays one membership view out as a spanning tree that every host computes
// the same way from the same members, with no messages and no timing involved.
//
// Why not Plumtree's own tree: Plumtree shapes its tree from message timing (a
// duplicate prunes the link that brought it, a late message grafts the link that
// announced it). With changes from many sources in flight at once, every message
// cuts each cycle at a different place; measured in the simulator at 1,000 hosts
// and 100 changes/s the eager graph swung between a forest (half the hosts cut off,
// repaired by grafts) and twice a tree, and each host received 2.3–4 copies of every
// change whatever the graft timeout, prune sampling or damping.
//
// The layout is a skip list folded into a tree: each host gets a point on a ring
// and a level from a hash of its name (level k with probability (1/Fanout)^k), and
// its parent is the nearest host before it on the ring with a higher level. Depth
// is about log_Fanout(N), a host has about (Fanout-1) children per level below its
// own, and a member joining or leaving changes only the links around it, not the
// whole layout (a sorted-order k-ary heap would renumber every host).
type Ring struct {
	names  []string       // in ring order, starting at the root
	parent []int          // index of each host's parent (-1 for the root)
	kids   [][]int        // children by index
	index  map[string]int // name -> position
}

// RingFanout is the default Fanout: depth about log_8(N) (5 levels at 10,000 hosts,
// so about 10 hops between two hosts at most), and about 7 children per level below
// a host's own.
const RingFanout = 8

// NewRing lays out members (any order, duplicates ignored) with the given fanout
// (0: RingFanout).
func NewRing(members []string, fanout int) *Ring {
	if fanout < 2 {
		fanout = RingFanout
	}
	type node struct {
		name  string
		h     uint64
		level int
	}
	seen := make(map[string]bool, len(members))
	nodes := make([]node, 0, len(members))
	for _, m := range members {
		if seen[m] {
			continue
		}
		seen[m] = true
		h := fnv.New64a()
		h.Write([]byte(m))
		v := h.Sum64()
		// The level comes from other bits than the ring position, which is v.
		lv, x := 0, mix(v)
		for x%uint64(fanout) == 0 && lv < 16 {
			lv++
			x /= uint64(fanout)
		}
		nodes = append(nodes, node{m, v, lv})
	}
	sort.Slice(nodes, func(i, j int) bool {
		if nodes[i].h != nodes[j].h {
			return nodes[i].h < nodes[j].h
		}
		return nodes[i].name < nodes[j].name
	})
	r := &Ring{index: make(map[string]int, len(nodes))}
	n := len(nodes)
	if n == 0 {
		return r
	}
	// The root is the highest level (first on the ring among equals); the ring is
	// read starting there, so every other host has a predecessor above it or hangs
	// off the root.
	root := 0
	for i, x := range nodes {
		if x.level > nodes[root].level {
			root = i
		}
	}
	r.names = make([]string, n)
	levels := make([]int, n)
	for i := range n {
		x := nodes[(root+i)%n]
		r.names[i], levels[i] = x.name, x.level
		r.index[x.name] = i
	}
	// Nearest previous host with a higher level: a monotonic stack, O(N).
	r.parent = make([]int, n)
	r.kids = make([][]int, n)
	r.parent[0] = -1
	stack := []int{0}
	for i := 1; i < n; i++ {
		for len(stack) > 1 && levels[stack[len(stack)-1]] <= levels[i] {
			stack = stack[:len(stack)-1]
		}
		p := stack[len(stack)-1]
		r.parent[i] = p
		r.kids[p] = append(r.kids[p], i)
		stack = append(stack, i)
	}
	return r
}

func mix(v uint64) uint64 {
	v ^= v >> 33
	v *= 0xff51afd7ed558ccd
	v ^= v >> 33
	v *= 0xc4ceb9fe1a85ec53
	v ^= v >> 33
	return v
}

// Len is the number of members laid out.
func (r *Ring) Len() int { return len(r.names) }

// Links returns name's tree neighbors (its parent, then its children), or nil when
// name is not in the ring.
func (r *Ring) Links(name string) []string {
	i, ok := r.index[name]
	if !ok {
		return nil
	}
	out := make([]string, 0, 1+len(r.kids[i]))
	if p := r.parent[i]; p >= 0 {
		out = append(out, r.names[p])
	}
	for _, k := range r.kids[i] {
		out = append(out, r.names[k])
	}
	return out
}

// Depth is the number of hops from the root to the deepest host.
func (r *Ring) Depth() int {
	d := 0
	depth := make([]int, len(r.names))
	for i := 1; i < len(r.names); i++ { // parents come before children
		depth[i] = depth[r.parent[i]] + 1
		d = max(d, depth[i])
	}
	return d
}

// MinGraftWait is the least GraftWaitFor returns: below it, scheduling delay on a
// busy host is mistaken for loss.
const MinGraftWait = 20 * time.Millisecond

// GraftWaitFor is how long a host on a ring of the given depth waits for a tree
// copy of a change it has heard announced by a peer at round-trip time rtt, before
// asking that peer: the copy and the announcement can be apart by about a tree
// path (up to twice the depth, a hop being half a round trip) plus the
// announcement's own hop.
func GraftWaitFor(depth int, rtt time.Duration) time.Duration {
	return max(MinGraftWait, time.Duration(depth+1)*rtt)
}
