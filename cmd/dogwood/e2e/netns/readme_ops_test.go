package netns

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dogwood/dogwood/cmd/dogwood/e2e/e2eproc"
)

// operatorBlocks returns the README's shell blocks marked
// "<!-- runnable: operator NAME -->", by NAME: the operator's steps that
// need real hosts (firewall, key rotation, backup and restore).
func operatorBlocks(t *testing.T) map[string]string {
	t.Helper()
	md, err := os.ReadFile("../../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)<!-- runnable: operator ([a-z-]+) -->\\s*\n```sh\n(.*?)```")
	out := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(string(md), -1) {
		out[m[1]] = m[2]
	}
	return out
}

// runBlockIn runs a README block with bash inside namespace ns (before its
// agent starts).
func (w *world) runBlockIn(ns, name, block string) {
	w.t.Helper()
	a := e2eproc.InNS(ns, "bash", "-c", "set -euo pipefail\n"+block)
	if out, err := e2eproc.Run(30*time.Second, nil, a[0], a[1:]...); err != nil {
		w.t.Fatalf("README block %q in %s: %v\n%s", name, ns, err, out)
	}
}

// runBlock runs a README block with bash inside h's namespace, as an operator
// on that host would: dogwood on PATH, talking to h's agent.
func (w *world) runBlock(t *testing.T, h *host, name, block string, env ...string) string {
	t.Helper()
	dir := filepath.Join(w.dir, "op-"+h.name)
	os.MkdirAll(dir, 0o700)
	script := "set -euo pipefail\ncd " + dir + "\n" + block
	env = append([]string{"DOGWOOD_AGENT=" + h.sock, "PATH=" + filepath.Dir(w.bin) + ":" + os.Getenv("PATH")}, env...)
	a := e2eproc.InNS(h.ns, "bash", "-c", script)
	out, err := e2eproc.Run(2*time.Minute, env, a[0], a[1:]...)
	if err != nil {
		t.Fatalf("README block %q on %s: %v\n%s", name, h.name, err, out)
	}
	t.Logf("README block %q on %s:\n%s", name, h.name, out)
	return out
}

