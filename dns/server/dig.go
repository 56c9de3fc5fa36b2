package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/dns"

	"github.com/dogwood/dogwood/dns/qname"
	"github.com/dogwood/dogwood/mesh/catalog"
)

// ErrNoNetwork is returned by Dig for a network id the catalog does not have.
var ErrNoNetwork = errors.New("dns: no such network")

// Dig answers `dogwood dig --org ORG [--network NET] NAME [TYPE]`: it resolves name
// for network netID as a machine of that network would see it, bypassing scoping.
// .internal and 6PN reverse names come from the catalog (full answer, no
// truncation); other names go to the upstream resolvers.
func (s *Server) Dig(ctx context.Context, netID uint32, name string, qtype uint16) (*dns.Msg, error) {
	if !s.res.HasNetwork(netID) {
		return nil, fmt.Errorf("%w: %#x", ErrNoNetwork, netID)
	}
	fqdn := dns.Fqdn(name)
	if _, ok := dns.IsDomainName(fqdn); !ok || len(fqdn) > 254 {
		return nil, fmt.Errorf("dns: invalid name %q", name)
	}
	if m, ok := s.res.Query(netID, fqdn, qtype); ok {
		return m, nil
	}
	req := new(dns.Msg)
	req.SetQuestion(fqdn, qtype)
	req.SetEdns0(uint16(s.maxUDP), false)
	resp, err := s.fwd.Exchange(ctx, req, false)
	if err == nil && resp.Truncated {
		resp, err = s.fwd.Exchange(ctx, req, true)
	}
	if err != nil {
		return nil, fmt.Errorf("dns: %s: %w", fqdn, err)
	}
	return resp, nil
}

// NetworkID finds the id of an org's network by name ("" means "default"), for the
// API behind `dogwood dig --org ORG [--network NET]`.
func NetworkID(snap *catalog.Snapshot, org, network string) (uint32, error) {
	if network == "" {
		network = "default"
	}
	if n := snap.NetworkByName[catalog.NetworkKey(org, network)]; n != nil {
		return n.ID, nil
	}
	return 0, fmt.Errorf("%w: %s/%s", ErrNoNetwork, org, network)
}

// DefaultType picks the record type `dogwood dig NAME` asks for when none is given:
// what the name serves (TXT for listings, SRV for services, PTR for reverse names),
// AAAA otherwise.
func DefaultType(name string) uint16 {
	q := qname.Parse(name)
	switch q.Kind {
	case qname.VMs, qname.Regions, qname.Apps, qname.Peers, qname.Instances, qname.Records:
		return dns.TypeTXT
	case qname.Service:
		return dns.TypeSRV
	case qname.PTR:
		return dns.TypePTR
	case qname.Apex:
		return dns.TypeSOA
	}
	if q.Zone == qname.External && strings.HasSuffix(strings.ToLower(dns.Fqdn(name)), ".arpa.") {
		return dns.TypePTR
	}
	return dns.TypeAAAA
}

// ParseType parses a record type name ("AAAA", "txt", "TYPE65").
func ParseType(s string) (uint16, error) {
	u := strings.ToUpper(s)
	if t, ok := dns.StringToType[u]; ok {
		return t, nil
	}
	var n uint16
	if _, err := fmt.Sscanf(u, "TYPE%d", &n); err == nil && n > 0 {
		return n, nil
	}
	return 0, fmt.Errorf("unknown record type %q", s)
}

// Format prints a response the way dig does: header, flags and the question,
// answer, authority and additional sections. With short it prints only the answer
// values, one per line, like `dig +short`.
func Format(m *dns.Msg, short bool) string {
	var b strings.Builder
	if short {
		for _, rr := range m.Answer {
			b.WriteString(strings.TrimPrefix(rr.String(), rr.Header().String()))
			b.WriteByte('\n')
		}
		return b.String()
	}
	fmt.Fprintf(&b, ";; ->>HEADER<<- opcode: %s, status: %s, id: %d\n",
		dns.OpcodeToString[m.Opcode], rcodeLabel(m.Rcode), m.Id)
	var flags []string
	for _, f := range []struct {
		on   bool
		name string
	}{{m.Response, "qr"}, {m.Authoritative, "aa"}, {m.Truncated, "tc"}, {m.RecursionDesired, "rd"},
		{m.RecursionAvailable, "ra"}, {m.AuthenticatedData, "ad"}, {m.CheckingDisabled, "cd"}} {
		if f.on {
			flags = append(flags, f.name)
		}
	}
	extra := make([]dns.RR, 0, len(m.Extra))
	var opt *dns.OPT
	for _, rr := range m.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			opt = o
			continue
		}
		extra = append(extra, rr)
	}
	fmt.Fprintf(&b, ";; flags: %s; QUERY: %d, ANSWER: %d, AUTHORITY: %d, ADDITIONAL: %d\n",
		strings.Join(flags, " "), len(m.Question), len(m.Answer), len(m.Ns), len(m.Extra))
	if opt != nil {
		b.WriteString("\n;; OPT PSEUDOSECTION:\n")
		fmt.Fprintf(&b, "; EDNS: version: %d, flags:%s; udp: %d\n", opt.Version(), map[bool]string{true: " do", false: ""}[opt.Do()], opt.UDPSize())
		for _, o := range opt.Option {
			fmt.Fprintf(&b, "; %s\n", o.String())
		}
	}
	if len(m.Question) > 0 {
		b.WriteString("\n;; QUESTION SECTION:\n")
		for _, q := range m.Question {
			fmt.Fprintf(&b, ";%s\t\t%s\t%s\n", q.Name, dns.ClassToString[q.Qclass], typeString(q.Qtype))
		}
	}
	section := func(title string, rrs []dns.RR) {
		if len(rrs) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n;; %s SECTION:\n", title)
		for _, rr := range rrs {
			b.WriteString(rr.String())
			b.WriteByte('\n')
		}
	}
	section("ANSWER", m.Answer)
	section("AUTHORITY", m.Ns)
	section("ADDITIONAL", extra)
	return b.String()
}

func typeString(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return fmt.Sprintf("TYPE%d", t)
}
