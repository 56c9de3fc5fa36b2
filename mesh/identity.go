package mesh

import (
	"fmt"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/sixpn"
)

// writeHostRecord (re)publishes this host's record when anything in it changed.
func (n *Node) writeHostRecord() error {
	h := &catalog.Host{
		Name: n.id.Name, ID: n.id.HostID, Region: n.cfg.Region, Addr: n.advAddr,
		WGPort: n.cfg.WGPort, Gateway: n.cfg.Gateway, PublicEndpoint: n.cfg.PublicEndpoint,
	}
	if _, port := n.gossip.LocalAddr(); port != 0 {
		h.GossipPort = port
	}
	if n.cfg.WireGuard {
		h.PublicKey = n.wgKey.PublicKey().String()
	}
	cur := n.cat.Get(catalog.ID{Kind: catalog.KindHost, Key: n.id.Name})
	if cur != nil && !cur.Deleted && cur.Host != nil && *cur.Host == *h && cur.Created == n.id.Created {
		return nil
	}
	gen := n.id.Gen
	if cur != nil && cur.Deleted && cur.Gen >= gen {
		// We were removed with `members remove` and came back: start a new generation
		// so the tombstone cannot hide us.
		gen = cur.Gen + 1
		n.id.Gen = gen
		n.id.Created = n.cat.Tick()
		if err := n.store.SaveIdentity(n.id); err != nil {
			return err
		}
	}
	r := &catalog.Record{Kind: catalog.KindHost, Key: h.Name, Gen: gen, Created: n.id.Created, Version: n.cat.Tick(), Host: h}
	return n.commit(r)
}

// checkHostID resolves a host-id collision before any allocation uses the id: of two
// hosts claiming one id, the one created first keeps it; the other takes a new id,
// which is only possible while it has allocated nothing.
func (n *Node) checkHostID() error {
	for _, other := range n.cat.HostIDClaims(n.id.HostID) {
		if other == n.id.Name {
			continue
		}
		r := n.cat.Get(catalog.ID{Kind: catalog.KindHost, Key: other})
		if r == nil {
			continue
		}
		if !r.Deleted && r.Created.Compare(n.id.Created) > 0 {
			continue // we were first; the other host moves
		}
		for _, m := range n.cat.Snapshot().LocalMachines {
			if m.HostID == n.id.HostID {
				return conflict("host id %08x collides with host %q and this host already has machines", n.id.HostID, other)
			}
		}
		for len(n.cat.HostIDClaims(n.id.HostID)) > 0 {
			n.id.HostID = sixpn.Random32()
		}
		n.log.Warn("host id collision resolved: took a new id", "other", other, "new_id", fmt.Sprintf("%08x", n.id.HostID))
		if err := n.store.SaveIdentity(n.id); err != nil {
			return err
		}
		n.cat.SetSelfID(n.id.HostID)
		return n.writeHostRecord()
	}
	return nil
}
