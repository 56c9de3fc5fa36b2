// Package qname owns the grammar of Dogwood DNS names (SPEC §4): it turns a query
// name into a structured Query — which listing, app, region, machine, peer or
// reverse address it asks for — and says whether the name is ours at all
// (.internal, or a reverse name inside fdaa::/16) or must be forwarded upstream.
//
// Parsing is pure and allocation-light because it runs on every query; it knows
// nothing about the catalog, so "does this app exist" is the resolver's business.
// Reserved words (vms, regions, all, global, vm, process, of, nearest, _metadata,
// kv, _apps, _peer, _instances, _records) win over region or app names that spell the same.
//
// Custom records (`dogwood dns add`) have no grammar of their own: a name that is
// not a generated one (Unknown, or an App-rooted kind whose app does not exist) is
// looked up among them by the resolver.
package qname

import (
	"net/netip"
	"strconv"
	"strings"
)

// Zone says who answers a name.
type Zone uint8

const (
	// External names are forwarded to the upstream resolvers.
	External Zone = iota
	// Internal names are under internal.
	Internal
	// Reverse names are under a.a.d.f.ip6.arpa. (fdaa::/16).
	Reverse
)

// Kind is the shape of a name inside our zones.
type Kind uint8

const (
	// Unknown is a name in our zone that matches no rule: NXDOMAIN.
	Unknown Kind = iota
	// Apex is internal. itself.
	Apex
	// App is <app>.internal or global.<app>.internal.
	App
	// Region is <region>.<app>.internal.
	Region
	// Nearest is top<N>.nearest.of.<app>.internal.
	Nearest
	// VM is <id>.vm.<app>.internal.
	VM
	// Process is <group>.process.<app>.internal.
	Process
	// Meta is <value>.<key>.kv._metadata.<app>.internal.
	Meta
	// Service is _<service>._<proto>.<app>.internal.
	Service
	// Peer is <peer>._peer.internal.
	Peer
	// VMs is [all.]vms.<app>.internal.
	VMs
	// Regions is [all.]regions.<app>.internal.
	Regions
	// Apps is _apps.internal.
	Apps
	// Peers is _peer.internal.
	Peers
	// Instances is [all.]_instances.internal.
	Instances
	// Interior is an empty non-terminal below an app (vm.<app>, nearest.of.<app>,
	// kv._metadata.<app>, _<proto>.<app>, …): it exists when the app exists, with no
	// records of its own, so resolvers doing QNAME minimisation keep going.
	Interior
	// PTR is a full 32-nibble reverse name; Addr holds the address.
	PTR
	// ReverseInterior is a reverse name of fewer than 32 nibbles inside fdaa::/16;
	// Prefix holds the bits it names.
	ReverseInterior
	// Records is _records.internal, the listing of the network's custom names.
	Records
)