// TestReadmeOperatorSteps runs the README's operator steps as written on a
// cluster in namespaces.
func TestReadmeOperatorSteps(t *testing.T) {
	requireEnv(t)
	blocks := operatorBlocks(t)
	for _, want := range []string{"firewall", "keyring", "backup", "restore", "upgrade"} {
		if blocks[want] == "" {
			t.Fatalf("README has no block marked <!-- runnable: operator %s -->", want)
		}
	}
	step := stepLogger(t)
	w := newWorld(t, "ro")
	old, _ := os.ReadFile(w.key)
	oldKey := strings.TrimSpace(string(old))
	files, hosts := w.keyedHosts(3, func(i int, extra []string) hostOpts {
		// Every host has the README's default-deny input firewall from the start.
		o := hostOpts{region: "ord", extra: extra, before: func(ns string) { w.runBlockIn(ns, "firewall", blocks["firewall"]) }}
		if i == 1 {
			o.gateway, o.publicEndpoint = true, "198.18.0.1" // the port defaults to --wg-port
		}
		return o
	})
	// The README's `systemctl enable --now dogwood && dogwood doctor`: doctor
	// right after the agent answers finds nothing wrong with a healthy host.
	if out, err := w.try(hosts[2], "doctor"); err != nil {
		t.Errorf("doctor right after the agent started: %v\n%s", err, out)
	} else {
		t.Logf("doctor right after start:\n%s", out)
	}
	w.waitMembers(hosts, "h1", "h2", "h3")
	step("cluster up")

	t.Run("firewall: machines resolve and reach each other", func(t *testing.T) {
		h2, h3 := hosts[1], hosts[2]
		w.cli(h2, "orgs", "create", "fw")
		w.cli(h2, "apps", "create", "web", "--org", "fw")
		m2 := w.createMachine(h2, "web", "fw2")
		m3 := w.createMachine(h3, "web", "fw3")
		want := []string{m2.addr(), m3.addr()}
		sortStrings(want)
		if err := e2eproc.Eventually(15*time.Second, 200*time.Millisecond, func() error {
			got, status, err := digAAAA(m2.ns, "fdaa::3", "web.internal")
			if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
				return fmt.Errorf("dig @fdaa::3 web.internal from a machine on h2: %v %s %v", err, status, got)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
		if out, err := e2eproc.NSRun(10*time.Second, m2.ns, "dig", "+tcp", "+time=2", "+tries=1", "+short", "@fdaa::3", "web.internal", "AAAA"); err != nil || len(strings.Fields(out)) != 2 {
			t.Errorf("dig +tcp @fdaa::3 from a machine: %v %q", err, out)
		}
		if err := e2eproc.Eventually(15*time.Second, 200*time.Millisecond, func() error {
			_, err := httpGet(m2.ns, m3.addr(), 2*time.Second)
			return err
		}); err != nil {
			t.Errorf("machine on h2 to machine on h3 through the firewalls: %v", err)
		}
		cs, err := w.doctor(h2)
		if err != nil {
			t.Fatal(err)
		}
		if c := cs["dns from machines"]; c.Status != "pass" {
			t.Errorf("doctor on h2: dns from machines %+v", c)
		}
		// The firewall the README used to give (no port 53): .internal is dead
		// for machines, and doctor says so (its loopback check alone passed).
		nsMust(t, h2.ns, "nft", "add table inet old_readme")
		nsMust(t, h2.ns, "nft", "add chain inet old_readme in { type filter hook input priority -5 ; }")
		nsMust(t, h2.ns, "nft", "add rule inet old_readme in ip6 daddr fdaa::/16 meta l4proto { tcp, udp } th dport 53 drop")
		if got, _, _ := digAAAA(m2.ns, "fdaa::3", "web.internal"); len(got) != 0 {
			t.Errorf("the negative control does not block DNS: %v", got)
		}
		cs, _ = w.doctor(h2)
		if c := cs["dns from machines"]; c.Status != "fail" || !strings.Contains(c.Next, "port 53") {
			t.Errorf("doctor with port 53 blocked: dns from machines %+v", c)
		}
		if c := cs["dns [fdaa::3]:53"]; c.Status != "pass" {
			t.Logf("loopback check with port 53 blocked for machines: %+v", c)
		}
		nsMust(t, h2.ns, "nft", "delete table inet old_readme")
	})
	step("firewall")

	t.Run("key rotation", func(t *testing.T) {
		out := w.runBlock(t, hosts[1], "keyring", blocks["keyring"])
		if !strings.Contains(out, "1/3") && !strings.Contains(out, "3/3") {
			t.Errorf("keyring list printed no counts:\n%s", out)
		}
		var newKey string
		for i, f := range files {
			b, _ := os.ReadFile(f)
			var lines []string
			for _, l := range strings.Split(string(b), "\n") {
				if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 || lines[0] == oldKey {
				t.Errorf("h%d key file after the README's rotation: %q (old %s)", i+1, b, oldKey)
				continue
			}
			if newKey == "" {
				newKey = lines[0]
			} else if lines[0] != newKey {
				t.Errorf("h%d holds %s, h1 %s", i+1, lines[0], newKey)
			}
		}
		w.waitMembers(hosts, "h1", "h2", "h3")
		if t.Failed() {
			return
		}
		out = w.cli(hosts[0], "keyring", "list")
		if want := fmt.Sprintf("%s  3/3        3/3", newKey); !strings.Contains(out, want) {
			t.Errorf("keyring list after rotation:\n%s\nwant %q", out, want)
		}
	})
	step("key rotation")

	t.Run("backup and restore", func(t *testing.T) {
		h1 := hosts[0]
		w.cli(h1, "orgs", "create", "acme")
		var code string // stdout is the code's line; the harness's output has stderr too
		for _, l := range strings.Fields(w.cli(h1, "wireguard", "invite", "acme", "ord", "laptop", "--dns", "none")) {
			if strings.HasPrefix(l, "dwinv1_") {
				code = l
			}
		}
		var before struct {
			HostID    uint32 `json:"host_id"`
			PublicKey string `json:"public_key"`
		}
		w.cliJSON(h1, &before, "status")
		out := w.runBlock(t, h1, "backup", blocks["backup"])
		for _, f := range []string{"dogwood.db", "invite-tls.pem", "invites.json"} {
			if !strings.Contains(out, f) {
				t.Errorf("the backup lacks %s: %s", f, out)
			}
		}
		// The disk is lost: the agent stops and its data dir is gone.
		h1.agent.stop(5 * time.Second)
		if err := os.RemoveAll(h1.dataDir); err != nil {
			t.Fatal(err)
		}
		w.runService(t, h1, "restore", blocks["restore"], "DOGWOOD_DATA_DIR="+h1.dataDir)
		var after struct {
			HostID    uint32 `json:"host_id"`
			PublicKey string `json:"public_key"`
		}
		w.cliJSON(h1, &after, "status")
		if after != before {
			t.Errorf("restored host is %+v, was %+v", after, before)
		}
		w.waitMembers(hosts, "h1", "h2", "h3")
		// The invitation issued before the backup still redeems (same certificate,
		// same book), from another host's namespace.
		conf := filepath.Join(w.dir, "laptop.conf")
		out, err := e2eproc.NSRun(60*time.Second, hosts[1].ns, w.bin, "wireguard", "join", code, conf)
		if err != nil {
			t.Fatalf("joining with a code issued before the restore: %v\n%s", err, out)
		}
		// The developer's DNS (fdaa:<net>::3 through the gateway's WireGuard
		// interface) passes the README's firewall on the gateway.
		w.cli(h1, "apps", "create", "api", "--org", "acme")
		if err := e2eproc.Eventually(15*time.Second, 300*time.Millisecond, func() error {
			out, err := e2eproc.NSRun(20*time.Second, hosts[1].ns, w.bin, "dig", "--config", conf, "--short", "_apps.internal", "TXT")
			if err != nil || !strings.Contains(out, "api") {
				return fmt.Errorf("dig --config through the firewalled gateway: %v %q", err, out)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
		var ps []map[string]any
		w.cliJSON(hosts[2], &ps, "wireguard", "list", "acme")
		if len(ps) != 1 || ps[0]["name"] != "laptop" || ps[0]["state"] != "active" {
			t.Errorf("after join: %v", ps)
		}
	})
	step("backup and restore")

	t.Run("rolling upgrade", func(t *testing.T) {
		for _, h := range hosts {
			out := w.runService(t, h, "upgrade", blocks["upgrade"])
			if strings.Contains(out, "FAIL ") {
				t.Errorf("after the restart of %s:\n%s", h.name, out)
			}
			w.waitMembers(hosts, "h1", "h2", "h3")
		}
	})
	step("rolling upgrade")
}

// runService runs a README block that stops and starts the agent with
// systemctl: a stand-in systemctl on its PATH asks this goroutine, which
// stops and starts h's agent as the harness does (a stopped service stays
// stopped on stop, as with systemd).
func (w *world) runService(t *testing.T, h *host, name, block string, env ...string) string {
	t.Helper()
	os.MkdirAll(filepath.Join(w.dir, "op-"+h.name), 0o700)
	dir, err := os.MkdirTemp(w.dir, "systemctl-"+h.name+"-")
	if err != nil {
		t.Fatal(err)
	}
	req, rep := filepath.Join(dir, "req"), filepath.Join(dir, "rep")
	for _, f := range []string{req, rep} {
		if err := syscall.Mkfifo(f, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	shim := "#!/bin/sh\n# test stand-in for systemctl: asks the test to stop or start the agent\n" +
		"case \"$1\" in stop|start|restart) ;; *) echo \"systemctl stand-in: $*\" >&2; exit 1;; esac\n" +
		"echo \"$1\" > " + req + "\nread -r reply < " + rep + "\n[ \"$reply\" = ok ] || { echo \"systemctl $1: $reply\" >&2; exit 1; }\n"
	if err := os.WriteFile(filepath.Join(dir, "systemctl"), []byte(shim), 0o755); err != nil {
		t.Fatal(err)
	}
	reqs := make(chan string)
	rf, err := os.OpenFile(req, os.O_RDWR, 0) // O_RDWR: never blocks, never sees EOF
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	go func() {
		sc := bufio.NewScanner(rf)
		for sc.Scan() {
			reqs <- sc.Text()
		}
		close(reqs)
	}()
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		script := "set -euo pipefail\ncd " + filepath.Join(w.dir, "op-"+h.name) + "\n" + block
		e := append([]string{"DOGWOOD_AGENT=" + h.sock, "PATH=" + dir + ":" + filepath.Dir(w.bin) + ":" + os.Getenv("PATH")}, env...)
		a := e2eproc.InNS(h.ns, "bash", "-c", script)
		out, err := e2eproc.Run(2*time.Minute, e, a[0], a[1:]...)
		done <- result{out, err}
	}()
	for {
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatalf("README block %q on %s: %v\n%s\nagent:\n%s", name, h.name, r.err, r.out, h.agent.output())
			}
			t.Logf("README block %q on %s:\n%s", name, h.name, r.out)
			return r.out
		case op := <-reqs:
			running := !h.agent.exited()
			if (op == "stop" || op == "restart") && running {
				h.agent.stop(5 * time.Second)
			}
			if op == "start" && !running || op == "restart" {
				h.start(h.args)
			}
			if err := os.WriteFile(rep, []byte("ok\n"), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
}
