package peers

import (
	"log/slog"
	"time"
)

// Parts are the data plane's collaborators (tests build a data plane on fakes of them).
type Parts struct {
	Links      Links
	Namespaces Namespaces
	Filters    Filters
	Peers      PeerSync
}

// NewWithParts builds a data plane on the given parts and no WireGuard device: the
// apply logic, run without root (tests use the fakes in fakes_test.go).
func NewWithParts(cfg Config, p Parts) *DataPlane {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Interface == "" {
		cfg.Interface = DefaultInterface
	}
	if cfg.ListenPort == 0 {
		cfg.ListenPort = DefaultPort
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	d := &DataPlane{cfg: cfg, log: cfg.Logger, links: p.Links, attach: p.Namespaces, filter: p.Filters, sync: p.Peers}
	d.metrics = newMetrics(d)
	return d
}
