package netns

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dogwood/dogwood/cmd/dogwood/e2e/e2eproc"
)

// digShort runs `dig +short NAME TYPE` in ns against server (empty: the namespace's
// resolv.conf) and returns the sorted lines and the status.
func digShort(ns, server, name, qtype string) ([]string, string, error) {
	args := []string{"dig", "+time=1", "+tries=2", "+noall", "+answer", "+comments", name, qtype}
	if server != "" {
		args = append([]string{"dig", "@" + server}, args[1:]...)
	}
	out, err := e2eproc.NSRun(10*time.Second, ns, args...)
	if err != nil {
		return nil, out, fmt.Errorf("dig %s %s from %s: %v\n%s", name, qtype, ns, err, out)
	}
	status := ""
	var vals []string
	for _, l := range strings.Split(out, "\n") {
		if i := strings.Index(l, "status: "); i >= 0 {
			status = strings.TrimSuffix(strings.Fields(l[i+8:])[0], ",")
		}
		f := strings.Fields(l)
		if len(f) >= 5 && f[3] == qtype && !strings.HasPrefix(l, ";") {
			vals = append(vals, strings.Join(f[4:], " "))
		}
	}
	sortStrings(vals)
	return vals, status, nil
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// TestDNSRecords is issue "Custom .internal records and service aliases" end to end:
// three hosts, a blue and a green app, `api.internal` an ALIAS of blue and then
// switched to green with one `dns add`; real dig from a machine on every host and from
// a laptop through its WireGuard tunnel answers the new addresses; another org never
// sees the records; bad input is exit 2 and creates nothing.
func TestDNSRecords(t *testing.T) {
	requireEnv(t, "wg-quick", "wireguard-go")
	step := stepLogger(t)
	w := newWorld(t, "r")
	h1 := w.addHost(1, hostOpts{region: "ord", gateway: true, publicEndpoint: "198.19.0.1:51820"})
	h2 := w.addHost(2, hostOpts{region: "ams"})
	h3 := w.addHost(3, hostOpts{region: "fra"})
	w.waitMembers([]*host{h1, h2, h3}, "h1", "h2", "h3")

	// A laptop on the gateway's public LAN.
	lap := w.gatewayLAN(h1).laptop("lap", 1)

	w.cli(h1, "orgs", "create", "acme")
	w.cli(h1, "orgs", "create", "globex")
	w.cli(h1, "apps", "create", "api-blue", "--org", "acme")
	w.cli(h1, "apps", "create", "api-green", "--org", "acme")
	w.cli(h1, "apps", "create", "gweb", "--org", "globex")
	blue := []*machine{w.createMachine(h1, "api-blue", "b1"), w.createMachine(h2, "api-blue", "b2")}
	green := []*machine{w.createMachine(h2, "api-green", "g2"), w.createMachine(h3, "api-green", "g3")}
	// One observer machine per host: dig from each goes to that host's fdaa::3.
	obs := []*machine{blue[0], green[0], green[1]}
	other := w.createMachine(h3, "gweb", "x3")
	addrs := func(ms []*machine) string {
		var a []string
		for _, m := range ms {
			a = append(a, m.addr())
		}
		sortStrings(a)
		return strings.Join(a, ",")
	}
	acmeDNS := w.networkDNS(h1, "acme")
	step("3 hosts, 5 machines")

	cfg := filepath.Join(w.dir, "laptop.conf")
	w.cli(h2, "wireguard", "create", "acme", "ord", "laptop", cfg)
	w.wgQuickUp(lap, w.name("lap"), cfg, "")
	step("laptop tunnel up")

	// everywhere waits until dig of name from a machine on every host and from the
	// laptop (through the tunnel, at fdaa:<net>::3) answers want.
	everywhere := func(name, want string) time.Duration {
		t.Helper()
		start := time.Now()
		type probe struct{ ns, server, who string }
		var probes []probe
		for _, m := range obs {
			probes = append(probes, probe{m.ns, "", "machine " + m.tag})
		}
		probes = append(probes, probe{lap, acmeDNS.String(), "laptop"})
		errs := parallel(len(probes), func(i int) error {
			p := probes[i]
			return e2eproc.Eventually(15*time.Second, 100*time.Millisecond, func() error {
				got, status, err := digAAAA(p.ns, p.server, name)
				if err != nil {
					return err
				}
				if status != "NOERROR" || strings.Join(got, ",") != want {
					return fmt.Errorf("%s: dig %s AAAA: %s %v, want %s", p.who, name, status, got, want)
				}
				return nil
			})
		})
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		return time.Since(start)
	}

	w.cli(h3, "dns", "add", "acme", "api", "ALIAS", "api-blue")
	d := everywhere("api.internal", addrs(blue))
	step(fmt.Sprintf("api.internal → api-blue on every host and the laptop (%v after dns add on h3)", d.Round(time.Millisecond)))
	body, err := httpGet(green[1].ns, blue[0].addr(), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// A client that knows only the name: curl resolves api.internal through fdaa::3.
	if out, err := e2eproc.NSRun(10*time.Second, green[1].ns, "curl", "-sS", "--max-time", "3", "http://api.internal:8080/"); err != nil || !strings.HasPrefix(strings.TrimSpace(out), "api-blue@") {
		t.Errorf("curl http://api.internal:8080/ from a machine on h3: %q %v (a blue machine says %q)", out, err, body)
	}

	// The blue/green switch: one command.
	w.cli(h1, "dns", "add", "acme", "api", "ALIAS", "api-green")
	d = everywhere("api.internal", addrs(green))
	step(fmt.Sprintf("switched: api.internal → api-green on every host and the laptop (%v after dns add on h1)", d.Round(time.Millisecond)))
	if err := e2eproc.Eventually(10*time.Second, 100*time.Millisecond, func() error {
		out, err := e2eproc.NSRun(10*time.Second, blue[0].ns, "curl", "-sS", "--max-time", "3", "http://api.internal:8080/")
		if err != nil || !strings.HasPrefix(strings.TrimSpace(out), "api-green@") {
			return fmt.Errorf("curl http://api.internal:8080/ from a machine on h1: %q %v", out, err)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}

	t.Run("other record types, listing, isolation", func(t *testing.T) {
		w.cli(h2, "dns", "add", "acme", "db", "AAAA", "fdaa:0:18::5", "--ttl", "60")
		w.cli(h2, "dns", "add", "acme", "ext", "CNAME", "db.example.com")
		w.cli(h2, "dns", "add", "acme", "*.dev", "TXT", "env=dev")
		w.cli(h2, "dns", "add", "acme", "_pg._tcp.db", "SRV", "10 5 5432 db")
		checks := []struct{ name, qtype, want string }{
			{"db.internal", "AAAA", "fdaa:0:18::5"},
			{"ext.internal", "CNAME", "db.example.com."},
			{"feature-x.dev.internal", "TXT", `"env=dev"`},
			{"_pg._tcp.db.internal", "SRV", "10 5 5432 db.internal."},
			{"_records.internal", "TXT", `"*.dev.internal,_pg._tcp.db.internal,api.internal,db.internal,ext.internal"`},
		}
		for _, c := range checks {
			for _, p := range []struct{ ns, server string }{{green[1].ns, ""}, {lap, acmeDNS.String()}} {
				if err := e2eproc.Eventually(10*time.Second, 100*time.Millisecond, func() error {
					got, status, err := digShort(p.ns, p.server, c.name, c.qtype)
					if err != nil {
						return err
					}
					if status != "NOERROR" || strings.Join(got, "|") != c.want {
						return fmt.Errorf("dig %s %s from %s: %s %q, want %q", c.name, c.qtype, p.ns, status, got, c.want)
					}
					return nil
				}); err != nil {
					t.Error(err)
				}
			}
		}
		// TTL is the record's own.
		out := nsMust(t, green[1].ns, "dig", "+noall", "+answer", "db.internal", "AAAA")
		if f := strings.Fields(out); len(f) < 2 || f[1] != "60" {
			t.Errorf("db.internal TTL: %q, want 60", out)
		}
		// Another org's machine never sees acme's records.
		for _, name := range []string{"api.internal", "db.internal", "x.dev.internal"} {
			if _, status, err := digAAAA(other.ns, "", name); err != nil || status != "NXDOMAIN" {
				t.Errorf("globex machine: dig %s: %s %v, want NXDOMAIN", name, status, err)
			}
		}
	})

	t.Run("bad input is exit 2 and creates nothing", func(t *testing.T) {
		before := w.cli(h1, "dns", "list", "--json")
		for _, args := range [][]string{
			{"dns", "add", "acme", "api-blue", "AAAA", "fdaa::1"}, // an app's name
			{"dns", "add", "acme", "vms.api-blue", "TXT", "x"},    // a generated form
			{"dns", "add", "acme", "_apps", "TXT", "x"},
			{"dns", "add", "acme", "x", "AAAA", "10.0.0.1"},
			{"dns", "add", "acme", "x", "ALIAS", "no-such-app"},
			{"dns", "add", "acme", "db", "CNAME", "api"}, // db has an AAAA
		} {
			out, err := w.try(h1, args...)
			if exitCode(err) != 2 || strings.TrimSpace(out) == "" {
				t.Errorf("dogwood %s: exit %d, output %q; want 2 and the reason", strings.Join(args, " "), exitCode(err), out)
			}
		}
		// An app created later under a record's name is refused too.
		if out, err := w.try(h1, "apps", "create", "db", "--org", "acme"); exitCode(err) != 2 || !strings.Contains(out, "db.internal") {
			t.Errorf("apps create db over the record db.internal: exit %d %q", exitCode(err), out)
		}
		if after := w.cli(h1, "dns", "list", "--json"); after != before {
			t.Errorf("records changed:\n%s\n%s", before, after)
		}
	})

	// Removing the alias: the name is gone everywhere.
	w.cli(h2, "dns", "remove", "acme", "api")
	if err := e2eproc.Eventually(10*time.Second, 100*time.Millisecond, func() error {
		for _, ns := range []string{obs[0].ns, obs[1].ns, obs[2].ns} {
			if _, status, err := digAAAA(ns, "", "api.internal"); err != nil || status != "NXDOMAIN" {
				return fmt.Errorf("after remove, dig api.internal from %s: %s %v", ns, status, err)
			}
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	step("done")
}
