package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"
)

func backupCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "backup",
		Usage:     "write a consistent copy of this host's data file (mode 0600)",
		ArgsUsage: "FILE",
		Description: `The copy is taken while the agent runs (one read transaction) and holds the
host's identity and WireGuard private key: it is written with mode 0600 through a
temporary file in FILE's directory and renamed into place, so FILE is either the
previous copy or the whole new one. To restore, stop the agent and put the copy
at DATA_DIR/dogwood.db.

Example:
  dogwood backup /var/backups/dogwood-$(date +%F).db`,
		OnUsageError: usageHook,
		Action: func(c *cli.Context) error {
			a, err := args(c, 1, 1, "FILE")
			if err != nil {
				return err
			}
			n, err := writeBackup(c, a[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "wrote %s (%d bytes)\n", a[0], n)
			return nil
		},
	}
}

func writeBackup(c *cli.Context, path string) (int64, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return 0, usagef("%s is a directory: give a file name", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	// CreateTemp makes 0600 already; say so explicitly, whatever the umask.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return 0, err
	}
	n, err := client(c).Backup(c.Context, tmp)
	if err == nil && n == 0 {
		err = fmt.Errorf("the agent sent an empty backup")
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	return n, nil
}
