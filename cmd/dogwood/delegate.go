package main

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
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
