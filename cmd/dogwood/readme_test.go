package main

import (
	"bytes"
	"context"
	"github.com/dogwood/dogwood/cmd/dogwood/e2e/needs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runnableBlocks returns the shell blocks of a markdown file that are preceded by a
// "<!-- runnable -->" line, in order.
func runnableBlocks(md string) []string {
	re := regexp.MustCompile("(?s)<!-- runnable -->\\s*\n```sh\n(.*?)```")
	var out []string
	for _, m := range re.FindAllStringSubmatch(md, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestRunnableBlocksParser(t *testing.T) {
	md := "x\n<!-- runnable -->\n```sh\necho a\n```\n```sh\nnot me\n```\n<!-- runnable -->\n```sh\necho b\n```\n"
	got := runnableBlocks(md)
	if len(got) != 2 || got[0] != "echo a\n" || got[1] != "echo b\n" {
		t.Fatalf("%q", got)
	}
}

// TestReadmeWalkthrough runs the README's runnable walkthrough as written, so the
// documentation cannot drift from the product.
func TestReadmeWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three agents")
	}
	if _, err := exec.LookPath("dig"); err != nil {
		needs.Skip(t, "dig not installed (apt-get install dnsutils)")
	}
	md, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := runnableBlocks(string(md))
	if len(blocks) < 3 {
		t.Fatalf("README has %d runnable blocks", len(blocks))
	}
	// The walkthrough uses fixed ports, as a reader would; fail clearly if they are taken.
	for _, p := range []string{"17901", "17902", "17903", "17951", "17952", "17953"} {
		if l, err := net.Listen("tcp", "127.0.0.1:"+p); err != nil {
			t.Fatalf("port %s, which the README walkthrough uses, is taken: %v", p, err)
		} else {
			l.Close()
		}
	}
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "bin"), 0o755)
	buildDogwood(t, filepath.Join(dir, "bin"))
	// Whatever happens, no agent survives the test.
	script := "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + strings.Join(blocks, "\n")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DOGWOOD_AGENT=", "TMPDIR="+dir) // mktemp stays inside the test's dir
	// The script starts agents in the background: on timeout kill the whole process
	// group, and do not wait forever for pipes they may still hold.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err = cmd.Run()
	out := buf.Bytes()
	t.Cleanup(func() {
		if cmd.Process != nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	})
	if err != nil {
		logs, _ := filepath.Glob(filepath.Join(dir, "tmp.*", "host*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			t.Logf("%s:\n%s", l, b)
		}
		t.Fatalf("walkthrough failed: %v\n%s", err, out)
	}
	for _, want := range []string{"host1", "created org acme", "created app web", "fdaa:", "stopped "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("walkthrough output lacks %q:\n%s", want, out)
		}
	}
	// machines list names each machine's org (two orgs may both have a web).
	if !regexp.MustCompile(`(?m)^ID +ORG +APP +REGION +HOST +ADDRESS +STATE`).Match(out) ||
		!regexp.MustCompile(`(?m)^[0-9a-f]{14} +acme +web +`).Match(out) {
		t.Errorf("machines list has no ORG column:\n%s", out)
	}
	t.Logf("%s", out)
}
