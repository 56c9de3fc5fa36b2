// Package backup owns the host backup file: one tar archive that restores a
// host completely — its bbolt data file (identity, WireGuard key, catalog) and
// every other file of its data dir (the invite listener's certificate and
// book, the TLS API's certificate and key) — and the checks a restore makes
// before it writes anything. It reads and writes files; it knows nothing of
// the agent, its API or the catalog's contents.
//
// Format 1: a tar of regular files, mode 0600, named without directories;
// the last member is manifest.json with each file's size and SHA-256. A file
// that is not a tar but a bbolt file (what `dogwood backup` wrote before
// format 1) is read as a backup holding dogwood.db alone.
package backup

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Format is the version this package writes; Read refuses newer ones.
const Format = 1

// DataFile is the data dir's bbolt file, taken through a read transaction.
const DataFile = "dogwood.db"

const manifestName = "manifest.json"

// maxFile bounds the other files of a data dir (certificates, the invite
// book): a backup is not the place for anything larger.
const maxFile = 16 << 20

// Manifest describes a backup.
type Manifest struct {
	Format    int       `json:"format"`
	Host      string    `json:"host"`
	HostID    uint32    `json:"host_id"`
	CreatedAt time.Time `json:"created_at"`
	Files     []File    `json:"files"`
}

