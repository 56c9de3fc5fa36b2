package gossip

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/memberlist"
)

// Gossip keys change at run time the way Consul's `keyring` does it: install a new
// key on every host (all hosts then accept it), use it (every host encrypts with
// it), remove the old one. memberlist's Keyring is safe for concurrent use, so
// these methods take no lock of ours; a caller that persists the result (the
// agent rewrites its key file) does so after the change.

// keyring is the gossip keys of this host (memberlist's Keyring, nil when gossip
// runs unencrypted).
type keyring struct{ kr *memberlist.Keyring }

// errNoKeyring means gossip runs unencrypted (--insecure-no-gossip-key): there is
// no keyring to change.
var errNoKeyring = errors.New("gossip is not encrypted on this host: no keyring")

// errPrimaryKey refuses to remove the key this host encrypts with.
var errPrimaryKey = errors.New("this key is in use (it encrypts this host's gossip); `dogwood keyring use` another key first")

// errUnknownKey is an operation on a key this host does not have.
var errUnknownKey = errors.New("key not installed on this host")

// Keys returns this host's gossip keys, the primary (encrypting) one first.
func (r keyring) Keys() ([][]byte, error) {
	if r.kr == nil {
		return nil, errNoKeyring
	}
	return r.kr.GetKeys(), nil
}

// InstallKey adds a key that this host then accepts; installing a key twice is
// not an error.
func (r keyring) InstallKey(k []byte) error {
	if r.kr == nil {
		return errNoKeyring
	}
	return r.kr.AddKey(k)
}

// UseKey makes an installed key the one this host encrypts with.
func (r keyring) UseKey(k []byte) error {
	if r.kr == nil {
		return errNoKeyring
	}
	if !r.hasKey(k) {
		return errUnknownKey
	}
	return r.kr.UseKey(k)
}

// RemoveKey drops a key: messages sealed with it are no longer accepted. The
// primary key cannot be removed.
func (r keyring) RemoveKey(k []byte) error {
	if r.kr == nil {
		return errNoKeyring
	}
	if !r.hasKey(k) {
		return errUnknownKey
	}
	if string(r.kr.GetPrimaryKey()) == string(k) {
		return errPrimaryKey
	}
	return r.kr.RemoveKey(k)
}

func (r keyring) hasKey(k []byte) bool {
	for _, have := range r.kr.GetKeys() {
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
