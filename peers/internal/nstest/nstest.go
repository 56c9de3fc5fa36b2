// Package nstest runs tests of the data plane inside throwaway network namespaces.
// A test calls Enter: in the parent (root, root netns) it creates a namespace with a
// unique per-run name, re-executes the test binary for just that test under
// `ip netns exec`, reports the child's output, and removes the namespace on cleanup;
// in the child it returns true and the test body runs for real, isolated from the
// machine's own interfaces, routes and nftables.
package nstest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"github.com/dogwood/dogwood/cmd/dogwood/e2e/needs"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// ChildEnv marks a re-executed child; its value is the namespace it runs in.
const ChildEnv = "DOGWOOD_NSTEST_NETNS"

// RunEnv carries the parent's run id to children.
const RunEnv = "DOGWOOD_NSTEST_RUN"

var (
	runOnce sync.Once
	runID   string
)

// RunID is a short random id shared by everything one `go test` run creates, so
// names never collide with a concurrent run and leftovers are attributable.
func RunID() string {
	runOnce.Do(func() {
		if v := os.Getenv(RunEnv); v != "" {
			runID = v
			return
		}
		b := make([]byte, 3)
		rand.Read(b)
		runID = hex.EncodeToString(b)
	})
	return runID
}

// InChild reports whether this process is a re-executed child.
func InChild() bool { return os.Getenv(ChildEnv) != "" }

// RequireRoot skips t (fails it under CI=true) unless it runs as root with `ip`
// available.
func RequireRoot(t testing.TB) {
	t.Helper()
	needs.Root(t)
	needs.Tools(t, "ip")
}

// Name returns a unique namespace or interface name "dw<run><suffix>" (keep the
// suffix short: interface names are at most 15 bytes).
func Name(suffix string) string { return "dw" + RunID() + suffix }

// Netns creates a named namespace and deletes it on cleanup, even on failure.
func Netns(t testing.TB, name string) {
	t.Helper()
	Run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		// Killing the processes is each test's job; deleting the name is ours.
		exec.Command("ip", "netns", "del", name).Run()
	})
	Run(t, "ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
}

// Run runs a command and fails t with its output if it fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Enter runs the current test inside a fresh namespace. It returns true in the child
// (run the body) and false in the parent (return at once: the child's result has been
// reported).
func Enter(t *testing.T) bool {
	t.Helper()
	if InChild() {
		return true
	}
	RequireRoot(t)
	ns := Name(fmt.Sprintf("t%d", time.Now().UnixNano()%100000))
	Netns(t, ns)
	cmd := Child(t, ns, "^"+t.Name()+"$")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	t.Logf("child in netns %s:\n%s", ns, indent(out.String()))
	if err != nil {
		t.Fatalf("child failed: %v", err)
	}
	if strings.Contains(out.String(), "--- SKIP") {
		t.Skip("child skipped")
	}
	return false
}

// Child returns a command that runs the named tests of this binary in namespace ns.
func Child(t testing.TB, ns, run string, extraEnv ...string) *exec.Cmd {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"netns", "exec", ns, self, "-test.run=" + run, "-test.v", "-test.count=1"}
	cmd := exec.Command("ip", args...)
	cmd.Env = append(os.Environ(), ChildEnv+"="+ns, RunEnv+"="+RunID())
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Dir = filepath.Dir(self)
	return cmd
}

// Proc is a long-running child (one "host" of a multi-host test).
type Proc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	mu    sync.Mutex
	log   bytes.Buffer
	done  chan error
}

// Start starts a child that talks line by line on stdin/stdout.
func Start(t testing.TB, ns, run string, env ...string) *Proc {
	t.Helper()
	cmd := Child(t, ns, run, env...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW := io.Pipe()
	cmd.Stdout, cmd.Stderr = outW, outW
	p := &Proc{cmd: cmd, stdin: in, lines: make(chan string, 100), done: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(outR)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			p.mu.Lock()
			p.log.WriteString(l + "\n")
			p.mu.Unlock()
			if rest, ok := strings.CutPrefix(l, "NSTEST "); ok {
				p.lines <- rest
			}
		}
		close(p.lines)
	}()
	go func() {
		err := cmd.Wait()
		outW.Close()
		p.done <- err
	}()
	t.Cleanup(func() { p.Stop(t) })
	return p
}

// Expect waits for the child to print "NSTEST <want>".
func (p *Proc) Expect(t testing.TB, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("child exited before %q:\n%s", want, p.Output())
			}
			if l == want {
				return
			}
			if strings.HasPrefix(l, "FAIL") {
				t.Fatalf("child: %s\n%s", l, p.Output())
			}
		case <-deadline:
			t.Fatalf("child did not say %q within %v:\n%s", want, timeout, p.Output())
		}
	}
}

// Send writes one line to the child's stdin.
func (p *Proc) Send(line string) error {
	_, err := io.WriteString(p.stdin, line+"\n")
	return err
}

// Output is everything the child printed so far.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// Stop closes the child's stdin (its signal to clean up and exit), waits a while,
// then kills it. Idempotent.
func (p *Proc) Stop(t testing.TB) error {
	if p.stdin != nil {
		p.stdin.Close()
		p.stdin = nil
	}
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		err := <-p.done
		p.done <- err
		t.Errorf("child did not exit in time; killed:\n%s", p.Output())
		return err
	}
}

// Say prints a protocol line from a child.
func Say(format string, args ...any) { fmt.Printf("NSTEST "+format+"\n", args...) }

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
