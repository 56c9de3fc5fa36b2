package schema

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// The name rules are matched by hand rather than with regexp: a bounded
// repetition like {0,61} compiles into 61 copies of its class, and eight of
// them compiled at package init cost every CLI call a millisecond of CPU.
var (
	reSlug    = nameRule{min: 1, max: 63, edge: lowerDigit, body: or(lowerDigit, is('-'))}
	reRegion  = nameRule{min: 2, max: 16, edge: lowerDigit, body: lowerDigit}
	reHost    = nameRule{min: 1, max: 63, edge: alnum, body: or(alnum, is('-'))}
	rePeer    = nameRule{min: 1, max: 63, edge: or(alnum, is('-')), body: or(alnum, is('-'))}
	reLabel   = nameRule{min: 1, max: 63, edge: lowerDigit, body: or(lowerDigit, is('_', '-'))}
	reMachine = nameRule{min: 14, max: 14, edge: hexDigit, body: hexDigit}
	reNetns   = nameRule{min: 1, max: 64, first: alnum, edge: or(alnum, is('_', '.', '-')), body: or(alnum, is('_', '.', '-'))}
	reRequest = nameRule{min: 1, max: 64, edge: or(alnum, is('_', '-')), body: or(alnum, is('_', '-'))}
)

// nameRule is a name of min..max bytes whose first and last bytes are in
// edge (the first in first, when set) and the others in body.
type nameRule struct {
	min, max          int
	first, edge, body func(byte) bool
}

