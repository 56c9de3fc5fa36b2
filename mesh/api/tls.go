package api

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dogwood/dogwood/mesh/apiclient"

	"github.com/dogwood/dogwood/mesh/selfsigned"
)

// Self-signed certificate files the agent keeps in its data dir for the TCP API
// when the operator gives none.
const (
	CertFile = "api-cert.pem"
	KeyFile  = "api-key.pem"
)

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
	return cert, apiclient.Fingerprint(cert.Certificate[0]), nil
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
