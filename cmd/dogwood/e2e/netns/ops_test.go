package netns

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dogwood/dogwood/cmd/dogwood/e2e/e2eproc"
)

type doctorCheck struct {
	Name, Status, Detail, Next string
}

// doctor runs `dogwood doctor --json` on h; a failing check makes it exit 1,
// which is not an error here.
func (w *world) doctor(h *host) (map[string]doctorCheck, error) {
	out, _ := w.try(h, "doctor", "--json") // stdout, then "dogwood: doctor: N failed" on stderr
	var cs []doctorCheck
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&cs); err != nil {
		return nil, fmt.Errorf("doctor --json: %v: %s", err, out)
	}
	m := map[string]doctorCheck{}
	for _, c := range cs {
		m[c.Name] = c
	}
	return m, nil
}

func failures(cs map[string]doctorCheck) []string {
	var out []string
	for _, c := range cs {
		if c.Status == "fail" {
			out = append(out, c.Name+": "+c.Detail)
		}
	}
	sortStrings(out)
	return out
}

// ownKeyFile gives host idx its own copy of the world's gossip key (keyring
// rewrites each host's file), passed as a later --gossip-key-file that wins.
func (w *world) ownKeyFile(idx int, content string) (string, []string) {
	w.t.Helper()
	p := filepath.Join(w.dir, fmt.Sprintf("h%d.key", idx))
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		w.t.Fatal(err)
	}
	return p, []string{"--gossip-key-file", p}
}

// keyedHosts starts hosts h1..hN, each with its own copy of the world's gossip
// key file (keyring rewrites each host's file); opts gives host i its options
// from the flags that name that file.
func (w *world) keyedHosts(n int, opts func(i int, extra []string) hostOpts) (files []string, hosts []*host) {
	w.t.Helper()
	key, _ := os.ReadFile(w.key)
	for i := 1; i <= n; i++ {
		f, extra := w.ownKeyFile(i, string(key))
		files = append(files, f)
		hosts = append(hosts, w.addHost(i, opts(i, extra)))
	}
	return files, hosts
}

