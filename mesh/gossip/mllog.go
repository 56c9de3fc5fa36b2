package gossip

import (
	"strings"
)

// mlLog adapts memberlist's log.Logger output to slog and counts the messages that
// mean bad input was dropped (wrong key, garbage, unknown types). It reads no member
// state: statuses come from delegates and events (membership.go).
type mlLog struct{ g *Gossip }

func (w *mlLog) Write(p []byte) (int, error) {
	s := strings.TrimSpace(string(p))
	switch {
	case strings.Contains(s, "[ERR]"):
		reason := "memberlist"
		if strings.Contains(s, "ecrypt") || strings.Contains(s, "No installed keys") {
			reason = "decrypt"
		}
		w.g.drops.Add(1)
		w.g.metrics.dropped.WithLabelValues(reason).Inc()
		w.g.log.Warn(s)
	case strings.Contains(s, "[WARN]"):
		w.g.log.Warn(s)
	case strings.Contains(s, "[DEBUG]"):
		w.g.log.Debug(s)
	default:
		w.g.log.Info(s)
	}
	return len(p), nil
}
