package meshbench

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
)

func idleWindow() time.Duration {
	if s, err := strconv.Atoi(os.Getenv("DOGWOOD_BENCH_IDLE_SECONDS")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 10 * time.Second
}

// loadedCluster starts size agents whose catalogs hold recs (applied to each agent
// while its transport is gated, so nothing is exchanged while loading), then lets them
// join and converge.
func loadedCluster(t *testing.T, size int, recs []*catalog.Record) *cluster {
	c := newCluster(t, size, true)
	for _, n := range c.nodes {
		n.Catalog().ApplyAll(recs)
	}
	for _, n := range c.nodes {
		n.tr.Open()
	}
	c.waitMembers(30 * time.Second)
	c.waitConverged(60 * time.Second)
	return c
}

// TestBenchIdleGossip: background bytes per host with nothing changing, 1,000 vs
// 100,000 machine records (SPEC §3 cost: must not grow with catalog size).
func TestBenchIdleGossip(t *testing.T) {
	benchOn(t)
	const hosts = 5
	win := idleWindow()
	Section("Idle gossip bytes per host",
		fmt.Sprintf("%d agents holding identical catalogs, nothing changing; bytes each agent's transport writes "+
			"(UDP payloads + TCP stream bytes, memberlist framing and encryption included) over %v, after convergence "+
			"and a 2s settle. mesh.Config defaults (AEInterval 1s, memberlist LAN: probe 1s, gossip 200ms, push/pull 30s).", hosts, win))
	var rates []float64
	for _, n := range []int{1_000, 100_000} {
		recs := append(ParentRecords(), MachineRecords(0, n)...)
		func() {
			c := loadedCluster(t, hosts, recs)
			defer c.close()
			time.Sleep(2 * time.Second)
			tr0 := c.traffic()
			ae0 := make([]float64, hosts)
			for i, nd := range c.nodes {
				ae0[i] = counter(nd, "dogwood_antientropy_bytes_total", "direction", "sent")
			}
			time.Sleep(win)
			tr1 := c.traffic()
			var sum, maxRate, pkts, stream, ae float64
			for i := range c.nodes {
				d := tr1[i].Sub(tr0[i])
				r := float64(d.BytesOut()) / win.Seconds()
				sum += r
				maxRate = max(maxRate, r)
				pkts += float64(d.PacketsOut)
				stream += float64(d.StreamBytesOut)
				ae += counter(c.nodes[i], "dogwood_antientropy_bytes_total", "direction", "sent") - ae0[i]
			}
			mean := sum / hosts
			rates = append(rates, mean)
			Line("idle-gossip records=%d hosts=%d: mean %s/s per host (max %s/s), %.1f packets/s per host, TCP %s/s per host, anti-entropy payload %s/s per host",
				n+len(ParentRecords()), hosts, Bytes(mean), Bytes(maxRate), pkts/hosts/win.Seconds(),
				Bytes(stream/hosts/win.Seconds()), Bytes(ae/hosts/win.Seconds()))
		}()
	}
	Line("idle-gossip ratio 100k/1k records = %.2f (1.0 = independent of catalog size)", rates[1]/rates[0])
}

// TestBenchCatchUp: a host that missed 10,000 records comes back; how long until its
// catalog matches, and how many bytes that took. Run with a base catalog of 1,000 and
// of 100,000 records to show whether the cost follows what was missed or the
// catalog's size.
func TestBenchCatchUp(t *testing.T) {
	benchOn(t)
	const missed = 10_000
	Section("Anti-entropy catch-up",
		fmt.Sprintf("3 agents. Two hold base+%d machine records and have converged; the third holds only base "+
			"(it was away). Its transport opens at t0; it joins (memberlist push/pull) and anti-entropy repairs it. "+
			"Bytes = everything all three transports wrote from t0 until converged, and until 3s after.", missed))
	for _, base := range []int{1_000, 100_000} {
		func() {
			parents := ParentRecords()
			have := append(append([]*catalog.Record(nil), parents...), MachineRecords(0, base+missed)...)
			c := loadedCluster(t, 2, have)
			defer c.close()
			// The third host: gated until its catalog is loaded.
			away := c.startNode("away", true, []string{c.nodes[0].addr})
			away.Catalog().ApplyAll(append(append([]*catalog.Record(nil), parents...), MachineRecords(0, base)...))
			aeRecs0 := counter(c.nodes[0], "dogwood_antientropy_records_sent_total", "", "") + counter(c.nodes[1], "dogwood_antientropy_records_sent_total", "", "")
			msgs0 := msgCounts(c.nodes)
			tr0 := c.traffic()
			t0 := time.Now()
			away.tr.Open()
			var joined, done time.Duration
			for {
				el := time.Since(t0)
				if joined == 0 && aliveCount(c.nodes[0]) == 3 {
					joined = el
				}
				if converged(c.nodes) {
					done = el
					break
				}
				if el > 120*time.Second {
					t.Fatalf("base=%d: not caught up after %v", base, el)
				}
				time.Sleep(2 * time.Millisecond)
			}
			trDone := c.traffic()
			time.Sleep(3 * time.Second)
			trAfter := c.traffic()
			var atDone, after, toAway int64
			for i := range c.nodes {
				atDone += trDone[i].Sub(tr0[i]).BytesOut()
				after += trAfter[i].Sub(tr0[i]).BytesOut()
			}
			d := trAfter[2].Sub(tr0[2])
			toAway = d.PacketBytesIn + d.StreamBytesIn
			msgs := msgCounts(c.nodes)
			for k := range msgs {
				msgs[k] -= msgs0[k]
			}
			aeRecs := counter(c.nodes[0], "dogwood_antientropy_records_sent_total", "", "") + counter(c.nodes[1], "dogwood_antientropy_records_sent_total", "", "") - aeRecs0
			Line("catch-up base=%d missed=%d: caught up %v after its transport opened (joined at %v, so %v after joining); bytes written by all hosts: %s until converged, %s by +3s (%s received by the returning host); records sent by anti-entropy: %.0f for %d missed (%.0f B per missed record on the wire)",
				base+len(parents), missed, done.Round(time.Millisecond), joined.Round(time.Millisecond), (done - joined).Round(time.Millisecond),
				Bytes(float64(atDone)), Bytes(float64(after)), Bytes(float64(toAway)), aeRecs, missed, float64(after)/missed)
			Line("catch-up base=%d missed=%d: messages sent by all hosts: ae_root=%.0f ae_buckets=%.0f ae_headers=%.0f ae_want=%.0f records=%.0f; anti-entropy control payload (root+buckets+headers+want) %s",
				base+len(parents), missed, msgs["ae_root"], msgs["ae_buckets"], msgs["ae_headers"], msgs["ae_want"], msgs["records"], Bytes(msgs["ae_bytes"]))
		}()
	}
}

// msgCounts sums gossip messages sent by type, and anti-entropy control bytes sent,
// over nodes.
func msgCounts(nodes []*benchNode) map[string]float64 {
	out := map[string]float64{}
	for _, n := range nodes {
		byType := counters(n, "dogwood_gossip_messages_sent_total", "type")
		for _, t := range []string{"ae_root", "ae_buckets", "ae_headers", "ae_want", "records"} {
			out[t] += byType[t]
		}
		out["ae_bytes"] += counter(n, "dogwood_antientropy_bytes_total", "direction", "sent")
	}
	return out
}
