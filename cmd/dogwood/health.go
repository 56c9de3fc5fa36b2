//go:build agent

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dogwood/dogwood/mesh"
	"github.com/dogwood/dogwood/mesh/catalog"
)

// readiness answers /readyz: the agent is ready when it has joined the cluster
// (or was given nobody to join), its DNS listener answers, WireGuard is
// configured with the latest catalog (or is off), and its disk holds what it applied. /healthz only says the process
// serves HTTP, so a supervisor restarts a wedged agent but not one that merely
// waits for its peers.
type readiness struct {
	node       *mesh.Node
	dp         *dataPlane
	dns        *dnsService
	wantsPeers bool // --join was given
}

// readyCheck is one line of /readyz.
type readyCheck struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

func (r *readiness) checks(ctx context.Context) []readyCheck {
	return []readyCheck{r.joined(), r.dnsServing(ctx), r.wireguard(), diskCheck(r.node.DiskBehind())}
}

// diskCheck fails while records this host applied are not on its disk: a restart
// then would come back with less than it served (anti-entropy would refill it, but
// only from hosts that are up).
func diskCheck(behind error) readyCheck {
	c := readyCheck{Name: "disk"}
	if behind != nil {
		c.Detail = behind.Error()
		return c
	}
	c.OK, c.Detail = true, "every applied record is on disk"
	return c
}

func (r *readiness) joined() readyCheck {
	c := readyCheck{Name: "gossip"}
	alive := 0
	for _, m := range r.node.Members.List() {
		if m.Name != r.node.Name() && catalog.Live(m.Status) {
			alive++
		}
	}
	switch {
	case alive > 0:
		c.OK, c.Detail = true, fmt.Sprintf("joined, %d other live members", alive)
	case !r.wantsPeers:
		c.OK, c.Detail = true, "alone (no --join given)"
	default:
		c.Detail = "not joined: no other member reachable yet (check --join addresses, the gossip port and the gossip key)"
	}
	return c
}

func (r *readiness) dnsServing(ctx context.Context) readyCheck {
	c := readyCheck{Name: "dns"}
	addrs := r.dns.srv.Addrs()
	if len(addrs) == 0 {
		c.Detail = "no DNS listener"
		return c
	}
	var fails []string
	for _, a := range addrs {
		if err := probeDNS(ctx, a); err != nil {
			fails = append(fails, err.Error())
		}
	}
	if len(fails) > 0 {
		c.Detail = strings.Join(fails, "; ")
		return c
	}
	c.OK, c.Detail = true, fmt.Sprintf("%d listeners answer", len(addrs))
	return c
}

func (r *readiness) wireguard() readyCheck {
	c := readyCheck{Name: "wireguard"}
	if r.dp.dp == nil {
		c.OK, c.Detail = true, "off"
		return c
	}
	if err := r.dp.lastApplyErr(); err != nil {
		c.Detail = "last apply failed: " + err.Error()
		return c
	}
	c.OK, c.Detail = true, "configured"
	return c
}

// probeDNS asks a listener for the SOA of internal., which the agent answers
// itself: any well-formed answer means the listener works.
func probeDNS(ctx context.Context, a netip.AddrPort) error {
	m := new(dns.Msg)
	m.SetQuestion("internal.", dns.TypeSOA)
	cl := &dns.Client{Net: "udp", Timeout: time.Second}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, _, err := cl.ExchangeContext(ctx, m, a.String()); err != nil {
		return fmt.Errorf("DNS %s: %v", a, err)
	}
	return nil
}

// handlers are /healthz and /readyz for the metrics listener. /readyz answers 200
// or 503 with one "[+] name: detail" line per check (JSON with ?format=json), as
// Kubernetes' own endpoints do.
func (r *readiness) handlers(mux *http.ServeMux) {
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, req *http.Request) {
		cs := r.checks(req.Context())
		code := http.StatusOK
		for _, c := range cs {
			if !c.OK {
				code = http.StatusServiceUnavailable
			}
		}
		if req.URL.Query().Get("format") == "json" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			json.NewEncoder(w).Encode(map[string]any{"ready": code == http.StatusOK, "checks": cs})
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		for _, c := range cs {
			mark := "+"
			if !c.OK {
				mark = "-"
			}
			fmt.Fprintf(w, "[%s] %s: %s\n", mark, c.Name, c.Detail)
		}
		if code == http.StatusOK {
			fmt.Fprintln(w, "ready")
		} else {
			fmt.Fprintln(w, "not ready")
		}
	})
}

// notifySystemd tells systemd (Type=notify) the agent is up: gossip is
// listening, the DNS listeners are bound and WireGuard has the catalog applied —
// runAgent calls it after all three. Joining is not waited for: a host whose
// peers are all down must still start; /readyz reports that instead. Without
// $NOTIFY_SOCKET this does nothing.
func notifySystemd(log *slog.Logger, state string) {
	if ok, err := daemon.SdNotify(false, state); err != nil {
		log.Warn("sd_notify", "state", state, "err", err)
	} else if ok {
		log.Debug("sd_notify", "state", state)
	}
}

// membersCollector exports gossip membership at scrape time: counts by status;
// each member that is not alive by name, so alerts can say which host (alive
// members are left out: one series per host per host would grow with the
// square of the fleet); and this host's own name, so rules can tell which
// member an unreachable scrape target is.
type membersCollector struct {
	node                  *mesh.Node
	desc, unhealthy, self *prometheus.Desc
}

func newMembersCollector(n *mesh.Node) *membersCollector {
	return &membersCollector{node: n,
		desc: prometheus.NewDesc("dogwood_gossip_members",
			"Hosts in the catalog by membership status (alive, suspect, failed, left), as this host sees them.", []string{"status"}, nil),
		unhealthy: prometheus.NewDesc("dogwood_gossip_member_unhealthy",
			"1 for each member this host sees suspect, failed or left (a member removed with `dogwood members remove` is gone).", []string{"member", "status"}, nil),
		self: prometheus.NewDesc("dogwood_host_info", "This host's name in the cluster (always 1).", []string{"host"}, nil),
	}
}

func (m *membersCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.desc
	ch <- m.unhealthy
	ch <- m.self
}

func (m *membersCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]float64{catalog.StatusAlive: 0, catalog.StatusSuspect: 0, catalog.StatusFailed: 0, catalog.StatusLeft: 0}
	for _, mi := range m.node.Members.List() {
		counts[mi.Status]++
		if mi.Status != catalog.StatusAlive {
			ch <- prometheus.MustNewConstMetric(m.unhealthy, prometheus.GaugeValue, 1, mi.Name, mi.Status)
		}
	}
	for s, v := range counts {
		ch <- prometheus.MustNewConstMetric(m.desc, prometheus.GaugeValue, v, s)
	}
	ch <- prometheus.MustNewConstMetric(m.self, prometheus.GaugeValue, 1, m.node.Name())
}
