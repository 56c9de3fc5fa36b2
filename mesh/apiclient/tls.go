package apiclient

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
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
