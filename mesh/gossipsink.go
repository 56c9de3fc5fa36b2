package mesh

import (
	"net/netip"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/gossip"
)

// gossipSink is where gossip hands what it learns: records go into the catalog,
// and those that changed it are queued for disk (persistAsync never waits for the
// disk, as gossip.Sink requires of it).
// split: mesh/replica's Merge replaces this adapter.
type gossipSink struct {
	*catalog.Catalog
	persist func([]*catalog.Record)
}

func (s gossipSink) Merge(rs []*catalog.Record) []*catalog.Record {
	changed := s.ApplyAll(rs)
	if len(changed) > 0 {
		s.persist(changed)
	}
	return changed
}

// Failed lists the failed hosts at the gossip address their host record holds.
func (s gossipSink) Failed() []gossip.Peer {
	var out []gossip.Peer
	for _, h := range s.Latest().Hosts {
		if h.Status == catalog.StatusFailed && h.GossipPort != 0 && h.Addr.IsValid() {
			out = append(out, gossip.Peer{Name: h.Name, Addr: netip.AddrPortFrom(h.Addr, h.GossipPort)})
		}
	}
	return out
}
