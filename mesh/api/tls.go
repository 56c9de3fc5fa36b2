package api

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dogwood/dogwood/mesh/selfsigned"
)

// Self-signed certificate files the agent keeps in its data dir for the TCP API
// when the operator gives none.
const (
	CertFile = "api-cert.pem"
	KeyFile  = "api-key.pem"
)

// Fingerprint is the SHA-256 of a certificate's DER, as "sha256:<hex>": what
// `dogwood status` prints and `--agent-fingerprint` pins.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// normalizeFingerprint accepts the forms people paste: with or without the
// "sha256:" prefix, with colons (openssl's form), any case.
func normalizeFingerprint(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.TrimPrefix(s, "sha256:")
	s = strings.TrimPrefix(s, "sha256 fingerprint=")
	s = strings.ReplaceAll(s, ":", "")
	if b, err := hex.DecodeString(s); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("invalid certificate fingerprint %q: want sha256:<64 hex digits> (see `dogwood status` on the agent's host)", s)
	}
	return "sha256:" + s, nil
}

// LoadOrCreateCert returns the TCP API's certificate: certFile/keyFile when given
// (both or neither), else a self-signed ECDSA certificate kept in dataDir (created
// on first use, key mode 0600) so its fingerprint stays the same across restarts.
func LoadOrCreateCert(dataDir, certFile, keyFile string, hosts []string) (tls.Certificate, string, error) {
	if (certFile == "") != (keyFile == "") {
		return tls.Certificate{}, "", errors.New("--api-tls-cert and --api-tls-key go together")
	}
	if certFile == "" {
		certFile, keyFile = filepath.Join(dataDir, CertFile), filepath.Join(dataDir, KeyFile)
		if _, err := os.Stat(certFile); errors.Is(err, os.ErrNotExist) {
			if err := writeSelfSigned(certFile, keyFile, hosts); err != nil {
				return tls.Certificate{}, "", fmt.Errorf("create the API certificate: %w", err)
			}
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("API certificate %s: %w", certFile, err)
	}
	return cert, Fingerprint(cert.Certificate[0]), nil
}

func writeSelfSigned(certFile, keyFile string, hosts []string) error {
	hosts = append([]string{"localhost", "127.0.0.1", "::1"}, hosts...)
	// Clients pin the fingerprint, so expiry buys nothing but an outage.
	certPEM, keyPEM, err := selfsigned.New("dogwood agent API", hosts, time.Now(), 20*365*24*time.Hour)
	if err != nil {
		return err
	}
	if err := writeFile(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	return writeFile(certFile, certPEM, 0o644)
}

// writeFile writes through a temporary file and a rename, so a crash never leaves
// half a key behind.
func writeFile(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// ClientTLS is how the CLI checks an agent's certificate: a pinned fingerprint, or
// a CA file, or (neither) the system's roots.
func ClientTLS(fingerprint, caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case fingerprint != "":
		want, err := normalizeFingerprint(fingerprint)
		if err != nil {
			return nil, err
		}
		// The pin replaces chain and name checks: it names one certificate exactly.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("agent sent no certificate")
			}
			if got := Fingerprint(cs.PeerCertificates[0].Raw); got != want {
				return fmt.Errorf("agent certificate fingerprint %s does not match --agent-fingerprint %s", got, want)
			}
			return nil
		}
	case caFile != "":
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--agent-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--agent-ca %s: no PEM certificate in it", caFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}
