package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAgentRefusesDamagedDataFile: an empty or truncated data file ends the agent
// with exit 1 and a message naming the file and the way out, without a stack trace
// and without touching the file.
func TestAgentRefusesDamagedDataFile(t *testing.T) {
	// A real data file to damage.
	good := t.TempDir()
	_, _, _, _, n := testAgent(t)
	f, err := os.Create(filepath.Join(good, "dogwood.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Backup(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, _ := os.ReadFile(filepath.Join(good, "dogwood.db"))

	for name, content := range map[string][]byte{"empty": {}, "truncated": b[:len(b)/3], "garbage": []byte(strings.Repeat("x", 20000))} {
		dir := t.TempDir()
		path := filepath.Join(dir, "dogwood.db")
		os.WriteFile(path, content, 0o600)
		code, out, errs := runCLI(t, "agent", "--name", "h9", "--data-dir", dir, "--insecure-no-gossip-key",
			"--wireguard", "off", "--gossip-addr", "127.0.0.1:0", "--api-socket", filepath.Join(dir, "api.sock"))
		if code != 1 {
			t.Errorf("%s: exit %d, want 1\n%s%s", name, code, out, errs)
		}
		for _, want := range []string{path, "damaged", "dogwood restore FILE", "move the file away"} {
			if !strings.Contains(errs, want) {
				t.Errorf("%s: stderr lacks %q:\n%s", name, want, errs)
			}
		}
		if strings.Contains(errs, "goroutine ") || strings.Contains(errs, "panic") {
			t.Errorf("%s: stack trace:\n%s", name, errs)
		}
		if after, _ := os.ReadFile(path); string(after) != string(content) {
			t.Errorf("%s: the agent changed the damaged file", name)
		}
	}
}
