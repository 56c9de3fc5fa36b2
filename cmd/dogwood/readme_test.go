package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
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
		t.Skip("dig not installed (apt-get install dnsutils)")
	}
	md, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := runnableBlocks(string(md))
	if len(blocks) < 3 {
		t.Fatalf("README has %d runnable blocks", len(blocks))
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "bin", "dogwood"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	// Whatever happens, no agent survives the test.
	script := "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + strings.Join(blocks, "\n")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DOGWOOD_AGENT=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("walkthrough failed: %v\n%s", err, out)
	}
	for _, want := range []string{"host1", "created org acme", "created app web", "fdaa:", "stopped "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("walkthrough output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("%s", out)
}
