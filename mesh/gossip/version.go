package gossip

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"github.com/dogwood/dogwood/mesh/release"
)

// Protocol is the gossip protocol this build speaks, and MinProtocol the oldest it
// exchanges messages with. History (mesh/release keeps the table):
//
//	1  v0.1.0  unsealed messages
//	2  v0.2.0  every message carries the replay seal (replay.go); unsealed ones are refused
//	3  v0.3.0  the protocol version travels in the node meta; the broadcast tree's
//	           compact messages, sent while every member speaks 3 (Speak)
//
// The seal stays mandatory, so protocol 1 is below MinProtocol for good. A change to
// a message that a host of the previous protocol could not read gets a new protocol
// number and is sent only while Versions.speak reports it: every live member reads it.
const (
	Protocol    = 3
	MinProtocol = 2
	// compactProtocol is the first protocol whose hosts read the broadcast tree's
	// compact messages (proto.TreeConfig.Compact); speak turns them on.
	compactProtocol = 3
)

// assumedProtocol is what a member that advertises no protocol speaks until its
// traffic says otherwise: v0.1.0 and v0.2.0 both send {"v":1,"id":…} as meta, and
// only an unsealed message tells the first apart.
const assumedProtocol = 2

// nodeMeta is tiny and versioned: memberlist caps metadata at 512 bytes, and every
// real attribute of a host travels as a catalog record instead. P and R are absent
// in the meta of releases before v0.3.0.
type nodeMeta struct {
	V  int    `json:"v"`
	ID uint32 `json:"id"`
	P  int    `json:"p,omitempty"` // gossip protocol
	M  int    `json:"m,omitempty"` // the oldest protocol it exchanges messages with
	R  string `json:"r,omitempty"` // release, without "v"
}

func encodeMeta(hostID uint32, limit int) []byte {
	b, _ := json.Marshal(nodeMeta{V: 1, ID: hostID, P: Protocol, M: MinProtocol, R: release.Version})
	if len(b) > limit {
		return nil
	}
	return b
}

// MemberVersion is what this host knows of a member's protocol, and whether the two
// can exchange messages.
type MemberVersion struct {
	Name     string `json:"name"`
	Protocol int    `json:"protocol"`
	// Min is the oldest protocol the member accepts (advertised from v0.3.0 on;
	// before, the seal made it its own protocol).
	Min int `json:"min_protocol"`
	// Release is the member's release as advertised ("0.3.0"), or what its protocol
	// implies when it advertises none ("0.2.0 or older", "0.1.0").
	Release    string `json:"release"`
	Advertised bool   `json:"advertised"`
	Compatible bool   `json:"compatible"`
	// Problem says why not, naming both sides' versions; empty when compatible.
	Problem string `json:"problem,omitempty"`
}

// Versions owns the version negotiation: which protocol each live member speaks
// (from its node meta, or inferred from its traffic), which of them this host cannot
// exchange messages with and why, and the protocol this host may speak (the oldest
// any live member speaks). It logs one WARN per member and version it cannot talk
// to. It sends nothing and holds no lock across I/O; memberlist callbacks call it,
// so every method returns at once.
type Versions struct {
	self string
	log  *slog.Logger

	mu      sync.Mutex
	members map[string]MemberVersion
	warned  map[string]int // member → protocol already warned about
}

// newVersions starts with no members known.
func newVersions(self string, log *slog.Logger) *Versions {
	return &Versions{self: self, log: log, members: map[string]MemberVersion{}, warned: map[string]int{}}
}

// Observe records a member's node meta (on join and on update).
func (v *Versions) Observe(name string, meta []byte) {
	if name == v.self {
		return
	}
	var m nodeMeta
	_ = json.Unmarshal(meta, &m) // meta of no form we know: treated as advertising nothing
	mv := MemberVersion{Name: name, Protocol: assumedProtocol, Min: assumedProtocol, Release: strings.TrimPrefix(release.ForProtocol(assumedProtocol), "v") + " or older"}
	if m.P > 0 {
		mv.Protocol, mv.Min, mv.Release, mv.Advertised = m.P, m.M, m.R, true
		if mv.Min <= 0 || mv.Min > mv.Protocol {
			mv.Min = mv.Protocol - 1 // releases accept their predecessor's protocol
		}
		if mv.Release == "" {
			mv.Release = "protocol " + fmt.Sprint(m.P)
		}
	}
	v.mu.Lock()
	if old, ok := v.members[name]; ok && !mv.Advertised && !old.Advertised && old.Protocol < assumedProtocol {
		mv = old // its unsealed traffic already told us more than its meta
	}
	v.set(mv)
	v.mu.Unlock()
}

// unsealed records that a member sent a message without the replay seal: it speaks
// protocol 1. A member that advertises a protocol never does, so its claim stands.
func (v *Versions) unsealed(name string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	old, ok := v.members[name]
	if !ok || old.Advertised || old.Protocol == 1 {
		return
	}
	v.set(MemberVersion{Name: name, Protocol: 1, Min: 1, Release: strings.TrimPrefix(release.ForProtocol(1), "v")})
}

