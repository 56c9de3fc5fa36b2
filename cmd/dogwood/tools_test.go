package main

import (
	"io/fs"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dogwood/dogwood/cmd/dogwood/e2e/needs"
)

// needTool skips when a tool is missing, except under CI=true where a skip
// would hide a test that never ran (package needs decides).
func needTool(t *testing.T, why string, tools ...string) {
	t.Helper()
	if missing := needs.Missing(tools...); len(missing) > 0 {
		needs.Skip(t, "%s not installed (make deps): %s", strings.Join(missing, ", "), why)
	}
}

// buildDogwood builds dogwood and dogwood-agent into dir as make build does
// (without its version stamp) and returns dogwood's path: the light binary runs
// the agent's commands through the other one beside it.
func buildDogwood(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "dogwood")
	for _, b := range []struct{ out, tags string }{{bin, "urfave_cli_no_docs"}, {filepath.Join(dir, agentBinaryName), "urfave_cli_no_docs,agent"}} {
		if out, err := exec.Command("go", "build", "-tags", b.tags, "-o", b.out, ".").CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", filepath.Base(b.out), err, out)
		}
	}
	return bin
}

func TestAgentBinary(t *testing.T) {
	stat := func(files map[string]fs.FileMode) func(string) (fs.FileInfo, error) {
		return func(p string) (fs.FileInfo, error) {
			if m, ok := files[p]; ok {
				return fakeInfo(m), nil
			}
			return nil, fs.ErrNotExist
		}
	}
	for _, tc := range []struct {
		name  string
		files map[string]fs.FileMode
		want  string // "" is an error
	}{
		{"beside", map[string]fs.FileMode{"/opt/dw/dogwood-agent": 0o755, "/usr/lib/dogwood/dogwood-agent": 0o755}, "/opt/dw/dogwood-agent"},
		{"the package's", map[string]fs.FileMode{"/usr/lib/dogwood/dogwood-agent": 0o755}, "/usr/lib/dogwood/dogwood-agent"},
		{"not executable beside", map[string]fs.FileMode{"/opt/dw/dogwood-agent": 0o644, "/usr/lib/dogwood/dogwood-agent": 0o755}, "/usr/lib/dogwood/dogwood-agent"},
		{"a directory", map[string]fs.FileMode{"/opt/dw/dogwood-agent": fs.ModeDir | 0o755}, ""},
		{"missing", nil, ""},
	} {
		if got, err := agentBinary("", stat(tc.files)); tc.want == "/usr/lib/dogwood/dogwood-agent" && (got != tc.want || err != nil) {
			t.Errorf("%s, own path unknown: %q, %v", tc.name, got, err)
		}
		got, err := agentBinary("/opt/dw/dogwood", stat(tc.files))
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
		if err != nil && (!strings.Contains(err.Error(), "/opt/dw/dogwood-agent") || !strings.Contains(err.Error(), "/usr/lib/dogwood/dogwood-agent")) {
			t.Errorf("%s: the error names neither place it looked: %v", tc.name, err)
		}
	}
}

type fakeInfo fs.FileMode

func (m fakeInfo) Name() string       { return "dogwood-agent" }
func (m fakeInfo) Size() int64        { return 0 }
func (m fakeInfo) Mode() fs.FileMode  { return fs.FileMode(m) }
func (m fakeInfo) ModTime() time.Time { return time.Time{} }
func (m fakeInfo) IsDir() bool        { return fs.FileMode(m).IsDir() }
func (m fakeInfo) Sys() any           { return nil }

func TestCompletedCommand(t *testing.T) {
	app := newApp(&env{})
	for _, tc := range []struct{ words, want string }{
		{"agent --gos", "agent"},
		{"--agent /x.sock agent --gos", "agent"},
		{"--agent=/x.sock proxy --con", "proxy"},
		{"machines list --o", "machines"},
		{"ag", ""},
		{"--agent /x.sock ", ""},
	} {
		if got := completedCommand(app, strings.Split(tc.words, " ")); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.words, got, tc.want)
		}
	}
}
