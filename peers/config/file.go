package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// IsStdout reports whether path means "print instead of writing a file"
// (SPEC §6: `-` or `stdout`). A file literally named stdout can still be
// written as ./stdout.
func IsStdout(path string) bool { return path == "-" || path == "stdout" }

// Check verifies, without leaving anything behind, that Write(path, …) can
// create the file: the path does not exist and its directory accepts a new
// file. The CLI calls it before registering the peer so that the common
// failures (typo in the directory, existing file) cost no registration.
// Write can still fail afterwards (disk full, a race); the CLI must then
// remove the peer.
func Check(path string) error {
	if IsStdout(path) {
		return nil
	}
	if path == "" {
		return errors.New("empty config file path")
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s already exists; refusing to overwrite it", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("checking %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("directory of %s: %w", path, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	// Creating a probe is the only honest test of writability: permission
	// bits say nothing about read-only mounts, ACLs or root.
	f, err := os.CreateTemp(dir, ".dogwood-check-*")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the probe's random name would only confuse
		}
		return fmt.Errorf("cannot create files in %s: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("removing probe file: %w", err)
	}
	return nil
}

// Write renders cfg and stores it at path with mode 0600, failing if path
// exists (O_EXCL: a peer's private key must never replace another one). A
// path of `-` or `stdout` prints to stdout instead. On failure no partial
// file is left behind.
func Write(path string, cfg Config, stdout io.Writer) error {
	data, err := Marshal(cfg)
	if err != nil {
		return err
	}
	return WriteBytes(path, data, stdout)
}

// WriteBytes is Write for an already rendered file.
func WriteBytes(path string, data []byte, stdout io.Writer) error {
	if IsStdout(path) {
		_, err := stdout.Write(data)
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists; refusing to overwrite it", path)
		}
		return err
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	// The umask can only remove bits from 0600, but a permissive default ACL
	// on the directory could add some: set the mode explicitly.
	if err := f.Chmod(0o600); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	// Sync before reporting success: the CLI treats success as "the peer
	// may stay registered", so the key must be on disk.
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// ReadFile parses the config file at path; errors name the file and line
// ("peer.conf: wireguard config: line 3: bad address: …").
func ReadFile(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	c, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
