package tunnel

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

var errNoAddress = errors.New("no AAAA records")

// ednsSize is the EDNS0 buffer Dig advertises: the DNS-flag-day value that
// avoids IP fragmentation; it also fits the tunnel's 1420-byte MTU.
const ednsSize = 1232

// Dig sends one query for name and qtype (dns.TypeAAAA, …) to the network's
// DNS server through the tunnel, over UDP, repeating it over TCP when the
// answer is truncated, as dig does. A DNS-level failure (NXDOMAIN, REFUSED)
// is returned as a message, not an error; errors mean no usable answer.
func (t *Tunnel) Dig(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	fqdn := dns.Fqdn(name)
	if _, ok := dns.IsDomainName(fqdn); !ok || strings.ContainsAny(name, " \t") {
		return nil, fmt.Errorf("invalid DNS name %q", name)
	}
	m := new(dns.Msg)
	m.SetQuestion(fqdn, qtype)
	m.RecursionDesired = true // forwarded names outside .internal need it
	m.SetEdns0(ednsSize, false)
	return t.Exchange(ctx, m)
}

// Exchange sends m to the tunnel's DNS servers in turn, with the UDP/TCP
// behaviour of Dig, and returns the first answer.
func (t *Tunnel) Exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	if len(t.dnsServer) == 0 {
		return nil, errors.New("the config names no DNS server")
	}
	var lastErr error
	for _, server := range t.dnsServer {
		for attempt := 0; attempt < 2; attempt++ {
			r, err := t.exchange(ctx, m, server, "udp")
			if err == nil && r.Truncated {
				t.log.Debug("truncated UDP answer, retrying over TCP", "server", server)
				r, err = t.exchange(ctx, m, server, "tcp")
			}
			if err == nil {
				return r, nil
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			lastErr = err
			t.log.Debug("DNS query failed", "server", server, "attempt", attempt+1, "err", err)
		}
	}
	return nil, fmt.Errorf("no answer from DNS server %s: %w", t.dnsServer[0], lastErr)
}

func (t *Tunnel) exchange(ctx context.Context, m *dns.Msg, server netip.Addr, network string) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, t.opts.DNSTimeout)
	defer cancel()
	addr := netip.AddrPortFrom(server, 53)
	co := new(dns.Conn)
	var err error
	switch network {
	case "udp":
		co.Conn, err = t.currentStack().DialUDP(ctx, addr)
	default:
		// Through a tunnel whose packets are dropped, the TCP handshake is what
		// times out: say which query it was for.
		co.Conn, err = t.currentStack().DialTCP(ctx, addr)
	}
	if err != nil {
		return nil, fmt.Errorf("%s query to %s: %w", strings.ToUpper(network), addr, err)
	}
	defer co.Close()
	client := &dns.Client{Net: network, Timeout: t.opts.DNSTimeout}
	r, _, err := client.ExchangeWithConnContext(ctx, m, co)
	if err != nil {
		return nil, fmt.Errorf("%s query to %s: %w", strings.ToUpper(network), addr, err)
	}
	return r, nil
}

// Resolve returns the IPv6 addresses of name through the tunnel's DNS (the
// 6PN is IPv6-only, so only AAAA is asked). A literal address, bracketed or
// not, is returned as is.
func (t *Tunnel) Resolve(ctx context.Context, name string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")); err == nil {
		return []netip.Addr{a}, nil
	}
	r, err := t.Dig(ctx, name, dns.TypeAAAA)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", name, err)
	}
	if r.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("resolving %s: %s", name, dns.RcodeToString[r.Rcode])
	}
	var out []netip.Addr
	for _, rr := range r.Answer {
		if aaaa, ok := rr.(*dns.AAAA); ok {
			if a, ok := netip.AddrFromSlice(aaaa.AAAA); ok {
				out = append(out, a)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("resolving %s: %w", name, errNoAddress)
	}
	return out, nil
}

// ExchangeOnce sends m once to the tunnel's first DNS server over network
// ("udp" or "tcp"), bounded by DNSTimeout: a check that must tell UDP from TCP
// and must not spend Exchange's retries (dogwood doctor on a gateway).
func (t *Tunnel) ExchangeOnce(ctx context.Context, m *dns.Msg, network string) (*dns.Msg, error) {
	if len(t.dnsServer) == 0 {
		return nil, errors.New("the config names no DNS server")
	}
	if network != "udp" && network != "tcp" {
		return nil, fmt.Errorf("network %q: want udp or tcp", network)
	}
	return t.exchange(ctx, m, t.dnsServer[0], network)
}
