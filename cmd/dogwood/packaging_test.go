//go:build agent

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/dogwood/dogwood/cmd/dogwood/e2e/needs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// The packaging files live in cmd/dogwood/packaging; these tests keep them honest:
// the shipped config parses with the agent's own flags, the alert rules pass
// promtool, the dashboard and rules name only metrics the code exports, and the
// .deb installs in a fresh Debian root where systemd accepts its unit.

func TestPackagedConfigParses(t *testing.T) {
	o, err := parseAgent(t, "--config", "packaging/agent.yaml")
	if err != nil {
		t.Fatalf("packaging/agent.yaml: %v", err)
	}
	if o.GossipKeyFile != "/etc/dogwood/gossip.key" || o.DataDir != "/var/lib/dogwood" || o.APISocket != "/run/dogwood/api.sock" || o.MetricsAddr == "" {
		t.Fatalf("packaged defaults: %+v", o)
	}
	// Every commented-out setting must be a real key too: uncomment them all.
	b, _ := os.ReadFile("packaging/agent.yaml")
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if s, ok := strings.CutPrefix(l, "#"); ok && regexp.MustCompile(`^(  - |[a-z-]+:)`).MatchString(s) {
			l = s
		}
		lines = append(lines, l)
	}
	all := filepath.Join(t.TempDir(), "all.yaml")
	os.WriteFile(all, []byte(strings.Join(lines, "\n")), 0o600)
	if o, err := parseAgent(t, "--config", all); err != nil || len(o.Join) != 2 || o.Advertise == "" {
		t.Fatalf("agent.yaml with every example uncommented: %v %+v", err, o)
	}
}

func TestAlertRulesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		needs.Skip(t, "promtool not installed (apt-get install prometheus, or make deps): alert rules not checked")
	}
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "packaging/monitoring"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func TestMonitoringNamesExportedMetrics(t *testing.T) {
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	b, err := os.ReadFile("packaging/monitoring/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &d); err != nil || len(d.Panels) == 0 {
		t.Fatalf("dashboard JSON: %v (%d panels)", err, len(d.Panels))
	}
	text := string(b)
	rules, _ := os.ReadFile("packaging/monitoring/alerts.yml")
	text += string(rules)
	// The names the Go code registers (literal names, and Namespace+Subsystem+Name).
	var src strings.Builder
	filepath.WalkDir("../..", func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			b, _ := os.ReadFile(p)
			src.Write(b)
		}
		return nil
	})
	code := regexp.MustCompile(`Subsystem: "(\w+)", Name: "(\w+)"`).ReplaceAllString(src.String(), `"dogwood_${1}_${2}"`)
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`dogwood_[a-z0-9_]+`).FindAllString(text, -1) {
		names[regexp.MustCompile(`_(bucket|sum|count)$`).ReplaceAllString(m, "")] = true
	}
	if len(names) < 10 {
		t.Fatalf("only %d metric names found: %v", len(names), names)
	}
	for n := range names {
		if !strings.Contains(code, `"`+n+`"`) {
			t.Errorf("dashboard or alerts use %s, which no code exports", n)
		}
	}
}