// MatchString reports whether s follows the rule.
func (r nameRule) MatchString(s string) bool {
	if len(s) < r.min || len(s) > r.max {
		return false
	}
	first := r.first
	if first == nil {
		first = r.edge
	}
	for i := 0; i < len(s); i++ {
		ok := r.body
		switch {
		case i == 0:
			ok = first
		case i == len(s)-1:
			ok = r.edge
		}
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func lowerDigit(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }
func alnum(c byte) bool      { return lowerDigit(c) || 'A' <= c && c <= 'Z' }
func hexDigit(c byte) bool   { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

func is(cs ...byte) func(byte) bool {
	return func(c byte) bool { return strings.IndexByte(string(cs), c) >= 0 }
}

func or(a, b func(byte) bool) func(byte) bool { return func(c byte) bool { return a(c) || b(c) } }

// Names are DNS labels because they appear in .internal names; the messages spell the
// rule out so a user can fix the input without reading the source.
func checkSlug(what, s string) error {
	if !reSlug.MatchString(s) {
		return invalid("invalid %s %q: use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit", what, s)
	}
	return nil
}

// ValidOrg, ValidApp, … are exported for the CLI to check input before calling the agent.
func ValidOrg(s string) error     { return checkSlug("org slug", s) }
func ValidNetwork(s string) error { return checkSlug("network name", s) }
func ValidApp(s string) error     { return checkSlug("app name", s) }

func ValidRegion(s string) error {
	if !reRegion.MatchString(s) {
		return invalid("invalid region %q: use 2-16 lowercase letters and digits", s)
	}
	return nil
}

func ValidHostName(s string) error {
	if !reHost.MatchString(s) {
		return invalid("invalid host name %q: use 1-63 letters, digits and '-'", s)
	}
	return nil
}

// ValidRequestID checks a client request id (empty means none).
func ValidRequestID(s string) error {
	if s != "" && !reRequest.MatchString(s) {
		return invalid("invalid request id %q: use 1-64 letters, digits, '-' and '_'", s)
	}
	return nil
}

func ValidPeerName(s string) error {
	if !rePeer.MatchString(s) {
		return invalid("invalid peer name %q: use 1-63 letters, digits and '-'", s)
	}
	return nil
}

func ValidMachineID(s string) error {
	if !reMachine.MatchString(s) {
		return invalid("invalid machine id %q: machine ids are 14 lowercase hex digits", s)
	}
	return nil
}

func validLabel(what, s string) error {
	if !reLabel.MatchString(s) {
		return invalid("invalid %s %q: use 1-63 lowercase letters, digits, '-' and '_'", what, s)
	}
	return nil
}

func validNetns(s string) error {
	if !reNetns.MatchString(s) {
		return invalid("invalid network namespace %q", s)
	}
	return nil
}

// ParseService parses NAME:PROTO:PORT as given to --service.
func ParseService(s string) (catalog.Service, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return catalog.Service{}, invalid("invalid service %q: want NAME:PROTO:PORT, e.g. http:tcp:8080", s)
	}
	if err := checkSlug("service name", parts[0]); err != nil {
		return catalog.Service{}, err
	}
	proto := strings.ToLower(parts[1])
	if proto != "tcp" && proto != "udp" {
		return catalog.Service{}, invalid("invalid service %q: protocol must be tcp or udp", s)
	}
	port, err := strconv.Atoi(parts[2])
	if err != nil || port < 1 || port > 65535 {
		return catalog.Service{}, invalid("invalid service %q: port must be 1-65535", s)
	}
	return catalog.Service{Name: parts[0], Proto: proto, Port: uint16(port)}, nil
}

// ParseMetadata parses K=V as given to --metadata.
func ParseMetadata(s string) (string, string, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", invalid("invalid metadata %q: want KEY=VALUE", s)
	}
	if err := validLabel("metadata key", k); err != nil {
		return "", "", err
	}
	if err := validLabel("metadata value", v); err != nil {
		return "", "", err
	}
	return k, v, nil
}

// CheckMachineSpec checks a machine create's fields (the app's existence is the node's to check).
func CheckMachineSpec(s *MachineSpec) error {
	if err := ValidApp(s.App); err != nil {
		return err
	}
	if s.ProcessGroup != "" {
		if err := validLabel("process group", s.ProcessGroup); err != nil {
			return err
		}
	}
	for k, v := range s.Metadata {
		if err := validLabel("metadata key", k); err != nil {
			return err
		}
		if s.Attachment != nil && reCNIMeta.MatchString(v) {
			continue // Kubernetes pod names are DNS subdomains, not labels
		}
		if err := validLabel("metadata value", v); err != nil {
			return err
		}
	}
	for _, sv := range s.Services {
		if _, err := ParseService(fmt.Sprintf("%s:%s:%d", sv.Name, sv.Proto, sv.Port)); err != nil {
			return err
		}
	}
	if s.Netns != "" {
		if err := validNetns(s.Netns); err != nil {
			return err
		}
	}
	switch s.Source {
	case "", catalog.SourceCLI, catalog.SourceAPI:
	default:
		return invalid("invalid source %q: want cli or api (container runtimes' machines are made by the CNI plugin)", s.Source)
	}
	if a := s.Attachment; a != nil {
		return checkAttachment(s, a)
	}
	return nil
}

var (
	// CNI's rule for container ids and network names: alphanumerics, '_', '.', '-'.
	reCNIID = nameRule{min: 1, max: 255, first: alnum, edge: or(alnum, is('_', '.', '-')), body: or(alnum, is('_', '.', '-'))}
	// A DNS subdomain (Kubernetes pod names).
	reCNIMeta = nameRule{min: 1, max: 253, edge: lowerDigit, body: or(lowerDigit, is('.', '-'))}
)

func checkAttachment(s *MachineSpec, a *Attachment) error {
	if s.Netns != "" {
		return invalid("a container's machine takes its namespace from the attachment")
	}
	if !reCNIID.MatchString(a.ContainerID) {
		return invalid("invalid container id %q: use letters, digits, '_', '.' and '-'", a.ContainerID)
	}
	if !reCNIID.MatchString(a.Network) {
		return invalid("invalid CNI network name %q: use letters, digits, '_', '.' and '-'", a.Network)
	}
	if err := validIfname(a.Ifname); err != nil {
		return err
	}
	return validNetnsPath(a.Netns)
}

// validIfname checks an interface name as the kernel does (dev_valid_name).
func validIfname(s string) error {
	if s == "" || len(s) > 15 || s == "." || s == ".." || strings.ContainsAny(s, "/: \t\n\r\v\f\x00") {
		return invalid("invalid interface name %q: 1-15 characters, no '/', ':' or spaces", s)
	}
	return nil
}

// validNetnsPath checks a network namespace given as a path (CNI_NETNS): absolute,
// clean, and printable.
func validNetnsPath(p string) error {
	if len(p) < 2 || len(p) > 255 || p[0] != '/' || path.Clean(p) != p || strings.ContainsFunc(p, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		return invalid("invalid network namespace path %q: want an absolute, clean path like /run/netns/NAME or /proc/PID/ns/net", p)
	}
	return nil
}