// TestDoctor: green on a healthy cluster (warnings allowed: the upstream resolver
// is deliberately dead), then each broken thing shows up as the failing check that
// names it: a key file readable by others, a host whose WireGuard port is blocked,
// a stopped host, and on a gateway an input firewall that drops developers' DNS.
func TestDoctor(t *testing.T) {
	requireEnv(t)
	w := newWorld(t, "dr")
	key, _ := os.ReadFile(w.key)
	k2, x2 := w.ownKeyFile(2, string(key))
	h1 := w.addHost(1, hostOpts{region: "ord", gateway: true, publicEndpoint: "198.18.0.1"})
	h2 := w.addHost(2, hostOpts{region: "ord", extra: x2})
	h3 := w.addHost(3, hostOpts{region: "ord"})
	hosts := []*host{h1, h2, h3}
	w.waitMembers(hosts, "h1", "h2", "h3")

	for _, h := range hosts {
		if err := e2eproc.Eventually(30*time.Second, 500*time.Millisecond, func() error {
			cs, err := w.doctor(h)
			if err != nil {
				return err
			}
			if f := failures(cs); len(f) > 0 {
				return fmt.Errorf("%s: %v", h.name, f)
			}
			for _, want := range []string{"gossip key file", "data dir", "wireguard interface", "nftables", "clock skew", "mtu"} {
				if cs[want].Status != "pass" {
					return fmt.Errorf("%s: %s is %+v", h.name, want, cs[want])
				}
			}
			for _, other := range hosts {
				if other != h && cs["handshake "+other.name].Status != "pass" {
					return fmt.Errorf("%s: handshake with %s: %+v", h.name, other.name, cs["handshake "+other.name])
				}
			}
			return nil
		}); err != nil {
			t.Fatalf("healthy cluster: %v", err)
		}
	}
	out, err := w.try(h1, "doctor")
	if err != nil || !strings.Contains(out, "0 failed") {
		t.Fatalf("doctor on a healthy host: %v\n%s", err, out)
	}

	if cs, _ := w.doctor(h2); !strings.Contains(cs["dns from peers"].Detail, "not a gateway") {
		t.Errorf("dns from peers on a host that is no gateway: %+v", cs["dns from peers"])
	}
	doctorPeerDNS(t, w, h1, h2)

	// A key file others can read.
	os.Chmod(k2, 0o644)
	cs, _ := w.doctor(h2)
	if c := cs["gossip key file"]; c.Status != "fail" || !strings.Contains(c.Next, "chmod 600 "+k2) {
		t.Errorf("key mode 0644: %+v", c)
	}
	if f := failures(cs); len(f) != 1 {
		t.Errorf("key mode 0644: want exactly that failure, got %v", f)
	}
	if _, err := w.try(h2, "doctor"); err == nil {
		t.Error("doctor exits 0 with a failing check")
	}
	os.Chmod(k2, 0o600)

	// A host whose WireGuard port is blocked from the start: gossip works, the
	// tunnel never comes up, and every side says which port to open.
	h4 := w.addHost(4, hostOpts{region: "ord", before: func(ns string) {
		nsMust(t, ns, "nft", "add table inet dwblock")
		nsMust(t, ns, "nft", "add chain inet dwblock in { type filter hook input priority -10 ; }")
		nsMust(t, ns, "nft", "add rule inet dwblock in udp dport 51820 drop")
	}})
	w.waitMembers([]*host{h1, h4}, "h1", "h2", "h3", "h4")
	if err := e2eproc.Eventually(20*time.Second, 500*time.Millisecond, func() error {
		cs, err := w.doctor(h1)
		if err != nil {
			return err
		}
		c := cs["handshake h4"]
		if c.Status != "fail" || !strings.Contains(c.Next, "51820/udp") || !strings.Contains(c.Detail, "198.18.0.4:51820") {
			return fmt.Errorf("handshake h4: %+v", c)
		}
		if f := failures(cs); len(f) != 1 {
			return fmt.Errorf("want only the h4 handshake to fail: %v", f)
		}
		return nil
	}); err != nil {
		t.Errorf("blocked WireGuard port: %v", err)
	}
	h4.agent.stop(3 * time.Second) // leaves; out of the way of the next check

	// A stopped host (killed: no graceful leave) is named with the next step.
	h3.agent.kill()
	if err := e2eproc.Eventually(30*time.Second, 500*time.Millisecond, func() error {
		cs, err := w.doctor(h1)
		if err != nil {
			return err
		}
		c := cs["member h3"]
		if c.Status != "fail" || !strings.Contains(c.Next, "systemctl status dogwood") || !strings.Contains(c.Next, "7946") {
			return fmt.Errorf("member h3: %+v", c)
		}
		if cs["member h4"].Status != "warn" || !strings.Contains(cs["member h4"].Next, "members remove h4") {
			return fmt.Errorf("member h4 (left): %+v", cs["member h4"])
		}
		if _, ok := cs["handshake h3"]; ok {
			return fmt.Errorf("a failed host's handshake is still checked: %+v", cs["handshake h3"])
		}
		return nil
	}); err != nil {
		t.Errorf("stopped host: %v", err)
	}
}

