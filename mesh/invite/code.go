// Package invite owns developer invitations (SPEC §6): the single-use code an
// operator hands to a developer, the gateway's book of pending invitations
// (persisted, single use, expiry, revocation), the gateway's self-signed TLS
// identity that codes pin, the redemption server a gateway exposes on
// --invite-listen (rate-limited and bounded), and the client `dogwood
// wireguard join` uses. The laptop generates its key pair itself and sends only
// the public key, so no private key ever leaves it.
//
// The package knows nothing about the catalog: the gateway's agent supplies a
// Redeemer that creates the peer.
package invite

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// codePrefix starts every code: it names the format's version and makes a code
// recognisable in a chat message or a shell history.
const codePrefix = "dwinv1_"

// SecretLen is the length of a code's secret: 128 bits, beyond guessing even
// without the rate limit.
const SecretLen = 16

// Code is what an invitation code carries: where to redeem it, the gateway's
// certificate pin (SHA-256 of its SubjectPublicKeyInfo), and the secret.
type Code struct {
	Endpoint string // host:port of the gateway's invite listener
	Pin      [32]byte
	Secret   [SecretLen]byte
}

// ErrBadCode means a code is malformed, truncated or altered.
var ErrBadCode = errors.New("invalid invite code: it is truncated, mistyped or altered (copy the whole line `dogwood wireguard invite` printed)")

// Encode renders c as one line of URL-safe characters: the prefix, then
// base64 of pin, secret, endpoint and a 4-byte checksum, so a mistyped or
// altered code is caught before anything is sent.
func (c Code) Encode() string {
	b := make([]byte, 0, 32+SecretLen+len(c.Endpoint)+4)
	b = append(b, c.Pin[:]...)
	b = append(b, c.Secret[:]...)
	b = append(b, c.Endpoint...)
	sum := sha256.Sum256(append([]byte(codePrefix), b...))
	b = append(b, sum[:4]...)
	return codePrefix + base64.RawURLEncoding.EncodeToString(b)
}

// Decode parses a code, checking its checksum and endpoint.
func Decode(s string) (Code, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, codePrefix) {
		return Code{}, ErrBadCode
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s[len(codePrefix):])
	if err != nil || len(b) < 32+SecretLen+3+4 {
		return Code{}, ErrBadCode
	}
	body, sum := b[:len(b)-4], b[len(b)-4:]
	want := sha256.Sum256(append([]byte(codePrefix), body...))
	if string(want[:4]) != string(sum) {
		return Code{}, ErrBadCode
	}
	var c Code
	copy(c.Pin[:], body[:32])
	copy(c.Secret[:], body[32:32+SecretLen])
	c.Endpoint = string(body[32+SecretLen:])
	host, port, err := net.SplitHostPort(c.Endpoint)
	if p, perr := strconv.Atoi(port); err != nil || perr != nil || host == "" || p < 1 || p > 65535 {
		return Code{}, ErrBadCode
	}
	return c, nil
}

// Hash is how a gateway stores and looks up a secret: it never keeps the
// secret itself, so its book (and backups of it) cannot be redeemed.
func Hash(secret [SecretLen]byte) string {
	h := sha256.Sum256(secret[:])
	return hex.EncodeToString(h[:])
}

// PinOf formats a pin for messages.
func PinOf(p [32]byte) string { return fmt.Sprintf("sha256:%x", p[:8]) }
