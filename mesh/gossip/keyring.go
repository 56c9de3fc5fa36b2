package gossip

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Gossip keys change at run time the way Consul's `keyring` does it: install a new
// key on every host (all hosts then accept it), use it (every host encrypts with
// it), remove the old one. memberlist's Keyring is safe for concurrent use, so
// these methods take no lock of ours; a caller that persists the result (the
// agent rewrites its key file) does so after the change.

// ErrNoKeyring means gossip runs unencrypted (--insecure-no-gossip-key): there is
// no keyring to change.
var ErrNoKeyring = errors.New("gossip is not encrypted on this host: no keyring")

// ErrPrimaryKey refuses to remove the key this host encrypts with.
var ErrPrimaryKey = errors.New("this key is in use (it encrypts this host's gossip); `dogwood keyring use` another key first")

// ErrUnknownKey is an operation on a key this host does not have.
var ErrUnknownKey = errors.New("key not installed on this host")

// Keys returns this host's gossip keys, the primary (encrypting) one first.
func (g *Gossip) Keys() ([][]byte, error) {
	if g.keyring == nil {
		return nil, ErrNoKeyring
	}
	return g.keyring.GetKeys(), nil
}

// InstallKey adds a key that this host then accepts; installing a key twice is
// not an error.
func (g *Gossip) InstallKey(k []byte) error {
	if g.keyring == nil {
		return ErrNoKeyring
	}
	return g.keyring.AddKey(k)
}

// UseKey makes an installed key the one this host encrypts with.
func (g *Gossip) UseKey(k []byte) error {
	if g.keyring == nil {
		return ErrNoKeyring
	}
	if !g.hasKey(k) {
		return ErrUnknownKey
	}
	return g.keyring.UseKey(k)
}

// RemoveKey drops a key: messages sealed with it are no longer accepted. The
// primary key cannot be removed.
func (g *Gossip) RemoveKey(k []byte) error {
	if g.keyring == nil {
		return ErrNoKeyring
	}
	if !g.hasKey(k) {
		return ErrUnknownKey
	}
	if string(g.keyring.GetPrimaryKey()) == string(k) {
		return ErrPrimaryKey
	}
	return g.keyring.RemoveKey(k)
}

func (g *Gossip) hasKey(k []byte) bool {
	for _, have := range g.keyring.GetKeys() {
		if string(have) == string(k) {
			return true
		}
	}
	return false
}

// FormatKeyFile renders keys in the key file format ParseKeys reads: the primary
// first, one base64 key per line.
func FormatKeyFile(keys [][]byte) string {
	var b strings.Builder
	b.WriteString("# Gossip keys (dogwood keyring rewrites this file). The first encrypts;\n# every key listed is accepted.\n")
	for _, k := range keys {
		fmt.Fprintln(&b, base64.StdEncoding.EncodeToString(k))
	}
	return b.String()
}