// doctorPeerDNS: on gateway gw, the README's default-deny firewall with DNS let
// in from everywhere but the WireGuard interface (machines resolve, developers'
// peers do not) makes doctor fail "dns from peers" with the rule to add; the
// README's rule makes it pass; doctor's test peer is visible while it runs and
// gone afterwards, also when the CLI is killed halfway.
func doctorPeerDNS(t *testing.T, w *world, gw, other *host) {
	t.Helper()
	const name = "dns from peers"
	cs, _ := w.doctor(gw)
	if c := cs[name]; c.Status != "pass" || !strings.Contains(c.Detail, "no org has a network") {
		t.Errorf("%s without any org: %+v", name, c)
	}
	w.cli(gw, "orgs", "create", "drorg")

	fw := operatorBlocks(t)["firewall"]
	var readmeRule string
	for _, l := range strings.Split(fw, "\n") {
		if strings.Contains(l, "th dport 53 accept") {
			readmeRule = strings.TrimSpace(strings.SplitN(l, "#", 2)[0])
		}
	}
	if readmeRule == "" {
		t.Fatalf("the README's firewall block has no DNS rule:\n%s", fw)
	}
	// Machines (veths) still get DNS: only what arrives on the WireGuard
	// interface is dropped, as a firewall written for machines alone would.
	noPeers := strings.Replace(fw, readmeRule, fmt.Sprintf("iifname != %q %s", gw.iface, readmeRule), 1)
	w.runBlockIn(gw.ns, "firewall without DNS from peers", noPeers)
	defer e2eproc.NSRun(10*time.Second, gw.ns, "nft", "delete", "table", "inet", "host_firewall")

	peersLeft := func(h *host) []string {
		var ps []struct {
			Org  string `json:"org"`
			Name string `json:"name"`
		}
		w.cliJSON(h, &ps, "wireguard", "list")
		var out []string
		for _, p := range ps {
			out = append(out, p.Org+"/"+p.Name)
		}
		return out
	}
	start := time.Now()
	cs, err := w.doctor(gw)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	c := cs[name]
	if c.Status != "fail" || !strings.Contains(c.Next, "th dport 53 accept") || !strings.Contains(c.Next, "ip6tables") ||
		!strings.Contains(c.Detail, "on "+gw.iface) || !strings.Contains(c.Detail, "::3]:53 gets no answer") {
		t.Errorf("%s with peers' DNS dropped: %+v", name, c)
	}
	if f := failures(cs); len(f) != 1 {
		t.Errorf("peers' DNS dropped: want only %q to fail, got %v", name, f)
	}
	t.Logf("doctor with peers' DNS dropped took %v: %s", took, c.Detail)
	if took > 10*time.Second {
		t.Errorf("doctor took %v with peers' DNS dropped; the check is bounded by 5 s", took)
	}
	noneLeft := func() error {
		for _, h := range []*host{gw, other} {
			if left := peersLeft(h); len(left) != 0 {
				return fmt.Errorf("on %s: %v", h.name, left)
			}
		}
		return nil
	}
	if err := e2eproc.Eventually(5*time.Second, 200*time.Millisecond, noneLeft); err != nil {
		t.Errorf("doctor's test peer remains after a failing check: %v", err)
	}

	// The CLI killed while the check waits for answers: the agent still
	// removes its peer.
	p := w.track(startProc(t, filepath.Join(w.dir, "doctor-killed.log"), "doctor", []string{"DOGWOOD_AGENT=" + gw.sock}, gw.binary(), "doctor"))
	if err := e2eproc.Eventually(10*time.Second, 50*time.Millisecond, func() error {
		for _, pn := range peersLeft(gw) {
			if strings.HasPrefix(pn, "drorg/doctor-") {
				return nil
			}
		}
		return errors.New("no doctor test peer in `wireguard list`")
	}); err != nil {
		t.Errorf("while doctor runs: %v", err)
	}
	p.kill()
	if err := e2eproc.Eventually(10*time.Second, 200*time.Millisecond, noneLeft); err != nil {
		t.Errorf("doctor's test peer remains after the CLI was killed: %v", err)
	}

	// The README's rule, as an operator adds it to the running firewall.
	nsMust(t, gw.ns, "nft", "add rule inet host_firewall input "+readmeRule)
	start = time.Now()
	cs, err = w.doctor(gw)
	took = time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if c := cs[name]; c.Status != "pass" || !strings.Contains(c.Detail, "UDP") || !strings.Contains(c.Detail, "TCP") {
		t.Errorf("%s after adding the README's rule: %+v", name, c)
	}
	if f := failures(cs); len(f) != 0 {
		t.Errorf("after adding the README's rule: %v", f)
	}
	t.Logf("doctor with the README's firewall took %v: %s", took, cs[name].Detail)
	if err := e2eproc.Eventually(5*time.Second, 200*time.Millisecond, noneLeft); err != nil {
		t.Errorf("doctor's test peer remains after a passing check: %v", err)
	}
}

