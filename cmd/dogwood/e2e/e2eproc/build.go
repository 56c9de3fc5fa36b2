package e2eproc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// AgentBinary is the file name of the agent's side, which dogwood runs from
// beside itself for agent, proxy, dig, ping, backup and restore.
const AgentBinary = "dogwood-agent"

// BuildDogwood builds dogwood and dogwood-agent into dir (extra go build flags,
// e.g. -race, in flags) and returns dogwood's path.
func BuildDogwood(dir string, flags ...string) (string, error) {
	bin := filepath.Join(dir, "dogwood")
	for _, b := range []struct{ out, tags string }{{bin, "urfave_cli_no_docs"}, {filepath.Join(dir, AgentBinary), "urfave_cli_no_docs,agent"}} {
		args := append(append([]string{"build", "-tags", b.tags}, flags...), "-o", b.out, "github.com/dogwood/dogwood/cmd/dogwood")
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s: %v\n%s", filepath.Base(b.out), err, out)
		}
	}
	return bin, nil
}

// CopyDogwood copies the dogwood binary at src (as $DOGWOOD_BIN names it) and the
// dogwood-agent beside it into dir, and returns the copy's path. A src without
// dogwood-agent beside it is one binary that runs every command itself (a build
// with the agent tag, or a release before the split).
func CopyDogwood(src, dir string) (string, error) {
	bin := filepath.Join(dir, "dogwood")
	if err := copyFile(src, bin); err != nil {
		return "", err
	}
	agent := filepath.Join(filepath.Dir(src), AgentBinary)
	if _, err := os.Stat(agent); err == nil {
		if err := copyFile(agent, filepath.Join(dir, AgentBinary)); err != nil {
			return "", err
		}
	}
	return bin, nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}
