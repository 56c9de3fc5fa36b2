package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
)

// Two binaries, one command. Every CLI call runs the package init of all the
// binary links; the agent's side (gossip, the userspace WireGuard and netstack,
// Prometheus, the DNS server) costs ~25 ms of CPU there, which `dogwood version`
// and every `machines list` in a script would pay. So `dogwood` is built without
// it, and the commands that need it run in dogwood-agent (the same package built
// with the agent tag: every command, as one binary of the releases before). The
// light binary execs it in place, so the PID, signals, systemd's notify socket
// and the standard streams stay the agent's.

// agentBinaryName is the second binary's file name.
const agentBinaryName = "dogwood-agent"

// agentLibDir is where the .deb installs dogwood-agent (not on PATH: users type dogwood).
const agentLibDir = "/usr/lib/dogwood"

// The one-line usage of the commands that run in dogwood-agent: `dogwood --help`
// of the light binary lists them too.
const (
	agentUsage   = "run the host agent (gossip, catalog, WireGuard, DNS, API)"
	digUsage     = "query .internal DNS as a machine of a network sees it"
	pingUsage    = "ping a machine or peer through a userspace tunnel (no root)"
	proxyUsage   = "forward a local TCP port to a machine through a userspace tunnel (no root)"
	backupUsage  = "write one file that restores this host completely (mode 0600)"
	restoreUsage = "put a backup back into a stopped agent's data dir, after checking it"
)

// isDelegated reports whether the light binary runs command name in dogwood-agent.
func isDelegated(name string) bool {
	switch name {
	case "agent", "dig", "ping", "proxy", "backup", "restore":
		return true
	}
	return false
}

// completedCommand is the top-level command of a completion request's words
// (the last word is the one being completed): the first word that is neither a
// flag nor a global flag's value, or "".
func completedCommand(app *cli.App, words []string) string {
	for i := 0; i < len(words)-1; i++ {
		w := words[i]
		if strings.HasPrefix(w, "-") {
			if !strings.Contains(w, "=") && takesValue(app.Flags, w) {
				i++
			}
			continue
		}
		return w
	}
	return ""
}

// agentBinary finds dogwood-agent: beside the running binary (a build tree, an
// unpacked release archive, a test's directory), else in agentLibDir. self is
// the running binary's path ("" when unknown: a chroot without /proc); stat is
// os.Stat in production.
func agentBinary(self string, stat func(string) (fs.FileInfo, error)) (string, error) {
	var dirs, tried []string
	if self != "" {
		dirs = append(dirs, filepath.Dir(self))
	}
	for _, dir := range append(dirs, agentLibDir) {
		p := filepath.Join(dir, agentBinaryName)
		if fi, err := stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("this command runs in %s, which is not at %s: install the whole package, or build both binaries (make build)",
		agentBinaryName, strings.Join(tried, " nor "))
}

// execAgent runs dogwood-agent in this process's place with args (args[0] is
// replaced by its path). It returns only when that cannot be done.
func execAgent(args []string) error {
	self, err := os.Executable()
	if err != nil {
		self = "" // no /proc (a chroot): only the package's place is left
	}
	bin, err := agentBinary(self, os.Stat)
	if err != nil {
		return err
	}
	argv := append([]string{bin}, args[1:]...)
	if err := syscall.Exec(bin, argv, os.Environ()); err != nil {
		return fmt.Errorf("running %s: %w", bin, err)
	}
	return nil
}