// TestKeyringRotation rotates the gossip key on a running cluster while catalog
// writes flow, checks every host's key file, that the key in use cannot be
// removed, that a restarted host keeps the new key, and that a host holding only
// the old key cannot join.
func TestKeyringRotation(t *testing.T) {
	requireEnv(t)
	w := newWorld(t, "kr")
	old, _ := os.ReadFile(w.key)
	oldKey := strings.TrimSpace(string(old))
	files, hosts := w.keyedHosts(3, func(_ int, extra []string) hostOpts {
		return hostOpts{region: "ord", extra: append(extra, "--log-level", "info")}
	})
	h1, h2, h3 := hosts[0], hosts[1], hosts[2]
	w.waitMembers(hosts, "h1", "h2", "h3")
	newKey := strings.TrimSpace(w.cli(nil, "keygen"))

	// Traffic: orgs created on h2 and h3 the whole time.
	var stop atomic.Bool
	var created sync.Map
	var wg sync.WaitGroup
	for _, h := range []*host{h2, h3} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load() && i < 500; i++ {
				slug := fmt.Sprintf("%s-org%d", h.name, i)
				if _, err := w.try(h, "orgs", "create", slug); err == nil {
					created.Store(slug, true)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	type hostResult struct {
		Host    string   `json:"host"`
		OK      bool     `json:"ok"`
		Error   string   `json:"error"`
		Primary string   `json:"primary"`
		Keys    []string `json:"keys"`
	}
	step := func(args ...string) []hostResult {
		t.Helper()
		var rs []hostResult
		w.cliJSON(h1, &rs, append([]string{"keyring"}, args...)...)
		if len(rs) != 3 {
			t.Fatalf("keyring %v: %d hosts answered: %+v", args, len(rs), rs)
		}
		for _, r := range rs {
			if !r.OK {
				t.Fatalf("keyring %v on %s: %s", args, r.Host, r.Error)
			}
		}
		return rs
	}
	time.Sleep(500 * time.Millisecond)
	for _, r := range step("install", newKey) {
		if r.Primary != oldKey || len(r.Keys) != 2 {
			t.Fatalf("after install on %s: %+v", r.Host, r)
		}
	}
	time.Sleep(500 * time.Millisecond)
	for _, r := range step("use", newKey) {
		if r.Primary != newKey {
			t.Fatalf("after use on %s: %+v", r.Host, r)
		}
	}
	if out, err := w.try(h1, "keyring", "remove", newKey); err == nil || !strings.Contains(out, "in use") {
		t.Fatalf("removing the key in use: %v\n%s", err, out)
	}
	time.Sleep(500 * time.Millisecond)
	for _, r := range step("remove", oldKey) {
		if len(r.Keys) != 1 || r.Keys[0] != newKey {
			t.Fatalf("after remove on %s: %+v", r.Host, r)
		}
	}
	time.Sleep(time.Second)
	stop.Store(true)
	wg.Wait()

	// Nobody dropped out, and every write made during the rotation reached h1.
	w.waitMembers(hosts, "h1", "h2", "h3")
	var want []string
	created.Range(func(k, _ any) bool { want = append(want, k.(string)); return true })
	if len(want) < 20 {
		t.Fatalf("only %d orgs created during the rotation", len(want))
	}
	if err := e2eproc.Eventually(10*time.Second, 200*time.Millisecond, func() error {
		var orgs []struct{ Slug string }
		out, err := w.try(h1, "orgs", "list", "--json")
		if err != nil {
			return err
		}
		json.Unmarshal([]byte(out), &orgs)
		have := map[string]bool{}
		for _, o := range orgs {
			have[o.Slug] = true
		}
		for _, s := range want {
			if !have[s] {
				return fmt.Errorf("h1 lacks %s (of %d)", s, len(want))
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, f := range files {
		b, _ := os.ReadFile(f)
		st, _ := os.Stat(f)
		if strings.Contains(string(b), oldKey) || !strings.Contains(string(b), newKey) || st.Mode().Perm() != 0o600 {
			t.Errorf("h%d key file (mode %v):\n%s", i+1, st.Mode().Perm(), b)
		}
	}

	// A restart keeps the result: h2 comes back from its rewritten file.
	h2.agent.stop(5 * time.Second)
	h2.start(h2.args)
	w.waitMembers(hosts, "h1", "h2", "h3")

	// A host holding only the old key cannot join.
	_, x4 := w.ownKeyFile(4, string(old))
	h4 := w.addHost(4, hostOpts{region: "ord", extra: x4})
	// It does try: h1 refuses what it sends, and says so at WARN, not ERROR.
	refused := `level=WARN msg="failed to receive: no installed keys could decrypt the message" component=gossip from=198.18.0.4:`
	if err := e2eproc.Eventually(15*time.Second, 200*time.Millisecond, func() error {
		if !strings.Contains(h1.agent.output(), refused) {
			return fmt.Errorf("h1 logged no refused message from h4")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	time.Sleep(2 * time.Second) // h4 keeps retrying its join meanwhile
	for _, h := range []*host{h1, h4} {
		var ms []member
		w.cliJSON(h, &ms, "members")
		for _, m := range ms {
			if (h == h1 && m.Name == "h4") || (h == h4 && m.Name != "h4" && m.Status == "alive") {
				t.Errorf("%s sees %s %s: a host with only the old key joined", h.name, m.Name, m.Status)
			}
		}
	}
}