// TestDebInstall builds the .deb with the release script, installs it with dpkg
// in a fresh Debian root (debootstrap, cached across runs in
// /var/cache/dogwood-test) and checks the files, the binary and the unit
// (systemd-analyze verify inside that root), then purges it.
func TestDebInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a package and a Debian root")
	}
	if os.Geteuid() != 0 {
		needs.Skip(t, "needs root (chroot, dpkg into a Debian root)")
	}
	for _, tool := range []string{"debootstrap", "dpkg-deb", "chroot"} {
		if _, err := exec.LookPath(tool); err != nil {
			needs.Skip(t, "%s not installed (make deps)", tool)
		}
	}
	base, err := debianRoot(t)
	if err != nil {
		t.Fatal(err)
	}
	dist := t.TempDir()
	cmd := exec.Command("bash", "cmd/dogwood/packaging/dist.sh")
	cmd.Dir = "../.."
	// No ARCHS: the default is this machine's architecture alone (make dist ALL=1 builds all).
	cmd.Env = append(os.Environ(), "DIST="+dist, "VERSION=1.2.3-rc.1", "COMMIT=0123456789abcdef", "DATE=2026-01-02T03:04:05Z")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dist.sh: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dist, "*.deb"))
	tars, _ := filepath.Glob(filepath.Join(dist, "*.tar.gz"))
	if len(debs) != 1 || len(tars) != 1 {
		t.Fatalf("dist: debs %v, archives %v", debs, tars)
	}

	root := filepath.Join(t.TempDir(), "root")
	if out, err := exec.Command("cp", "-a", base, root).CombinedOutput(); err != nil {
		t.Fatalf("copy root: %v %s", err, out)
	}
	deb, _ := os.ReadFile(debs[0])
	os.WriteFile(filepath.Join(root, "tmp/dogwood.deb"), deb, 0o644)
	in := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("chroot", append([]string{root}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("in root: %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	in("dpkg", "-i", "/tmp/dogwood.deb")
	if v := in("dogwood", "version"); !strings.HasPrefix(v, "dogwood 1.2.3-rc.1 (commit 0123456789ab, built 2026-01-02T03:04:05Z") {
		t.Errorf("installed dogwood version: %q", v)
	}
	// The agent's commands run /usr/lib/dogwood/dogwood-agent in dogwood's place.
	if h := in("dogwood", "agent", "--help"); !strings.Contains(h, "--gossip-key-file") {
		t.Errorf("installed dogwood agent --help: %q", h)
	}
	for path, mode := range map[string]os.FileMode{
		"/etc/dogwood": os.ModeDir | 0o750, "/etc/dogwood/agent.yaml": 0o640, "/usr/bin/dogwood": 0o755,
		"/usr/lib/dogwood/dogwood-agent":          0o755,
		"/usr/lib/systemd/system/dogwood.service": 0o644, "/usr/share/bash-completion/completions/dogwood": 0o644,
		"/usr/share/doc/dogwood/copyright": 0o644, "/usr/share/doc/dogwood/monitoring/alerts.yml": 0o644,
		// Where zsh (Debian's fpath) and fish look for completions of packages.
		"/usr/share/zsh/vendor-completions/_dogwood": 0o644, "/usr/share/fish/vendor_completions.d/dogwood.fish": 0o644,
		"/usr/share/doc/dogwood/changelog": 0o644,
	} {
		st, err := os.Stat(filepath.Join(root, path))
		if err != nil {
			t.Errorf("%s: %v", path, err)
		} else if st.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", path, st.Mode(), mode)
		}
	}
	if !strings.Contains(debs[0], "_"+runtime.GOARCH+".deb") {
		t.Errorf("dist built %s, want this machine's architecture %s", debs[0], runtime.GOARCH)
	}
	if g := in("getent", "group", "dogwood"); !strings.HasPrefix(g, "dogwood:") {
		t.Errorf("the .deb made no operator group dogwood: %q", g)
	}
	if c, _ := os.ReadFile(filepath.Join(root, "usr/share/doc/dogwood/copyright")); !strings.HasPrefix(string(c), "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n") {
		t.Errorf("copyright is not DEP-5: %.200s", c)
	}
	// The CNI plugin, where runtimes look, answers a runtime's VERSION query.
	if st, err := os.Lstat(filepath.Join(root, "opt/cni/bin/dogwood")); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("/opt/cni/bin/dogwood: %v %v, want a symlink", err, st)
	}
	for _, plugin := range []string{"/usr/lib/cni/dogwood", "/opt/cni/bin/dogwood"} {
		cmd := exec.Command("chroot", root, plugin)
		cmd.Env = []string{"CNI_COMMAND=VERSION"}
		cmd.Stdin = strings.NewReader(`{"cniVersion":"1.1.0"}`)
		out, err := cmd.Output()
		if err != nil || !strings.Contains(string(out), `"supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]`) {
			t.Errorf("%s VERSION: %v %s", plugin, err, out)
		}
	}
	if st, err := os.Stat(filepath.Join(root, "usr/lib/cni/dogwood")); err != nil || st.Mode() != 0o755 {
		t.Errorf("/usr/lib/cni/dogwood: %v %v", err, st)
	}
	if conff := in("dpkg-query", "-W", "-f=${Conffiles}", "dogwood"); !strings.Contains(conff, "/etc/dogwood/agent.yaml") || !strings.Contains(conff, "/etc/default/dogwood") {
		t.Errorf("conffiles: %q", conff)
	}
	// systemd-analyze verify inside the root: the unit's syntax, ExecStart's binary,
	// and every referenced unit and directive as this Debian's systemd sees them.
	if _, err := os.Stat(filepath.Join(root, "usr/bin/systemd-analyze")); err != nil {
		t.Fatalf("the Debian root has no systemd-analyze: %v", err)
	}
	out, err := exec.Command("chroot", root, "systemd-analyze", "verify", "dogwood.service").CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify dogwood.service: %v\n%s", err, out)
	}
	if sec := in("systemd-analyze", "security", "--offline=true", "--no-pager", "/usr/lib/systemd/system/dogwood.service"); !strings.Contains(sec, "Overall exposure level") {
		t.Logf("systemd-analyze security: %s", sec)
	} else {
		t.Logf("systemd-analyze security: %s", lastLine(sec))
	}

	in("dpkg", "--purge", "dogwood")
	for _, p := range []string{"/usr/bin/dogwood", "/usr/lib/dogwood/dogwood-agent", "/etc/dogwood/agent.yaml", "/usr/lib/systemd/system/dogwood.service", "/usr/lib/cni/dogwood", "/opt/cni/bin/dogwood"} {
		if _, err := os.Stat(filepath.Join(root, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after purge %s: %v", p, err)
		}
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// debianRoot returns a minimal Debian root with systemd, made once by debootstrap
// (about a minute, from the configured Debian mirror) and kept for later runs.
func debianRoot(t *testing.T) (string, error) {
	t.Helper()
	dir := "/var/cache/dogwood-test/debian-bookworm-systemd"
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return dir, nil
	}
	os.RemoveAll(dir)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	mirror := "http://deb.debian.org/debian"
	if b, err := os.ReadFile("/etc/apt/sources.list.d/debian.sources"); err == nil {
		if m := regexp.MustCompile(`(?m)^URIs:\s*(\S+/debian)\s*$`).FindStringSubmatch(string(b)); m != nil {
			mirror = m[1]
		}
	}
	t.Logf("making a Debian root with debootstrap from %s (once; cached in %s)", mirror, dir)
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	out, err := exec.Command("debootstrap", "--variant=minbase", "--include=systemd", "bookworm", tmp, mirror).CombinedOutput()
	if err != nil {
		os.RemoveAll(tmp)
		return "", errors.New("debootstrap: " + err.Error() + "\n" + lastLine(string(out)))
	}
	os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644)
	return dir, os.Rename(tmp, dir)
}

