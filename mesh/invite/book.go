package invite

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Invite is one invitation a gateway issued. The secret itself is not kept,
// only its Hash.
type Invite struct {
	Hash      string     `json:"hash"`
	Org       string     `json:"org"`
	Network   string     `json:"network"`
	Name      string     `json:"name"` // the peer it will create
	DNS       string     `json:"dns"`  // the config's DNS mode: full, split or none
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	UsedAt    *time.Time `json:"used_at,omitempty"`
	PublicKey string     `json:"public_key,omitempty"` // the key it was redeemed with
}

// Redemption failures. They are distinct so `join` can say exactly why.
var (
	ErrUnknown = errors.New("this invite code is not known to the gateway: it was revoked, or it was never issued here")
	ErrUsed    = errors.New("this invite code was already used: ask for a new one (`dogwood wireguard invite`)")
	ErrExpired = errors.New("this invite code has expired: ask for a new one (`dogwood wireguard invite`)")
)

// keepUsed is how long a used or expired invitation is remembered, so that a
// second attempt hears "already used" or "expired" rather than "unknown".
const keepUsed = 7 * 24 * time.Hour

// Book is a gateway's invitations, persisted in one JSON file (written to a
// temporary file, synced and renamed, so a crash leaves the old or the new
// book, never a torn one). It is safe for concurrent use; file writes happen
// outside the state lock, in order.
type Book struct {
	path string
	now  func() time.Time

	mu      sync.Mutex
	invites map[string]*Invite // by hash
	version uint64             // bumped by every change, under mu

	writeMu sync.Mutex
	written uint64 // the version on disk, under writeMu
}

// OpenBook loads the book at path (a missing file is an empty book).
func OpenBook(path string, now func() time.Time) (*Book, error) {
	if now == nil {
		now = time.Now
	}
	b := &Book{path: path, now: now, invites: map[string]*Invite{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("invitations: %w", err)
	}
	var list []*Invite
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("invitations: %s is corrupt: %v", path, err)
	}
	for _, inv := range list {
		if inv.Hash == "" {
			return nil, fmt.Errorf("invitations: %s has an entry without hash", path)
		}
		b.invites[inv.Hash] = inv
	}
	return b, nil
}

// Add records a new invitation; its name must not be pending already.
func (b *Book) Add(inv Invite) error {
	b.mu.Lock()
	b.pruneLocked()
	for _, x := range b.invites {
		if x.Org == inv.Org && x.Name == inv.Name && b.pendingLocked(x) {
			b.mu.Unlock()
			return fmt.Errorf("%w: an invitation for peer %q in org %q is pending", ErrNameTaken, inv.Name, inv.Org)
		}
	}
	b.invites[inv.Hash] = &inv
	b.mu.Unlock()
	return b.persist()
}

// ErrNameTaken means a pending invitation already uses the name.
var ErrNameTaken = errors.New("name taken")

func (b *Book) pendingLocked(x *Invite) bool {
	return x.UsedAt == nil && b.now().Before(x.ExpiresAt)
}

// Pending lists the invitations that can still be redeemed, of one org if set,
// sorted by org and name.
func (b *Book) Pending(org string) []Invite {
	b.mu.Lock()
	var out []Invite
	for _, x := range b.invites {
		if b.pendingLocked(x) && (org == "" || x.Org == org) {
			out = append(out, *x)
		}
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Org != out[j].Org {
			return out[i].Org < out[j].Org
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// PendingName reports whether a pending invitation will create peer name.
func (b *Book) PendingName(org, name string) bool {
	for _, x := range b.Pending(org) {
		if x.Name == name {
			return true
		}
	}
	return false
}

// Remove revokes the pending invitation for peer name in org; false when
// there is none.
func (b *Book) Remove(org, name string) (bool, error) {
	b.mu.Lock()
	found := false
	for h, x := range b.invites {
		if x.Org == org && x.Name == name && b.pendingLocked(x) {
			delete(b.invites, h)
			found = true
		}
	}
	b.mu.Unlock()
	if !found {
		return false, nil
	}
	return true, b.persist()
}

// Claim takes the invitation with this secret for redemption by publicKey:
// it is marked used on disk before Claim returns, so it can never create two
// peers, even across a crash. Call Release if the peer could not be created.
func (b *Book) Claim(secret [SecretLen]byte, publicKey string) (Invite, error) {
	h := Hash(secret)
	b.mu.Lock()
	x := b.invites[h]
	switch {
	case x == nil:
		b.mu.Unlock()
		return Invite{}, ErrUnknown
	case x.UsedAt != nil:
		b.mu.Unlock()
		return Invite{}, ErrUsed
	case !b.now().Before(x.ExpiresAt):
		b.mu.Unlock()
		return Invite{}, ErrExpired
	}
	t := b.now().UTC()
	x.UsedAt, x.PublicKey = &t, publicKey
	b.version++
	inv := *x
	b.mu.Unlock()
	if err := b.persist(); err != nil {
		b.Release(secret)
		return Invite{}, err
	}
	return inv, nil
}

// Check says what Claim would say of this secret, changing nothing: nil for a
// pending invitation. It is a hash and a map lookup, cheap enough to run before any
// rate limit so that forged codes from a source never lock out a real one.
func (b *Book) Check(secret [SecretLen]byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	x := b.invites[Hash(secret)]
	switch {
	case x == nil:
		return ErrUnknown
	case x.UsedAt != nil:
		return ErrUsed
	case !b.now().Before(x.ExpiresAt):
		return ErrExpired
	}
	return nil
}

// Release returns a claimed invitation to pending (its peer was not created).
func (b *Book) Release(secret [SecretLen]byte) error {
	b.mu.Lock()
	if x := b.invites[Hash(secret)]; x != nil {
		x.UsedAt, x.PublicKey = nil, ""
		b.version++
	}
	b.mu.Unlock()
	return b.persist()
}

// pruneLocked forgets invitations that expired or were used long ago.
func (b *Book) pruneLocked() {
	for h, x := range b.invites {
		if b.now().Sub(x.ExpiresAt) > keepUsed {
			delete(b.invites, h)
		}
	}
	b.version++
}

// persist writes the current state unless a newer one is already on disk.
func (b *Book) persist() error {
	b.mu.Lock()
	b.version++
	v := b.version
	list := make([]*Invite, 0, len(b.invites))
	for _, x := range b.invites {
		c := *x
		list = append(list, &c)
	}
	b.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].Hash < list[j].Hash })
	data, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	if v <= b.written {
		return nil
	}
	if err := writeFileSync(b.path, data); err != nil {
		return fmt.Errorf("invitations: %w", err)
	}
	b.written = v
	return nil
}

func writeFileSync(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".invites-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
