package gossip

import (
	"context"
	"strings"
)

// mlLog adapts memberlist's log.Logger output to slog and counts the messages that
// mean bad input was dropped (wrong key, garbage, unknown types). It reads no member
// state: statuses come from delegates and events (membership.go).
type mlLog struct{ g *Gossip }

func (w *mlLog) Write(p []byte) (int, error) {
	level, msg, attrs := parseMemberlistLine(string(p))
	if strings.Contains(string(p), "[ERR]") {
		reason := "memberlist"
		// "Decrypt packet failed" (UDP), "no installed keys could decrypt" (TCP).
		if lm := strings.ToLower(msg); strings.Contains(lm, "decrypt") || strings.Contains(lm, "no installed keys") {
			reason = "decrypt"
		}
		w.g.drops.Add(1)
		w.g.metrics.dropped.WithLabelValues(reason).Inc()
	}
	w.g.log.Log(context.Background(), level, msg, attrs...)
	return len(p), nil
}
