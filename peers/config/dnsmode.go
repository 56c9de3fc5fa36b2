package config

import (
	"fmt"
	"net/netip"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// DNSMode is how a peer config sends DNS queries (SPEC §6, --dns).
type DNSMode string

const (
	// DNSFull is SPEC §6's layout: a "DNS =" line, so wg-quick hands every
	// query of the laptop to the network's resolver (through resolvconf).
	DNSFull DNSMode = "full"
	// DNSSplit sends only .internal (and 6PN reverse names) to the network's
	// resolver, through systemd-resolved, and needs no resolvconf.
	DNSSplit DNSMode = "split"
	// DNSNone writes no DNS setting at all.
	DNSNone DNSMode = "none"
)

// ParseDNSMode reads a --dns value; "" is the default, full.
func ParseDNSMode(s string) (DNSMode, error) {
	switch DNSMode(s) {
	case "", DNSFull:
		return DNSFull, nil
	case DNSSplit, DNSNone:
		return DNSMode(s), nil
	}
	return "", fmt.Errorf("invalid DNS mode %q: full, split or none", s)
}

// reverseZone is the ip6.arpa zone of fdaa::/16, so that reverse lookups of
// 6PN addresses go to the network's resolver too in split mode.
const reverseZone = "a.a.d.f.ip6.arpa"

// SplitDNSPostUp returns the wg-quick PostUp commands of split mode: the
// network's resolver for the interface, used only for .internal and 6PN
// reverse names ("~" makes them routing-only domains, not search domains),
// and never as the default route for other names. systemd-resolved forgets
// all of it when the interface goes away, so no PostDown is needed.
func SplitDNSPostUp(server netip.Addr) []string {
	return []string{
		"resolvectl dns %i " + server.String(),
		"resolvectl domain %i ~internal ~" + reverseZone,
		"resolvectl default-route %i false",
	}
}

// SetDNSMode rewrites c's DNS settings for mode, with server as the
// network's resolver (fdaa:<net>::3).
func (c *Config) SetDNSMode(mode DNSMode, server netip.Addr) error {
	c.DNS, c.DNSSearch, c.PostUp = nil, nil, nil
	switch mode {
	case DNSFull, "":
		c.DNS = []netip.Addr{server}
	case DNSSplit:
		c.PostUp = SplitDNSPostUp(server)
	case DNSNone:
	default:
		return fmt.Errorf("invalid DNS mode %q: full, split or none", mode)
	}
	return nil
}

// WithoutPrivateKey turns c into a config for a key pair made elsewhere
// (`wireguard create --public-key`): the file carries pub in a comment where
// the private key belongs, and the user adds the key.
func (c *Config) WithoutPrivateKey(pub wgtypes.Key) {
	c.PrivateKey = wgtypes.Key{}
	c.LocalPublicKey = pub
}
