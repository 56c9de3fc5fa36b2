package invite

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"
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
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "dogwood invitations " + name},
		NotBefore:    now.Add(-time.Hour),
		// Clients check the pin, not dates; a long life keeps codes and
		// clocks out of each other's way.
		NotAfter:    now.Add(100 * 365 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	pem.Encode(&b, &pem.Block{Type: "PRIVATE KEY", Bytes: kb})
	return b.Bytes(), nil
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
