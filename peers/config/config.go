// Package config owns the WireGuard configuration file that `dogwood wireguard
// create` hands to a developer (SPEC §6): rendering it in the exact layout the
// SPEC fixes, parsing it back (tolerating what wg-quick tolerates, so a
// hand-edited file still works with `dogwood dig|ping|proxy --config`), writing
// it without ever clobbering an existing file, showing it as a terminal QR code,
// and generating the peer's key pair.
//
// The package does no networking and keeps no state; the CLI wires it together
// with the agent API and with package tunnel.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// DefaultPort is the WireGuard port used when an endpoint names no port.
const DefaultPort = 51820

// DefaultKeepalive is the PersistentKeepalive (seconds) Dogwood writes into
// peer configs: laptops sit behind NAT, and 15 s keeps the mapping open while
// staying well under common 30 s UDP NAT timeouts.
const DefaultKeepalive = 15

// Config is one developer peer's WireGuard configuration: the local
// [Interface] and the single gateway [Peer]. Slices hold wg-quick's
// comma-separated lists; Dogwood itself writes one Address, one DNS server and
// one AllowedIPs prefix.
type Config struct {
	// [Interface]
	PrivateKey wgtypes.Key
	// Address is the peer's own address with the prefix length of its
	// allocation (a /120 for Dogwood peers, SPEC §2).
	Address []netip.Prefix
	// DNS lists resolver addresses; for Dogwood the network's fdaa:<net>::3.
	DNS []netip.Addr
	// DNSSearch holds the non-address DNS entries (search domains), which
	// wg-quick allows in the DNS key. Rendered after the addresses.
	DNSSearch []string
	// PostUp holds wg-quick PostUp commands, rendered in order after DNS
	// (split DNS mode). Parse does not keep them: the userspace tunnel has
	// no interface to run them on.
	PostUp []string
	// LocalPublicKey, set only when PrivateKey is zero, is the public key of
	// a pair made elsewhere: the file then says where the private key goes
	// instead of carrying it.
	LocalPublicKey wgtypes.Key
	// MTU and ListenPort are optional (0 = not set) and only kept when a
	// hand-written file carries them.
	MTU        int
	ListenPort int

	// [Peer]: the gateway.
	PublicKey    wgtypes.Key
	PresharedKey wgtypes.Key // zero = none
	AllowedIPs   []netip.Prefix
	// Endpoint is host:port; IPv6 hosts are bracketed ("[2001:db8::1]:51820").
	// Use Endpoint() to normalise user input.
	Endpoint string
	// PersistentKeepalive in seconds; 0 = off (line omitted).
	PersistentKeepalive int
}

// PeerBits is the prefix length of a peer's address (SPEC §2: a /120).
const PeerBits = 120

// New builds the config Dogwood issues for a peer: its address with the /120
// (written unmasked, "…:a:2/120", as wg-quick needs the host address), the
// network's DNS server, the network's /48 as the only allowed prefix, and
// the default keepalive. endpoint is normalised with Endpoint (default port
// 51820).
func New(priv wgtypes.Key, addr netip.Addr, dns netip.Addr, gatewayPub wgtypes.Key, network netip.Prefix, endpoint string) (Config, error) {
	ep, err := Endpoint(endpoint, DefaultPort)
	if err != nil {
		return Config{}, err
	}
	c := Config{
		PrivateKey:          priv,
		Address:             []netip.Prefix{netip.PrefixFrom(addr, PeerBits)},
		DNS:                 []netip.Addr{dns},
		PublicKey:           gatewayPub,
		AllowedIPs:          []netip.Prefix{network.Masked()},
		Endpoint:            ep,
		PersistentKeepalive: DefaultKeepalive,
	}
	return c, c.Validate()
}

// Endpoint normalises a gateway endpoint given as "host", "host:port",
// "1.2.3.4", "2001:db8::1" (bare IPv6) or "[2001:db8::1]:port" into host:port
// with IPv6 in brackets, adding defaultPort when no port is given.
func Endpoint(s string, defaultPort int) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("empty endpoint")
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String(), nil
	}
	// A bare address, possibly bracketed; a bare IPv6 address would
	// otherwise be misread as host:port by SplitHostPort.
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return netip.AddrPortFrom(a.Unmap(), uint16(defaultPort)).String(), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Contains(s, ":") {
			return "", fmt.Errorf("bad endpoint %q: %v", s, err)
		}
		host, port = s, strconv.Itoa(defaultPort)
	}
	if err := checkHost(host); err != nil {
		return "", fmt.Errorf("bad endpoint %q: %v", s, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return "", fmt.Errorf("bad endpoint %q: port must be 1-65535", s)
	}
	return net.JoinHostPort(host, strconv.FormatUint(p, 10)), nil
}

