package mesh

import (
	"fmt"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// commit makes a local write durable, applies it and disseminates it. The order is
// what the durability guarantee rests on: synced to disk before anyone is told.
func (n *Node) commit(rs ...*catalog.Record) error {
	if err := n.store.Put(rs...); err != nil {
		return fmt.Errorf("persist: %w", err)
	}
	var lost []*catalog.Record
	for _, r := range rs {
		if !n.cat.Apply(r) {
			lost = append(lost, r)
		}
	}
	if len(lost) > 0 {
		// Something newer arrived between our write and our apply; make sure disk
		// ends with the winner, not with our record.
		n.persistAsync(lost)
	}
	n.gossip.Publish(rs...)
	n.metrics.writes.Add(float64(len(rs)))
	return nil
}

// persistAsync queues records for the batching writer. Remote records that are lost
// in a crash before this writes them come back through anti-entropy.
func (n *Node) persistAsync(rs []*catalog.Record) {
	select {
	case n.persistCh <- rs:
	case <-n.stop:
	}
}

func (n *Node) persistLoop() {
	defer n.wg.Done()
	for {
		var batch []catalog.ID
		select {
		case rs := <-n.persistCh:
			for _, r := range rs {
				batch = append(batch, r.ID())
			}
		case <-n.stop:
			return
		}
	drain:
		for len(batch) < 5000 {
			select {
			case rs := <-n.persistCh:
				for _, r := range rs {
					batch = append(batch, r.ID())
				}
			default:
				break drain
			}
		}
		// Write what the catalog holds now, so a batch never puts a stale version
		// over a newer one.
		if err := n.store.Put(n.cat.Records(batch)...); err != nil {
			n.log.Error("persist remote records", "err", err, "records", len(batch))
		}
	}
}
