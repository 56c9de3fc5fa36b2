package main

import (
	"bytes"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"dogwood"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// Every command's help shows at least one example.
func TestEveryCommandHasAnExample(t *testing.T) {
	app := newApp(&env{})
	var walk func(path string, cmds []*cli.Command)
	walk = func(path string, cmds []*cli.Command) {
		for _, c := range cmds {
			p := strings.TrimSpace(path + " " + c.Name)
			walk(p, c.Subcommands)
			if c.Name == "help" || c.Name == "version" || c.Hidden {
				continue // urfave's own; version is a one-word command
			}
			if !agentLinked && isDelegated(c.Name) {
				continue // its help is dogwood-agent's
			}
			if !strings.Contains(c.Description, "Example") || !strings.Contains(c.Description, "dogwood ") {
				t.Errorf("dogwood %s --help has no example", p)
			}
			for _, f := range c.Flags {
				if df, ok := f.(cli.DocGenerationFlag); ok && strings.Contains(df.GetUsage(), "`dogwood") {
					t.Errorf("dogwood %s: flag %s has a command as its placeholder: %q", p, f.Names()[0], df.GetUsage())
				}
			}
		}
	}
	walk("", app.Commands)
	for _, f := range app.Flags {
		if _, isBool := f.(*cli.BoolFlag); isBool {
			continue // no value, no placeholder
		}
		if df, ok := f.(cli.DocGenerationFlag); ok && (strings.Contains(df.GetUsage(), "`dogwood") || !strings.Contains(df.GetUsage(), "`")) {
			t.Errorf("global flag --%s has no placeholder or a command as one: %q", f.Names()[0], df.GetUsage())
		}
	}
}

func TestReorderArgs(t *testing.T) {
	app := newApp(&env{})
	for _, tc := range []struct{ in, want string }{
		{"apps create web --org acme", "apps create --org acme web"},
		{"machines stop 0123456789abcd --agent /x.sock", "--agent /x.sock machines stop 0123456789abcd"},
		{"machines stop 0123456789abcd --agent=/x.sock", "--agent=/x.sock machines stop 0123456789abcd"},
		{"--agent /a members --json", "--agent /a members --json"},
		{"wireguard list acme --json --agent /a", "--agent /a wireguard list --json acme"},
		{"dig --config f.conf web.internal AAAA --short", "dig --config f.conf --short web.internal AAAA"},
		{"ping web.internal -c 2 --config f", "ping -c 2 --config f web.internal"},
		{"dig -- -x", "dig -- -x"},
	} {
		if !agentLinked && isDelegated(strings.Fields(tc.in)[0]) {
			continue // passed to dogwood-agent as given, which reorders them
		}
		got := strings.Join(reorderArgs(app, append([]string{"dogwood"}, strings.Fields(tc.in)...))[1:], " ")
		if got != tc.want {
			t.Errorf("reorder %q = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestGlobalFlagAfterCommand(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	code, _, stderr := runCLI(t, "machines", "stop", "0123456789abcd", "--agent", sock)
	if code != 1 || !strings.Contains(stderr, "no agent is running at "+sock) {
		t.Errorf("exit %d, stderr %q: want 1 and the socket named", code, stderr)
	}
}

func TestUnknownCommands(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"machnes"}, []string{`unknown command "machnes"`, `did you mean "machines"?`, "see 'dogwood --help'"}},
		{[]string{"machines", "lst"}, []string{`unknown command "lst" for 'dogwood machines'`, `did you mean "list"?`, "see 'dogwood machines --help'"}},
		{[]string{"wireguard", "craete", "acme"}, []string{`did you mean "create"?`, "see 'dogwood wireguard --help'"}},
		{[]string{"members", "rmove", "h1"}, []string{`did you mean "remove"?`, "see 'dogwood members --help'"}},
		{[]string{"zzzzzz"}, []string{`unknown command "zzzzzz"`, "commands: agent,"}},
	} {
		code, _, stderr := runCLI(t, tc.args...)
		if code != 2 {
			t.Errorf("dogwood %v: exit %d, want 2", tc.args, code)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("dogwood %v: stderr %q lacks %q", tc.args, stderr, w)
			}
		}
		if strings.Contains(stderr, "did you mean") && tc.args[0] == "zzzzzz" {
			t.Errorf("dogwood zzzzzz suggested something: %q", stderr)
		}
	}
	// A group without a subcommand prints its own help, not the top level's.
	code, stdout, _ := runCLI(t, "machines")
	if code != 0 || !strings.Contains(stdout, "dogwood machines - ") || !strings.Contains(stdout, "show") {
		t.Errorf("dogwood machines: exit %d\n%s", code, stdout)
	}
}

func TestHelpTexts(t *testing.T) {
	if agentLinked {
		_, out, _ := runCLI(t, "dig", "--help")
		if !strings.Contains(out, "--config FILE") {
			t.Errorf("dig --help: no FILE placeholder for --config:\n%s", out)
		}
	}
	_, out, _ := runCLI(t, "machines", "show", "--help")
	if !strings.Contains(out, "one object") || strings.Contains(out, "array") {
		t.Errorf("machines show --help: --json wording:\n%s", out)
	}
	_, out, _ = runCLI(t, "machines", "list", "--help")
	if !strings.Contains(out, "an array of objects") {
		t.Errorf("machines list --help: --json wording:\n%s", out)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90m": 90 * time.Minute, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "2w": 14 * 24 * time.Hour,
		"1d12h": 36 * time.Hour, "1w1d": 8 * 24 * time.Hour, "1.5d": 36 * time.Hour, "30s": 30 * time.Second,
	} {
		got, err := parseDuration(in)
		if err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "7", "d", "7dd", "1y", "1h-2m", "abc"} {
		if in == "" {
			continue
		}
		if d, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) = %v, want an error", in, d)
		}
	}
	code, _, stderr := runCLI(t, "wireguard", "create", "acme", "ord", "x", "-", "--expires", "7x", "--agent", "/nonexistent")
	if code != 2 || !strings.Contains(stderr, "--expires") {
		t.Errorf("--expires 7x: exit %d %q", code, stderr)
	}
}

func TestEditDistance(t *testing.T) {
	got := []int{editDistance("machnes", "machines"), editDistance("", "ab"), editDistance("lst", "list"), editDistance("abc", "abc")}
	if !reflect.DeepEqual(got, []int{1, 2, 1, 0}) {
		t.Errorf("editDistance = %v", got)
	}
}
