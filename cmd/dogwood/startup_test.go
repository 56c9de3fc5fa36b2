package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStartupInitTrace: a CLI call runs the package init of everything the
// binary links, so what runs there is paid by every `dogwood version`. Built as
// `make build` builds it, the init trace must not show the markdown and TOML
// parsers (unused) nor the agent's side (metrics, netstack, WireGuard, gossip,
// DNS server, YAML: they live in dogwood-agent), and Dogwood's own packages must
// do next to nothing at init (no regexps compiled, no tables built). The agent's
// commands reach dogwood-agent through the light binary. The CPU per call is logged, beside
// `true`'s, not judged: timing belongs to benchmarks (the README has the
// figure and the command).
func TestStartupInitTrace(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	needTool(t, "builds the binary as make build does", "make", "go")
	bin := filepath.Join(t.TempDir(), "dogwood")
	if out, err := exec.Command("make", "-s", "-C", "../..", "build", "BIN="+bin).CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "version")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("version: %v\n%s", err, out)
	}
	line := regexp.MustCompile(`(?m)^init (\S+) @\S+ ms, (\S+) ms clock, (\d+) bytes, (\d+) allocs$`)
	inits := line.FindAllStringSubmatch(string(out), -1)
	if len(inits) < 50 {
		t.Fatalf("init trace has %d packages:\n%s", len(inits), out)
	}
	for _, m := range inits {
		pkg := m[1]
		allocs, _ := strconv.Atoi(m[4])
		for _, banned := range []string{"russross/blackfriday", "cpuguy83/go-md2man", "BurntSushi/toml",
			"prometheus", "gvisor.dev", "golang.zx2c4.com/wireguard/device", "hashicorp/memberlist", "miekg/dns",
			"google.golang.org/protobuf", "encoding/gob", "go.etcd.io/bbolt", "yaml"} {
			if strings.Contains(pkg, banned) {
				t.Errorf("%s runs its init in every CLI call (%s ms, %d allocs)", pkg, m[2], allocs)
			}
		}
		if (strings.HasPrefix(pkg, "github.com/dogwood/dogwood") || pkg == "main") && allocs > 100 {
			t.Errorf("%s allocates %d times at init (%s bytes): build it when it is first used", pkg, allocs, m[3])
		}
	}
	// dogwood agent --help is the agent's own help, from dogwood-agent beside it.
	if out, err := exec.Command(bin, "agent", "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "--gossip-key-file") {
		t.Errorf("dogwood agent --help through dogwood-agent: %v\n%s", err, out)
	}
	cpu := func(name string, args ...string) time.Duration {
		var total time.Duration
		const n = 20
		for i := 0; i < n; i++ {
			c := exec.Command(name, args...)
			if err := c.Run(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			ru := c.ProcessState.SysUsage().(*syscall.Rusage)
			total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
		return total / n
	}
	t.Logf("CPU per call, mean of 20: dogwood version %v, true %v", cpu(bin, "version"), cpu("true"))
}