var kindNames = [...]string{"unknown", "apex", "app", "region", "nearest", "vm", "process", "meta",
	"service", "peer", "vms", "regions", "apps", "peers", "instances", "interior", "ptr", "reverse-interior", "records"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// MaxNearest bounds top<N>.nearest.of.
const MaxNearest = 20

// Query is a parsed name. Strings are lowercase substrings of the parsed name.
type Query struct {
	Zone Zone
	Kind Kind
	// App is set for every kind below an app (and Interior).
	App string
	// Region for Region; ID for VM; Group for Process; Key and Value for Meta;
	// Service and Proto (without underscores) for Service; Peer for Peer.
	Region, ID, Group, Key, Value, Service, Proto, Peer string
	// N is the count of top<N>.
	N int
	// All selects the all. variant of VMs, Regions and Instances.
	All bool
	// Addr is the address of a PTR name.
	Addr netip.Addr
	// Prefix is what a ReverseInterior name covers.
	Prefix netip.Prefix
}

const (
	internalZone = "internal"
	reverseZone  = "a.a.d.f.ip6.arpa"
)

// Parse classifies a query name in presentation format (as miekg/dns gives it: maybe
// escaped, any case, with or without the final dot).
func Parse(name string) Query {
	name = strings.TrimSuffix(name, ".")
	name = strings.ToLower(name) // no allocation when already lowercase ASCII
	switch {
	case name == internalZone:
		return Query{Zone: Internal, Kind: Apex}
	case strings.HasSuffix(name, "."+internalZone):
		rest := name[:len(name)-len(internalZone)-1]
		if escapedEnd(rest) {
			return Query{Zone: External} // "web\.internal" is one label at the root
		}
		return parseInternal(rest)
	case strings.HasSuffix(name, ".ip6.arpa"):
		rest := name[:len(name)-len(".ip6.arpa")]
		if escapedEnd(rest) {
			return Query{Zone: External}
		}
		return parseReverse(rest)
	}
	return Query{Zone: External}
}

// escapedEnd reports whether s ends in an odd number of backslashes, i.e. the dot
// that followed it was escaped and is part of a label.
func escapedEnd(s string) bool {
	n := 0
	for i := len(s) - 1; i >= 0 && s[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}

// maxLabels is the deepest name of the grammar below internal.
const maxLabels = 5

func parseInternal(rest string) Query {
	q := Query{Zone: Internal}
	if rest == "" || strings.IndexByte(rest, '\\') >= 0 {
		// Escaped dots or bytes could make a label look like two; none of our names
		// need escapes, so such a name simply does not exist.
		return q
	}
	// Labels right to left: l[0] is the one just before "internal".
	var l [maxLabels]string
	n := 0
	for rest != "" {
		if n == maxLabels {
			return q
		}
		i := strings.LastIndexByte(rest, '.')
		l[n] = rest[i+1:]
		if l[n] == "" {
			return q
		}
		rest = rest[:max(i, 0)]
		n++
		if i < 0 {
			break
		}
	}
	switch n {
	case 1:
		switch l[0] {
		case "_apps":
			q.Kind = Apps
		case "_peer":
			q.Kind = Peers
		case "_instances":
			q.Kind = Instances
		case "_records":
			q.Kind = Records
		default:
			if isName(l[0]) {
				q.Kind, q.App = App, l[0]
			}
		}
		return q
	case 2:
		switch l[0] {
		case "_instances":
			if l[1] == "all" {
				q.Kind, q.All = Instances, true
			}
			return q
		case "_peer":
			if isName(l[1]) {
				q.Kind, q.Peer = Peer, l[1]
			}
			return q
		case "_records":
			return q
		}
	}
	if !isName(l[0]) {
		return q
	}
	q.App = l[0]
	switch n {
	case 2:
		switch a := l[1]; {
		case a == "global":
			q.Kind = App
		case a == "vms":
			q.Kind = VMs
		case a == "regions":
			q.Kind = Regions
		case a == "vm" || a == "process" || a == "of" || a == "_metadata" || a == "all":
			q.Kind = Interior
		case len(a) > 1 && a[0] == '_' && isName(a[1:]):
			q.Kind = Interior // _<proto>.<app>
		case isRegion(a):
			q.Kind, q.Region = Region, a
		}
	case 3:
		a, b := l[2], l[1]
		switch {
		case b == "vms" && a == "all":
			q.Kind, q.All = VMs, true
		case b == "regions" && a == "all":
			q.Kind, q.All = Regions, true
		case b == "vm":
			if isMachineID(a) {
				q.Kind, q.ID = VM, a
			}
		case b == "process":
			if isName(a) {
				q.Kind, q.Group = Process, a
			}
		case b == "of" && a == "nearest":
			q.Kind = Interior
		case b == "_metadata" && a == "kv":
			q.Kind = Interior
		case len(a) > 1 && a[0] == '_' && len(b) > 1 && b[0] == '_' && isName(a[1:]) && isName(b[1:]):
			q.Kind, q.Service, q.Proto = Service, a[1:], b[1:]
		}
	case 4:
		switch {
		case l[1] == "of" && l[2] == "nearest":
			if n, ok := topN(l[3]); ok {
				q.Kind, q.N = Nearest, n
			}
		case l[1] == "_metadata" && l[2] == "kv" && isName(l[3]):
			q.Kind = Interior // <key>.kv._metadata.<app>
		}
	case 5:
		if l[1] == "_metadata" && l[2] == "kv" && isName(l[3]) && isName(l[4]) {
			q.Kind, q.Key, q.Value = Meta, l[3], l[4]
		}
	}
	return q
}

// topN parses "top<N>" with 1 ≤ N ≤ MaxNearest and no leading zero.
func topN(s string) (int, bool) {
	d, ok := strings.CutPrefix(s, "top")
	if !ok || d == "" || len(d) > 2 || d[0] == '0' {
		return 0, false
	}
	n := 0
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return 0, false
		}
		n = n*10 + int(d[i]-'0')
	}
	return n, n >= 1 && n <= MaxNearest
}

// isName accepts a lowercase DNS label of letters, digits, '-' and '_' (app, peer,
// group, metadata and service names). Catalog validation is stricter; this only
// keeps garbage away from map lookups.
func isName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// isRegion is SPEC §1: [a-z0-9]{2,16}.
func isRegion(s string) bool {
	if len(s) < 2 || len(s) > 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// isMachineID is SPEC §1: 14 lowercase hex digits.
func isMachineID(s string) bool {
	if len(s) != 14 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if hexVal(s[i]) < 0 {
			return false
		}
	}
	return true
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}

// parseReverse handles the part of an ip6.arpa name before ".ip6.arpa".
// Only names at or below a.a.d.f.ip6.arpa are ours; anything else is forwarded.
func parseReverse(rest string) Query {
	const fdaa = "a.a.d.f"
	if rest != fdaa && !strings.HasSuffix(rest, "."+fdaa) {
		return Query{Zone: External}
	}
	q := Query{Zone: Reverse}
	if strings.IndexByte(rest, '\\') >= 0 {
		return q
	}
	// Nibble labels, least significant first; we fill from the most significant.
	var b [16]byte
	nibbles := 0
	for rest != "" {
		i := strings.LastIndexByte(rest, '.')
		lab := rest[i+1:]
		if len(lab) != 1 || nibbles == 32 {
			return q
		}
		v := hexVal(lab[0])
		if v < 0 {
			return q
		}
		if nibbles%2 == 0 {
			b[nibbles/2] = byte(v) << 4
		} else {
			b[nibbles/2] |= byte(v)
		}
		nibbles++
		if i < 0 {
			break
		}
		rest = rest[:i]
	}
	a := netip.AddrFrom16(b)
	if nibbles == 32 {
		q.Kind, q.Addr = PTR, a
		return q
	}
	q.Kind, q.Prefix = ReverseInterior, netip.PrefixFrom(a, nibbles*4)
	return q
}

// ReverseZone is the reverse zone Dogwood is authoritative for (fdaa::/16).
const ReverseZone = reverseZone + ".ip6.arpa."

// InternalZone is the forward zone.
const InternalZone = internalZone + "."
