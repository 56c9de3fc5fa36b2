// Package e2eproc owns the command helpers the end-to-end suites share: running a
// command with a bounded time, inside a network namespace, and polling until a
// condition holds.
package e2eproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Run runs a command in its own process group with a bounded time (the whole group
// is killed when it runs out) and returns its combined output.
func Run(timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second // a daemon that inherited our pipes must not hang us
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) {
		err = nil // it exited successfully; something it started kept the output open
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v: %w", timeout, err)
	}
	return buf.String(), err
}

// InNS returns the argv that runs argv inside namespace ns.
func InNS(ns string, argv ...string) []string {
	return append([]string{"ip", "netns", "exec", ns}, argv...)
}

// NSRun runs argv inside namespace ns (see Run).
func NSRun(timeout time.Duration, ns string, argv ...string) (string, error) {
	a := InNS(ns, argv...)
	return Run(timeout, nil, a[0], a[1:]...)
}

// Eventually polls f until it returns nil or timeout passes; it returns the last error.
func Eventually(timeout, every time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(every)
	}
}
