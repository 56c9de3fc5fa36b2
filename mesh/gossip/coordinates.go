package gossip

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/hashicorp/serf/coordinate"
)

// coords is this host's network coordinate (serf/coordinate, fed by memberlist's
// probes) and the last coordinate each member sent.
type coords struct {
	self   string
	client *coordinate.Client

	mu    sync.Mutex
	peers map[string]*coordinate.Coordinate
}

// RTT estimates the round-trip time to a host from network coordinates.
func (c *coords) RTT(name string) (time.Duration, bool) {
	if name == c.self {
		return 0, true
	}
	c.mu.Lock()
	pc := c.peers[name]
	c.mu.Unlock()
	if pc == nil {
		return 0, false
	}
	return c.client.DistanceTo(pc), true
}

func (c *coords) coordPayload() []byte {
	b, _ := json.Marshal(c.client.GetCoordinate())
	return b
}

// updateCoord folds one measured round trip to a host into our coordinate.
func (c *coords) updateCoord(name string, rtt time.Duration, payload []byte) {
	if len(payload) == 0 {
		return
	}
	var pc coordinate.Coordinate
	if err := json.Unmarshal(payload, &pc); err != nil || !pc.IsValid() {
		return
	}
	if _, err := c.client.Update(name, &pc, rtt); err != nil {
		return
	}
	c.mu.Lock()
	c.peers[name] = &pc
	c.mu.Unlock()
}
