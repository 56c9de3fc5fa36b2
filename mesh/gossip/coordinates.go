package gossip

import (
	"encoding/json"
	"time"

	"github.com/hashicorp/serf/coordinate"
)

// RTT estimates the round-trip time to a host from network coordinates.
func (g *Gossip) RTT(name string) (time.Duration, bool) {
	if name == g.cfg.Name {
		return 0, true
	}
	g.mu.Lock()
	c := g.peerCoord[name]
	g.mu.Unlock()
	if c == nil {
		return 0, false
	}
	return g.coords.DistanceTo(c), true
}

func (g *Gossip) coordPayload() []byte {
	b, _ := json.Marshal(g.coords.GetCoordinate())
	return b
}

// updateCoord folds one measured round trip to a host into our coordinate.
func (g *Gossip) updateCoord(name string, rtt time.Duration, payload []byte) {
	if len(payload) == 0 {
		return
	}
	var c coordinate.Coordinate
	if err := json.Unmarshal(payload, &c); err != nil || !c.IsValid() {
		return
	}
	if _, err := g.coords.Update(name, &c, rtt); err != nil {
		return
	}
	g.mu.Lock()
	g.peerCoord[name] = &c
	g.mu.Unlock()
}
