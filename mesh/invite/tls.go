package invite

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/dogwood/dogwood/mesh/selfsigned"
)

// Identity is a gateway's TLS certificate for its invite listener and the pin
// codes carry. It is self-signed and kept in the data dir, so codes stay valid
// across restarts; nothing but a pin ever vouches for it.
type Identity struct {
	Cert tls.Certificate
	Pin  [32]byte
}

// LoadOrCreateIdentity reads the certificate and key at path (PEM, mode
// 0600), creating them on first use.
func LoadOrCreateIdentity(path, name string, now time.Time) (*Identity, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if data, err = newIdentityPEM(name, now); err != nil {
			return nil, err
		}
		if err := writeFileSync(path, data); err != nil {
			return nil, fmt.Errorf("invite TLS identity: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("invite TLS identity: %w", err)
	}
	cert, err := tls.X509KeyPair(data, data)
	if err != nil {
		return nil, fmt.Errorf("invite TLS identity %s: %w", path, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("invite TLS identity %s: %w", path, err)
	}
	cert.Leaf = leaf
	return &Identity{Cert: cert, Pin: sha256.Sum256(leaf.RawSubjectPublicKeyInfo)}, nil
}

func newIdentityPEM(name string, now time.Time) ([]byte, error) {
	// Clients check the pin, not dates; a long life keeps codes and clocks out
	// of each other's way.
	certPEM, keyPEM, err := selfsigned.New("dogwood invitations "+name, nil, now, 100*365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	return append(certPEM, keyPEM...), nil
}

// ErrPin means the server's certificate is not the one the code pins.
var ErrPin = errors.New("the gateway's TLS certificate does not match the one in the invite code (a different server answered, or the code was altered)")

// pinnedConfig is a TLS client config that trusts exactly the certificate
// whose public key hashes to pin.
func pinnedConfig(pin [32]byte) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Verification is the pin check below; there is no CA and no name.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrPin
			}
			if sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo) != pin {
				return ErrPin
			}
			return nil
		},
	}
}