// Gone forgets a member that left or failed: it no longer holds the cluster back,
// and it may come back on another release.
func (v *Versions) Gone(name string) {
	v.mu.Lock()
	delete(v.members, name)
	delete(v.warned, name)
	v.mu.Unlock()
}

// set stores a member's version with its verdict; v.mu held.
func (v *Versions) set(mv MemberVersion) {
	mv.Compatible, mv.Problem = verdict(mv)
	v.members[mv.Name] = mv
	if mv.Compatible {
		delete(v.warned, mv.Name)
		return
	}
	if v.warned[mv.Name] == mv.Protocol {
		return
	}
	v.warned[mv.Name] = mv.Protocol
	v.log.Warn("cannot exchange gossip messages with a member: their protocol versions differ; its catalog changes and this host's do not reach each other",
		"member", mv.Name, "member_release", mv.Release, "member_protocol", mv.Protocol,
		"release", release.Version, "protocol", Protocol, "min_protocol", MinProtocol, "problem", mv.Problem)
}

// verdict says whether this build exchanges messages with a member of mv's version.
func verdict(mv MemberVersion) (bool, string) {
	switch {
	case mv.Protocol < MinProtocol:
		return false, fmt.Sprintf("%s runs %s (gossip protocol %d, messages without the replay seal); this host runs %s (protocol %d, accepts %d..%d): upgrade %s",
			mv.Name, releaseName(mv.Release), mv.Protocol, releaseName(release.Version), Protocol, MinProtocol, Protocol, mv.Name)
	case mv.Min > Protocol:
		return false, fmt.Sprintf("%s runs %s (gossip protocol %d); this host runs %s (protocol %d): upgrade this host",
			mv.Name, releaseName(mv.Release), mv.Protocol, releaseName(release.Version), Protocol)
	}
	return true, ""
}

func releaseName(r string) string {
	if r == "" || r[0] < '0' || r[0] > '9' {
		return r
	}
	return "v" + r
}

// Member returns what is known of one member; ok is false for one never observed.
func (v *Versions) Member(name string) (MemberVersion, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	mv, ok := v.members[name]
	return mv, ok
}

// All lists the live members' versions by name.
func (v *Versions) All() []MemberVersion {
	v.mu.Lock()
	out := make([]MemberVersion, 0, len(v.members))
	for _, mv := range v.members {
		out = append(out, mv)
	}
	v.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// speak is the protocol this host may send: the oldest that any live member it can
// talk to speaks (members it cannot talk to do not hold the cluster back).
func (v *Versions) speak() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	p := Protocol
	for _, mv := range v.members {
		if mv.Compatible && mv.Protocol < p {
			p = mv.Protocol
		}
	}
	return p
}

// readsCompact reports whether every member this host talks to reads the broadcast
// tree's compact messages.
func (v *Versions) readsCompact() bool { return v.speak() >= compactProtocol }

// CallError is why a call to a member cannot work or did not: nil when the member
// speaks a compatible protocol and the call did not fail. Calls use it to name the
// version difference instead of a bare timeout.
func (v *Versions) CallError(host string) error {
	mv, ok := v.Member(host)
	if !ok || mv.Compatible {
		return nil
	}
	return &versionError{Member: mv}
}

// describe is a note naming a member's version when it differs from this host's,
// for errors about calls it did not answer; "" when it runs this release.
func (v *Versions) describe(host string) string {
	mv, ok := v.Member(host)
	if !ok || (mv.Advertised && mv.Protocol == Protocol && mv.Release == release.Version) {
		return ""
	}
	return fmt.Sprintf(" (%s runs %s, gossip protocol %d; this host runs %s, protocol %d)",
		host, releaseName(mv.Release), mv.Protocol, releaseName(release.Version), Protocol)
}

// versionError refuses a call to a member this host cannot exchange messages with.
type versionError struct{ Member MemberVersion }

func (e *versionError) Error() string {
	return "cannot reach " + e.Member.Name + " because of versions: " + e.Member.Problem
}

// StatusCode makes the API answer 503: the operation may work after the upgrade.
func (e *versionError) StatusCode() int { return 503 }

// unsealedSender reads who sent a message without the replay seal, as protocol 1
// (v0.1.0) formats them: a type byte, then JSON naming the sender in "from" (every
// anti-entropy message and RPC request), or the leaving host's name. Nothing in it
// is trusted beyond naming a member to report: only holders of the gossip key can
// send it, and it is dropped either way.
func unsealedSender(buf []byte) string {
	if len(buf) < 2 || buf[0] == sealTag {
		return ""
	}
	body := buf[1:]
	switch msgType(buf[0]) {
	case msgLeaving:
		var name string
		if json.Unmarshal(body, &name) == nil {
			return name
		}
	case msgAERoot, msgAEBuckets, msgAEHeaders, msgAEWant, msgAESubs, msgRPCReq:
		var o origin
		if json.Unmarshal(body, &o) == nil {
			return o.From
		}
	}
	return ""
}
