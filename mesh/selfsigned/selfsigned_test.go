package selfsigned

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"
)

func TestNew(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	certPEM, keyPEM, err := New("dogwood test", []string{"localhost", "127.0.0.1", "::", "", "h1.example"}, now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("certificate and key do not match: %v", err)
	}
	c, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject.CommonName != "dogwood test" {
		t.Errorf("common name %q", c.Subject.CommonName)
	}
	if !c.NotBefore.Equal(now.Add(-time.Hour)) || !c.NotAfter.Equal(now.Add(24*time.Hour)) {
		t.Errorf("validity %v – %v", c.NotBefore, c.NotAfter)
	}
	if len(c.DNSNames) != 2 || c.DNSNames[0] != "localhost" || c.DNSNames[1] != "h1.example" {
		t.Errorf("DNS names %v", c.DNSNames)
	}
	if len(c.IPAddresses) != 1 || c.IPAddresses[0].String() != "127.0.0.1" {
		t.Errorf("addresses %v (the unspecified address must be left out)", c.IPAddresses)
	}
	if err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
}
