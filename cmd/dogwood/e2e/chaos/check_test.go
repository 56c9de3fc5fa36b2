package chaos

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/dogwood/dogwood/cmd/dogwood/e2e/e2eproc"
)

// record is the part of a catalog record that must be identical on every host.
type record struct {
	Kind    int             `json:"k"`
	Key     string          `json:"key"`
	Gen     uint32          `json:"g"`
	Created json.RawMessage `json:"cr"`
	Version json.RawMessage `json:"v"`
	Deleted bool            `json:"d"`
}

func (w *world) catalog(h *host) (string, error) {
	o, err := e2eproc.Run(20*time.Second, nil, "curl", "-sf", "--max-time", "15", "--unix-socket", h.sock, "http://agent/v1/catalog")
	if err != nil {
		return "", fmt.Errorf("%s catalog: %v %s", h.name, err, firstLine(o))
	}
	var rs []record
	if err := json.Unmarshal([]byte(o), &rs); err != nil {
		return "", err
	}
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%d %s %d %s %s %v\n", r.Kind, r.Key, r.Gen, r.Created, r.Version, r.Deleted)
	}
	return b.String(), nil
}

// check heals, waits for the cluster to settle and verifies the invariants.
func (w *world) check(m *model) {
	t := w.t
	names := []string{}
	for _, h := range w.h {
		names = append(names, h.name)
	}
	// No zombies: every host sees exactly the five current incarnations alive.
	ids := map[string]uint32{}
	for _, h := range w.h {
		var st struct {
			HostID uint32 `json:"host_id"`
		}
		out, err := w.cli(h, "status", "--json")
		if err == nil {
			st, err = decode[struct {
				HostID uint32 `json:"host_id"`
			}](out)
		}
		if err != nil {
			t.Fatalf("%s status: %v %s", h.name, err, out)
		}
		ids[h.name] = st.HostID
	}
	err := e2eproc.Eventually(60*time.Second, 500*time.Millisecond, func() error {
		for _, h := range w.h {
			out, err := w.cli(h, "members", "--json")
			if err != nil {
				return fmt.Errorf("%s members: %v", h.name, err)
			}
			ms, err := decode[[]member](out)
			if err != nil {
				return err
			}
			got := map[string]member{}
			for _, mm := range ms {
				got[mm.Name] = mm
			}
			if len(got) != len(w.h) {
				return fmt.Errorf("%s lists %d members, want %d: %s", h.name, len(got), len(w.h), out)
			}
			for _, n := range names {
				if g, ok := got[n]; !ok || g.Status != "alive" || g.HostID != ids[n] {
					return fmt.Errorf("%s sees %s as %+v, want alive with id %08x", h.name, n, g, ids[n])
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("membership: %v", err)
	}
	w.logf("check: membership settled, no zombies")

	// All catalogs identical.
	var ref string
	err = e2eproc.Eventually(60*time.Second, time.Second, func() error {
		var first string
		for i, h := range w.h {
			c, err := w.catalog(h)
			if err != nil {
				return err
			}
			if i == 0 {
				first = c
			} else if c != first {
				return fmt.Errorf("%s's catalog differs from %s's (%d vs %d bytes)", h.name, w.h[0].name, len(c), len(first))
			}
		}
		ref = first
		return nil
	})
	if err != nil {
		t.Fatalf("catalogs: %v", err)
	}
	w.logf("check: %d catalog records identical on every host", strings.Count(ref, "\n"))

	// Acknowledged writes.
	out, err := w.cli(w.h[0], "machines", "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	list, err := decode[[]machine](out)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]machine{}
	addrs := map[string]string{}
	for _, mc := range list {
		if o, dup := addrs[mc.Address]; dup {
			t.Errorf("address %s used by machines %s and %s", mc.Address, o, mc.ID)
		}
		if _, dup := byID[mc.ID]; dup {
			t.Errorf("machine id %s listed twice", mc.ID)
		}
		addrs[mc.Address] = mc.ID
		byID[mc.ID] = mc
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	present := 0
	for _, a := range m.machines {
		got, ok := byID[a.ID]
		retired := a.epoch != m.epoch[a.Host]
		switch {
		case a.destroyed || retired:
			if ok {
				t.Errorf("machine %s (destroyed=%v, host %s retired=%v) is still listed", a.ID, a.destroyed, a.Host, retired)
			}
		case a.maybeGone:
		case !ok:
			t.Errorf("acknowledged machine %s (%s/%s on %s) is missing", a.ID, a.Org, a.App, a.Host)
		default:
			present++
			if a.state != "" && got.State != a.state {
				t.Errorf("machine %s is %s, last acknowledged %s", a.ID, got.State, a.state)
			}
			if got.Address != a.Address {
				t.Errorf("machine %s changed address %s -> %s", a.ID, a.Address, got.Address)
			}
		}
	}
	out, err = w.cli(w.h[0], "apps", "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	apps, _ := decode[[]struct{ Name, Org string }](out)
	haveApp := map[string]bool{}
	for _, a := range apps {
		haveApp[a.Org+"/"+a.Name] = true
	}
	for k := range m.apps {
		if !haveApp[k] {
			t.Errorf("acknowledged app %s is missing", k)
		}
	}
	out, err = w.cli(w.h[0], "wireguard", "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	ps, _ := decode[[]struct {
		Name, Org, Address string
	}](out)
	havePeer := map[string]bool{}
	for _, p := range ps {
		havePeer[p.Org+"/"+p.Name] = true
		if o, dup := addrs[p.Address]; dup {
			t.Errorf("address %s used by peer %s/%s and %s", p.Address, p.Org, p.Name, o)
		}
		addrs[p.Address] = p.Org + "/" + p.Name
	}
	for k := range m.peers {
		if !havePeer[k] {
			t.Errorf("acknowledged peer %s is missing", k)
		}
	}
	w.logf("check: %d acknowledged machines present, %d apps, %d peers", present, len(m.apps), len(m.peers))

	// Every started machine resolves and answers ping from another machine of its
	// network.
	byNet := map[string][]*acked{}
	for _, a := range m.machines {
		got, ok := byID[a.ID]
		if !ok || got.State != "started" {
			continue
		}
		a.State = got.State
		byNet[a.Org+"/"+a.Network] = append(byNet[a.Org+"/"+a.Network], a)
	}
	nets := make([]string, 0, len(byNet))
	for k := range byNet {
		nets = append(nets, k)
	}
	sort.Strings(nets)
	probed := 0
	for _, k := range nets {
		ms := byNet[k]
		for i, a := range ms {
			from := ms[(i+1)%len(ms)]
			name := a.ID + ".vm." + a.App + ".internal"
			err := e2eproc.Eventually(20*time.Second, 500*time.Millisecond, func() error {
				out, err := e2eproc.NSRun(10*time.Second, from.ns, "dig", "+short", "+time=2", "+tries=1", "@fdaa::3", name, "AAAA")
				if err != nil || strings.TrimSpace(out) != a.Address {
					return fmt.Errorf("dig %s from %s: %q %v", name, from.ID, strings.TrimSpace(out), err)
				}
				if from.ID == a.ID {
					return nil
				}
				out, err = e2eproc.NSRun(10*time.Second, from.ns, "busybox", "ping", "-6", "-c", "1", "-W", "2", a.Address)
				if err != nil {
					return fmt.Errorf("ping %s (%s on %s) from %s (on %s): %v %s", a.Address, a.ID, a.Host, from.ID, from.Host, err, firstLine(out))
				}
				return nil
			})
			if err != nil {
				t.Errorf("machine %s: %v", a.ID, err)
			}
			probed++
		}
	}
	w.logf("check: %d started machines resolved and answered ping", probed)
}
