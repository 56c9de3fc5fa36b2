//go:build agent

package main

import (
	"github.com/dogwood/dogwood/cmd/dogwood/e2e/needs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestCompleteWords(t *testing.T) {
	app := newApp(&env{})
	names := func(kind string) []string {
		return map[string][]string{"org": {"acme", "beta"}, "app": {"web", "db"}, "machine": {"0123456789abcd"}, "member": {"h1", "h2"}}[kind]
	}
	for _, tc := range []struct {
		words []string
		want  []string
	}{
		{[]string{"ma"}, []string{"machines"}},
		{[]string{"machines", ""}, []string{"create", "destroy", "list", "show", "start", "stop"}},
		{[]string{"machines", "list", "--"}, []string{"--agent", "--agent-ca", "--agent-fingerprint", "--app", "--help", "--json", "--org", "--source", "--token-file", "--version"}},
		{[]string{"machines", "list", "--o"}, []string{"--org"}},
		{[]string{"machines", "list", "--org", ""}, []string{"acme", "beta"}},
		{[]string{"machines", "list", "--org", "acme", "--app", "w"}, []string{"web"}},
		{[]string{"machines", "stop", ""}, []string{"0123456789abcd"}},
		{[]string{"apps", "remove", ""}, []string{"db", "web"}},
		{[]string{"orgs", "remove", "a"}, []string{"acme"}},
		{[]string{"orgs", "create", ""}, nil},
		{[]string{"wireguard", "list", ""}, []string{"acme", "beta"}},
		{[]string{"wireguard", "remove", "acme", ""}, nil},
		{[]string{"members", "remove", ""}, []string{"h1", "h2"}},
		{[]string{"--agent", "/x.sock", "dns", "list", "b"}, []string{"beta"}},
		{[]string{"dig", "--org", ""}, []string{"acme", "beta"}},
	} {
		if got := completeWords(app, tc.words, names); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("complete %q = %q, want %q", tc.words, got, tc.want)
		}
	}
}

// TestShellCompletion drives the real shells' completion with the real binary
// and agent: --<TAB> offers flags, an org name comes from the agent.
func TestShellCompletion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	needTool(t, "drives bash completion", "bash", "go")
	sock, _, _, _, _ := testAgent(t)
	dir := t.TempDir()
	bin := buildDogwood(t, dir)
	env := append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"), "DOGWOOD_AGENT="+sock)
	if out, err := exec.Command(bin, "--agent", sock, "orgs", "create", "acme").CombinedOutput(); err != nil {
		t.Fatalf("orgs create: %v %s", err, out)
	}
	script, _ := exec.Command(bin, "completion", "bash").Output()
	os.WriteFile(filepath.Join(dir, "c.bash"), script, 0o644)
	bashTab := func(line string) string {
		words := strings.Fields(line)
		if strings.HasSuffix(line, " ") {
			words = append(words, "")
		}
		var q []string
		for _, w := range words {
			q = append(q, "'"+w+"'")
		}
		cmd := exec.Command("bash", "-c", `source `+filepath.Join(dir, "c.bash")+`
COMP_WORDS=(`+strings.Join(q, " ")+`); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
_dogwood_complete; printf '%s\n' "${COMPREPLY[@]}"`)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash completion of %q: %v\n%s", line, err, out)
		}
		return string(out)
	}
	if got := bashTab("dogwood machines list --"); !strings.Contains(got, "--app\n") || !strings.Contains(got, "--org\n") {
		t.Errorf("bash: machines list --<TAB> = %q", got)
	}
	if got := bashTab("dogwood apps create web --org a"); got != "acme\n" {
		t.Errorf("bash: --org a<TAB> = %q, want acme from the agent", got)
	}
	for _, sh := range []string{"zsh", "fish"} {
		if _, err := exec.LookPath(sh); err != nil {
			if needs.CI() {
				t.Errorf("%s not installed (make deps): its completion is not checked", sh)
			}
			t.Logf("%s not installed (make deps): its completion is not checked", sh)
			continue
		}
		s, _ := exec.Command(bin, "completion", sh).Output()
		f := filepath.Join(dir, "c."+sh)
		os.WriteFile(f, s, 0o644)
		if out, err := exec.Command(sh, "-n", f).CombinedOutput(); err != nil {
			t.Errorf("%s -n on its completion script: %v\n%s", sh, err, out)
		}
	}
	// zsh: the completion function with zsh's words and CURRENT, compadd
	// printing what it is given.
	if _, err := exec.LookPath("zsh"); err == nil {
		cmd := exec.Command("zsh", "-f", "-c", `compdef() { :; }; _files() { :; }
compadd() { shift 2; print -l -- "$@"; }
source `+filepath.Join(dir, "c.zsh")+`
words=(dogwood orgs remove a); CURRENT=4; _dogwood
words=(dogwood machines list --); CURRENT=4; _dogwood`)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "acme\n") || !strings.Contains(string(out), "--app\n") {
			t.Errorf("zsh: orgs remove a<TAB>, machines list --<TAB>: %v %q", err, out)
		}
	}
	// fish: run its completion function on a command line, as fish does on TAB.
	if _, err := exec.LookPath("fish"); err == nil {
		cmd := exec.Command("fish", "--no-config", "-c", "source "+filepath.Join(dir, "c.fish")+"; complete -C 'dogwood orgs remove a'")
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "acme") {
			t.Errorf("fish: orgs remove a<TAB>: %v %q", err, out)
		}
	}
}
