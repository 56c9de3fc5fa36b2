package netns

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemoScript runs `make demo`'s script end to end (it is what a new user runs
// first) and checks it proves everything it claims and leaves nothing behind.
func TestDemoScript(t *testing.T) {
	requireEnv(t, "wg-quick", "wireguard-go", "bc", "ping")
	bin := dogwoodBin(t)
	prefix := runPrefix() + "d"
	state := filepath.Join(t.TempDir(), "demo")
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second) // a loaded CI machine; the containers step adds ~10 s
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "../../../../testdata/demo/demo.sh")
	cmd.Env = append(os.Environ(), "DOGWOOD_BIN="+bin, "DOGWOOD_DEMO_PREFIX="+prefix, "DOGWOOD_DEMO_STATE="+state,
		"DOGWOOD_CNI_BIN="+filepath.Join(cniPluginDir(t), "dogwood"))
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	t.Cleanup(func() { exec.Command("bash", "../../../../testdata/demo/demo.sh", "down").Run() })
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out)
	}
	want := 6
	if _, err := exec.LookPath("podman"); err == nil {
		want++ // containers
	}
	if n := strings.Count(string(out), "✔"); n < want {
		t.Errorf("demo printed %d proofs, want %d:\n%s", n, want, out)
	}
	list, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(list), prefix) {
		t.Errorf("demo left namespaces behind:\n%s", list)
	}
	if _, err := os.Stat(state); err == nil {
		t.Errorf("demo left %s behind", state)
	}
}
