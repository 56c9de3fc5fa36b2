//go:build agent

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dogwood/dogwood/mesh"
	"github.com/dogwood/dogwood/mesh/backup"
	"github.com/dogwood/dogwood/mesh/store"
)

// backupArchivePath serves the whole-host backup on the unix socket only: it
// holds every private key of the host.
const backupArchivePath = "/v1/backup/archive"

func backupCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "backup",
		Usage:     backupUsage,
		ArgsUsage: "FILE",
		Description: `Taken while the agent runs: the data file in one read transaction (identity,
WireGuard private key, catalog) and the data dir's other files (the invitation
listener's certificate and pending invitations, the TLS API's certificate), in one
tar archive with a manifest of checksums. It is written with mode 0600 through a
temporary file in FILE's directory, checked, and renamed into place, so FILE is
either the previous backup or the whole new one. "dogwood restore FILE" puts it
back. Over the TLS API (--agent https://…) only the data file is copied.

Example:
  dogwood backup /var/backups/dogwood-$(date +%F).tar`,
		OnUsageError: usageHook,
		Action: func(c *cli.Context) error {
			a, err := args(c, 1, 1, "FILE")
			if err != nil {
				return err
			}
			path := backupArchivePath
			if strings.Contains(c.String("agent"), "://") {
				path = "/v1/backup"
				fmt.Fprintln(e.stderr, "note: over the TLS API only the data file is copied; run dogwood backup on the host for invitations and certificates too")
			}
			m, err := writeBackup(c, a[0], path)
			if err != nil {
				return err
			}
			var names []string
			var size int64
			for _, f := range m.Files {
				names = append(names, f.Name)
				size += f.Size
			}
			fmt.Fprintf(e.stdout, "wrote %s: %s (%d bytes)\n", a[0], strings.Join(names, ", "), size)
			return nil
		},
	}
}

func writeBackup(c *cli.Context, path, apiPath string) (backup.Manifest, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return backup.Manifest{}, usagef("%s is a directory: give a file name", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return backup.Manifest{}, fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	// CreateTemp makes 0600 already; say so explicitly, whatever the umask.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return backup.Manifest{}, err
	}
	n, err := client(c).Download(c.Context, apiPath, tmp)
	if err == nil && n == 0 {
		err = fmt.Errorf("the agent sent an empty backup")
	}
	if err == nil {
		err = tmp.Sync()
	}
	var m backup.Manifest
	if err == nil {
		// The agent streams as it reads: check what arrived before it replaces FILE.
		if _, err = tmp.Seek(0, io.SeekStart); err == nil {
			m, err = backup.Extract(tmp, "")
		}
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	return m, nil
}

// serveBackupArchive is GET /v1/backup/archive on the unix socket.
func serveBackupArchive(node *mesh.Node, dataDir string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-tar")
		if err := backup.Write(w, dataDir, node.Backup, node.Name(), node.HostID(), time.Now()); err != nil {
			// Mid-stream: the archive ends without its manifest, which the CLI
			// refuses; nothing more can be said to the client.
			panic(http.ErrAbortHandler)
		}
	}
}

func restoreCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "restore",
		Usage:     restoreUsage,
		ArgsUsage: "FILE",
		Description: `Checks FILE first (the manifest's checksums, the data file's pages and the
host's identity) and writes nothing if it is damaged. The agent must be stopped.
Whatever the data dir held is moved into DATA_DIR/.before-restore-TIME, so nothing is
lost. A data file alone (a backup from a release before the archive) restores too.
--data-dir defaults to the agent's: the --config file's data-dir, $DOGWOOD_DATA_DIR,
else /var/lib/dogwood.

Example:
  systemctl stop dogwood
  dogwood restore /var/backups/dogwood-2026-12-06.tar
  systemctl start dogwood`,
		OnUsageError: usageHook,
		Before:       func(c *cli.Context) error { return loadConfigFileFor(c, agentCommand(e).Flags) },
		Flags: withConfigFile([]cli.Flag{
			&cli.StringFlag{Name: "data-dir", Usage: "the agent's state `DIR`", Value: "/var/lib/dogwood", EnvVars: []string{"DOGWOOD_DATA_DIR"}},
		}),
		Action: func(c *cli.Context) error {
			a, err := args(c, 1, 1, "FILE")
			if err != nil {
				return err
			}
			return restore(c.Context, e, a[0], c.String("data-dir"))
		},
	}
}

func restore(_ context.Context, e *env, file, dataDir string) error {
	f, err := os.Open(file)
	if err != nil {
		return usagef("restore: %v", err)
	}
	defer f.Close()
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	unlock, err := lockDataDir(dataDir)
	if err != nil {
		return err
	}
	defer unlock()
	stage, err := os.MkdirTemp(dataDir, ".restore-*")
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer os.RemoveAll(stage)
	m, err := backup.Extract(f, stage)
	if err != nil {
		return fmt.Errorf("restore %s: %w; nothing was changed", file, err)
	}
	st, err := store.Open(stage)
	if err != nil {
		return fmt.Errorf("restore %s: its data file does not open: %v; nothing was changed", file, err)
	}
	id, ok, err := st.Identity()
	st.Close()
	if err != nil || !ok {
		return fmt.Errorf("restore %s: its data file holds no host identity (%v); nothing was changed", file, err)
	}
	if m.Host != "" && (m.Host != id.Name || m.HostID != id.HostID) {
		return fmt.Errorf("restore %s: the manifest names host %s (%08x) but the data file holds %s (%08x); nothing was changed", file, m.Host, m.HostID, id.Name, id.HostID)
	}
	aside, err := backup.Install(stage, dataDir, m, time.Now())
	if err != nil {
		return fmt.Errorf("restore: %w (what the data dir held is in %s)", err, aside)
	}
	var names []string
	for _, f := range m.Files {
		names = append(names, f.Name)
	}
	fmt.Fprintf(e.stdout, "restored host %s (host id %08x) into %s: %s\n", id.Name, id.HostID, dataDir, strings.Join(names, ", "))
	if aside != "" {
		fmt.Fprintf(e.stdout, "what %s held before is in %s\n", dataDir, aside)
	}
	fmt.Fprintln(e.stdout, "next: start the agent (systemctl start dogwood)")
	return nil
}

// lockDataDir refuses a data dir an agent holds: the agent keeps an
// exclusive lock on its data file (bbolt's flock) while it runs.
func lockDataDir(dataDir string) (func(), error) {
	p := filepath.Join(dataDir, backup.DataFile)
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return func() {}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("restore: an agent is running on %s: stop it first (systemctl stop dogwood); nothing was changed", dataDir)
		}
		return nil, fmt.Errorf("restore: lock %s: %w", p, err)
	}
	return func() { f.Close() }, nil
}