// File is one member of the archive.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Write writes a backup of dataDir to w: the data file through copyDB (a
// consistent copy), then every other regular file at the top of dataDir
// (temporary and hidden files left out), then the manifest. host and hostID
// only label it.
func Write(w io.Writer, dataDir string, copyDB func(io.Writer) (int64, error), host string, hostID uint32, now time.Time) error {
	tw := tar.NewWriter(w)
	m := Manifest{Format: Format, Host: host, HostID: hostID, CreatedAt: now.UTC()}
	// The data file's size is known only after the copy: spool it.
	spool, err := os.CreateTemp(dataDir, ".backup-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	if _, err := copyDB(spool); err != nil {
		return fmt.Errorf("copy %s: %w", DataFile, err)
	}
	if err := addFile(tw, &m, DataFile, spool, now); err != nil {
		return err
	}
	ents, err := os.ReadDir(dataDir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		n := e.Name()
		if n == DataFile || strings.HasPrefix(n, ".") || strings.HasSuffix(n, ".tmp") || !e.Type().IsRegular() {
			continue
		}
		f, err := os.Open(filepath.Join(dataDir, n))
		if err != nil {
			return err
		}
		err = addFile(tw, &m, n, f, now)
		f.Close()
		if err != nil {
			return err
		}
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := tw.WriteHeader(&tar.Header{Name: manifestName, Mode: 0o600, Size: int64(len(b)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := tw.Write(b); err != nil {
		return err
	}
	return tw.Close()
}

func addFile(tw *tar.Writer, m *Manifest, name string, f *os.File, now time.Time) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if name != DataFile && fi.Size() > maxFile {
		return fmt.Errorf("%s is %d bytes: more than a data dir file should hold", name, fi.Size())
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: fi.Size(), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tw, h), io.LimitReader(f, fi.Size()))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if n != fi.Size() {
		return fmt.Errorf("%s changed size while it was read", name)
	}
	m.Files = append(m.Files, File{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
	return nil
}

// Error is a backup file that cannot be restored, with why.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

func bad(format string, a ...any) error { return &Error{fmt.Sprintf(format, a...)} }

// Extract reads a backup from r into the empty directory stage (""
// checks it without writing anything) and checks it: every member named in the manifest with its size and checksum, nothing
// else, a data file present. A bbolt file (an older backup) is taken as the
// data file alone, with a manifest that says so (Format 0).
func Extract(r io.Reader, stage string) (Manifest, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	head, _ := br.Peek(512)
	if len(head) < 512 || !bytes.Equal(head[257:262], []byte("ustar")) {
		if isBolt(head) {
			return extractBolt(br, stage)
		}
		return Manifest{}, bad("not a Dogwood backup: neither a backup archive nor a data file")
	}
	tr := tar.NewReader(br)
	got := map[string]File{}
	var m *Manifest
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Manifest{}, bad("damaged backup archive: %v", err)
		}
		if m != nil {
			return Manifest{}, bad("damaged backup archive: %s after the manifest", h.Name)
		}
		if h.Typeflag != tar.TypeReg || h.Name != filepath.Base(h.Name) || strings.HasPrefix(h.Name, ".") || h.Name == "" {
			return Manifest{}, bad("backup archive holds %q, which is not a data dir file", h.Name)
		}
		if _, dup := got[h.Name]; dup {
			return Manifest{}, bad("backup archive holds %s twice", h.Name)
		}
		if h.Name == manifestName {
			var mm Manifest
			d := json.NewDecoder(io.LimitReader(tr, 1<<20))
			if err := d.Decode(&mm); err != nil {
				return Manifest{}, bad("backup manifest: %v", err)
			}
			m = &mm
			continue
		}
		if h.Name != DataFile && h.Size > maxFile {
			return Manifest{}, bad("backup archive: %s is %d bytes", h.Name, h.Size)
		}
		sum := sha256.New()
		n, err := copyOut(stage, h.Name, io.TeeReader(tr, sum))
		if err != nil {
			return Manifest{}, bad("backup archive: %s: %v (the file is cut short?)", h.Name, err)
		}
		got[h.Name] = File{Name: h.Name, Size: n, SHA256: hex.EncodeToString(sum.Sum(nil))}
	}
	if m == nil {
		return Manifest{}, bad("backup archive has no manifest: it is cut short or not a Dogwood backup")
	}
	if m.Format > Format {
		return Manifest{}, bad("backup format %d is from a newer release (this one reads up to %d): restore with that release", m.Format, Format)
	}
	var problems []string
	listed := map[string]bool{}
	for _, f := range m.Files {
		listed[f.Name] = true
		g, ok := got[f.Name]
		switch {
		case !ok:
			problems = append(problems, f.Name+" is missing")
		case g.Size != f.Size || g.SHA256 != f.SHA256:
			problems = append(problems, fmt.Sprintf("%s does not match its checksum (%d bytes, manifest %d)", f.Name, g.Size, f.Size))
		}
	}
	for n := range got {
		if !listed[n] {
			problems = append(problems, n+" is not in the manifest")
		}
	}
	if !listed[DataFile] {
		problems = append(problems, "it holds no "+DataFile)
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return Manifest{}, bad("damaged backup: %s", strings.Join(problems, "; "))
	}
	return *m, nil
}

// isBolt: a bbolt file's first page is a meta page whose magic 0xED0CDAED
// follows the 16-byte page header (little-endian on the hosts we build for).
func isBolt(head []byte) bool {
	return len(head) >= 20 && bytes.Equal(head[16:20], []byte{0xed, 0xda, 0x0c, 0xed})
}

func extractBolt(r io.Reader, stage string) (Manifest, error) {
	sum := sha256.New()
	n, err := copyOut(stage, DataFile, io.TeeReader(r, sum))
	if err != nil {
		return Manifest{}, err
	}
	return Manifest{Format: 0, Files: []File{{Name: DataFile, Size: n, SHA256: hex.EncodeToString(sum.Sum(nil))}}}, nil
}

// Install moves the files of a checked stage into dataDir. Whatever dataDir
// held is moved first into dataDir/.before-restore-TIME (returned), so a
// restore loses nothing; the caller has made sure no agent runs on dataDir.
func Install(stage, dataDir string, m Manifest, now time.Time) (aside string, err error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", err
	}
	ents, err := os.ReadDir(dataDir)
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		if e.Name() == filepath.Base(stage) || strings.HasPrefix(e.Name(), ".before-restore-") {
			continue
		}
		if aside == "" {
			aside = filepath.Join(dataDir, ".before-restore-"+now.UTC().Format("20060102T150405Z"))
			if err := os.Mkdir(aside, 0o700); err != nil {
				return "", err
			}
		}
		if err := os.Rename(filepath.Join(dataDir, e.Name()), filepath.Join(aside, e.Name())); err != nil {
			return aside, err
		}
	}
	for _, f := range m.Files {
		if err := os.Rename(filepath.Join(stage, f.Name), filepath.Join(dataDir, f.Name)); err != nil {
			return aside, err
		}
	}
	if d, err := os.Open(dataDir); err == nil {
		d.Sync()
		d.Close()
	}
	return aside, os.Chmod(dataDir, 0o700)
}

// IsBackupError reports whether err says the backup file itself is bad.
func IsBackupError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// copyOut writes one member to stage/name (synced), or reads it through when
// stage is "" (a check only).
func copyOut(stage, name string, r io.Reader) (int64, error) {
	if stage == "" {
		return io.Copy(io.Discard, r)
	}
	f, err := os.OpenFile(filepath.Join(stage, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}
