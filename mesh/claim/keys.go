package claim

import (
	"fmt"
	"hash/fnv"
	"sort"

	"github.com/dogwood/dogwood/mesh/record"
)

// claimKeys are the unique names a record takes.
func claimKeys(r *record.Record) []string {
	keys := []string{"id/" + r.ID().String()}
	if r.Network != nil {
		keys = append(keys, fmt.Sprintf("network-id/%08x", r.Network.ID))
	}
	return keys
}

// pickArbiters returns the arbiter hosts of key among the given hosts (sorted result):
// the arbiterCount hosts with the highest hash of (key, host), so every host
// computes the same set and a host joining or leaving moves at most one.
func pickArbiters(key string, hosts []string) []string {
	type scored struct {
		name  string
		score uint64
	}
	s := make([]scored, 0, len(hosts))
	for _, h := range hosts {
		f := fnv.New64a()
		f.Write([]byte(key))
		f.Write([]byte{0})
		f.Write([]byte(h))
		s = append(s, scored{h, f.Sum64()})
	}
	sort.Slice(s, func(i, j int) bool {
		return s[i].score > s[j].score || s[i].score == s[j].score && s[i].name < s[j].name
	})
	out := make([]string, 0, arbiterCount)
	for _, x := range s[:min(arbiterCount, len(s))] {
		out = append(out, x.name)
	}
	sort.Strings(out)
	return out
}