// TestDebianCopyright checks the .deb's copyright file against Debian's
// machine-readable format (copyright-format 1.0): a header paragraph with
// Format, Files paragraphs with Copyright and License, and every licence
// named without its text defined in a stand-alone License paragraph.
func TestDebianCopyright(t *testing.T) {
	if testing.Short() {
		t.Skip("lists the binary's modules")
	}
	cmd := exec.Command("bash", "cmd/dogwood/packaging/copyright.sh")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("copyright.sh: %v", err)
	}
	if problems := checkDEP5(string(out)); len(problems) > 0 {
		t.Errorf("copyright: %s", strings.Join(problems, "\n"))
	}
	for _, mod := range []string{"hashicorp/memberlist", "miekg/dns", "go.etcd.io/bbolt", "golang.zx2c4.com/wireguard", "urfave/cli"} {
		if !strings.Contains(string(out), mod) {
			t.Errorf("copyright does not name %s", mod)
		}
	}
	// The raw licence text (what the package shipped before) is not DEP-5.
	lic, _ := os.ReadFile("../../LICENSE")
	if len(checkDEP5(string(lic))) == 0 {
		t.Error("checkDEP5 accepts a raw licence text")
	}
}

func checkDEP5(text string) []string {
	var problems []string
	paras := regexp.MustCompile(`\n\s*\n`).Split(strings.TrimSpace(text), -1)
	field := func(p, name string) (string, bool) {
		m := regexp.MustCompile(`(?m)^` + name + `:[ \t]*(.*)$`).FindStringSubmatch(p)
		if m == nil {
			return "", false
		}
		return m[1], true
	}
	if f, ok := field(paras[0], "Format"); !ok || f != "https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/" {
		return []string{"the first paragraph has no Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"}
	}
	defined := map[string]bool{}
	var needed []string
	files := 0
	for i, p := range paras[1:] {
		for _, l := range strings.Split(p, "\n") {
			if l != "" && l[0] != ' ' && l[0] != '\t' && !regexp.MustCompile(`^[A-Za-z-]+:`).MatchString(l) {
				problems = append(problems, fmt.Sprintf("paragraph %d: line %q is neither a field nor a continuation", i+2, l))
			}
		}
		lic, hasLic := field(p, "License")
		if _, isFiles := field(p, "Files"); isFiles {
			files++
			if _, ok := field(p, "Copyright"); !ok || !hasLic {
				problems = append(problems, fmt.Sprintf("paragraph %d: Files without Copyright or License", i+2))
			}
			if !regexp.MustCompile(`(?m)^License:.*\n `).MatchString(p) {
				needed = append(needed, regexp.MustCompile(`\s+(?:and|or)\s+`).Split(lic, -1)...)
			}
			continue
		}
		if hasLic {
			defined[lic] = true
		}
	}
	if files == 0 {
		problems = append(problems, "no Files paragraph")
	}
	for _, n := range needed {
		if !defined[n] {
			problems = append(problems, "licence "+n+" is used without text and has no stand-alone License paragraph")
		}
	}
	return problems
}