func checkHost(h string) error {
	if h == "" {
		return errors.New("empty host")
	}
	for _, r := range h {
		if !(r == '-' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return fmt.Errorf("invalid character %q in host name", r)
		}
	}
	return nil
}

// Validate reports the first reason c cannot be rendered or used.
func (c Config) Validate() error {
	var zero wgtypes.Key
	switch {
	case c.PrivateKey == zero && c.LocalPublicKey == zero:
		return errors.New("missing private key")
	case len(c.Address) == 0:
		return errors.New("missing address")
	case c.PublicKey == zero:
		return errors.New("missing gateway public key")
	case len(c.AllowedIPs) == 0:
		return errors.New("missing allowed IPs")
	case c.Endpoint == "":
		return errors.New("missing endpoint")
	case c.PersistentKeepalive < 0 || c.PersistentKeepalive > 65535:
		return fmt.Errorf("persistent keepalive %d out of range 0-65535", c.PersistentKeepalive)
	case c.MTU < 0 || c.MTU > 65535:
		return fmt.Errorf("MTU %d out of range", c.MTU)
	case c.ListenPort < 0 || c.ListenPort > 65535:
		return fmt.Errorf("listen port %d out of range", c.ListenPort)
	}
	for _, p := range c.Address {
		if !p.IsValid() || p.Addr().Is4() && p.Bits() > 32 {
			return errors.New("invalid address")
		}
	}
	for _, a := range c.DNS {
		if !a.IsValid() {
			return errors.New("invalid DNS address")
		}
	}
	for _, d := range c.DNSSearch {
		if err := checkHost(d); err != nil {
			return fmt.Errorf("DNS search domain %q: %v", d, err)
		}
	}
	for _, cmd := range c.PostUp {
		if strings.ContainsAny(cmd, "\n\r#") {
			return fmt.Errorf("PostUp command %q has a newline or '#'", cmd)
		}
	}
	for _, p := range c.AllowedIPs {
		if !p.IsValid() {
			return errors.New("invalid allowed IP prefix")
		}
	}
	if _, err := Endpoint(c.Endpoint, DefaultPort); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(c.Endpoint); err != nil {
		return fmt.Errorf("endpoint %q is not host:port", c.Endpoint)
	}
	return nil
}

// Marshal renders c in the layout fixed by SPEC §6 (optional keys such as
// MTU appear only when set). The private key is in the output: treat it as
// a secret.
func Marshal(c Config) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("wireguard config: %w", err)
	}
	var b bytes.Buffer
	b.WriteString("[Interface]\n")
	if c.PrivateKey == (wgtypes.Key{}) {
		fmt.Fprintf(&b, "# PrivateKey = <the private key of %s>\n", c.LocalPublicKey)
		b.WriteString("# This file was made without the private key: replace the line above with it\n")
		b.WriteString("# (or keep the key in a file and add: PostUp = wg set %i private-key /path/to/key).\n")
	} else {
		fmt.Fprintf(&b, "PrivateKey = %s\n", c.PrivateKey)
	}
	if c.ListenPort != 0 {
		fmt.Fprintf(&b, "ListenPort = %d\n", c.ListenPort)
	}
	fmt.Fprintf(&b, "Address = %s\n", join(c.Address))
	if len(c.DNS)+len(c.DNSSearch) > 0 {
		dns := make([]string, 0, len(c.DNS)+len(c.DNSSearch))
		for _, a := range c.DNS {
			dns = append(dns, a.String())
		}
		dns = append(dns, c.DNSSearch...)
		fmt.Fprintf(&b, "DNS = %s\n", strings.Join(dns, ", "))
	}
	for _, cmd := range c.PostUp {
		fmt.Fprintf(&b, "PostUp = %s\n", cmd)
	}
	if c.MTU != 0 {
		fmt.Fprintf(&b, "MTU = %d\n", c.MTU)
	}
	b.WriteString("\n[Peer]\n")
	fmt.Fprintf(&b, "PublicKey = %s\n", c.PublicKey)
	if c.PresharedKey != (wgtypes.Key{}) {
		fmt.Fprintf(&b, "PresharedKey = %s\n", c.PresharedKey)
	}
	fmt.Fprintf(&b, "AllowedIPs = %s\n", join(c.AllowedIPs))
	fmt.Fprintf(&b, "Endpoint = %s\n", c.Endpoint)
	if c.PersistentKeepalive != 0 {
		fmt.Fprintf(&b, "PersistentKeepalive = %d\n", c.PersistentKeepalive)
	}
	return b.Bytes(), nil
}

func join(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}
