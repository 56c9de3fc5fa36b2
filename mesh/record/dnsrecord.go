package record

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// DNSRecord is a custom record in one network's .internal zone (`dogwood dns add`).
// Its key is DNSRecordKey(NetworkID, Name, Type, Value): one catalog record per
// (name, type, value), so adding and removing values of one name never conflict;
// ALIAS and CNAME, which have one value per name, key on (name, type) alone, so two
// hosts writing one name at once meet on one key and the merge order picks a winner.
// Name, Type and Value are stored in the canonical form NormalizeDNSRecord returns.
type DNSRecord struct {
	Org       string `json:"org"`
	Network   string `json:"network"`
	NetworkID uint32 `json:"network_id"`
	// Name is the owner name: lowercase, ending in ".internal", no final dot;
	// "*.dev.internal" is a wildcard (RFC 4592).
	Name string `json:"name"`
	// Type is one of DNSTypes.
	Type string `json:"type"`
	// Value is the canonical value: an address, a target name without its final dot,
	// the TXT text, or "PRIORITY WEIGHT PORT TARGET".
	Value     string    `json:"value"`
	TTL       uint32    `json:"ttl"`
	CreatedAt time.Time `json:"created_at"`
}

// DNSTypes are the custom record types.
func DNSTypes() []string { return []string{"AAAA", "A", "CNAME", "TXT", "SRV", "ALIAS"} }

// Limits of custom records.
const (
	// DefaultDNSTTL is the TTL of a record added without one (SPEC §4).
	DefaultDNSTTL = 5
	// MaxDNSTTL bounds --ttl: one day.
	MaxDNSTTL = 86400
	// MaxDNSName keeps record keys within the catalog's 255-byte key limit.
	MaxDNSName = 200
	// MaxTXT is the longest TXT value; it is served as strings of ≤255 bytes.
	MaxTXT = 4000
)

// DNSRecordKey is a custom record's catalog key.
func DNSRecordKey(netID uint32, name, typ, value string) string {
	if typ == "ALIAS" || typ == "CNAME" {
		return fmt.Sprintf("%08x/%s/%s", netID, name, typ)
	}
	f := fnv.New64a()
	f.Write([]byte(value))
	return fmt.Sprintf("%08x/%s/%s/%016x", netID, name, typ, f.Sum64())
}

// DNSRecordError is invalid custom-record input; the message says what to fix.
type DNSRecordError struct{ Msg string }

func (e *DNSRecordError) Error() string { return e.Msg }

func dnsErr(format string, a ...any) error {
	return &DNSRecordError{fmt.Sprintf(format, a...)}
}

// reservedLast are network-wide generated names: no custom name may end in them.
var reservedLast = map[string]bool{"_apps": true, "_peer": true, "_instances": true, "_records": true}

// reservedUnder are the grammar's words that, right under an app's label, spell a
// generated form (vms.<app>, all.vms.<app>, <id>.vm.<app>, top1.nearest.of.<app>, …).
// They are refused in that position whatever the last label is: an app of that name
// may exist on another host already, or be created later.
var reservedUnder = map[string]bool{"global": true, "vms": true, "regions": true, "all": true, "vm": true,
	"process": true, "of": true, "_metadata": true}

// NormalizeDNSName turns user input ("api", "api.internal", "API.internal.") into
// the canonical owner name and checks its shape. It does not know the apps of the
// network; the caller checks that the last label is not one of them.
func NormalizeDNSName(s string) (string, error) {
	name, err := normalizeInZone(s, "record name")
	if err != nil {
		return "", err
	}
	if name == "internal" {
		return "", dnsErr("record name %q: the zone apex internal. is Dogwood's own", s)
	}
	if len(name) > MaxDNSName {
		return "", dnsErr("record name %q is longer than %d characters", s, MaxDNSName)
	}
	labels := strings.Split(strings.TrimSuffix(name, ".internal"), ".")
	for i, l := range labels {
		if l == "*" {
			if i != 0 {
				return "", dnsErr("record name %q: '*' may only be the first label (a wildcard, *.dev.internal)", s)
			}
			continue
		}
		if err := checkLabel(s, l); err != nil {
			return "", err
		}
	}
	last := labels[len(labels)-1]
	switch {
	case last == "*":
		return "", dnsErr("record name %q: a wildcard directly under internal. would answer for every app not created yet; put it under a name (*.dev.internal)", s)
	case reservedLast[last]:
		return "", dnsErr("record name %q collides with Dogwood's generated name %s.internal", s, last)
	case len(labels) >= 2 && reservedUnder[labels[len(labels)-2]]:
		return "", dnsErr("record name %q has the shape of a generated name (%s.<app>.internal); choose another name", s, labels[len(labels)-2])
	}
	return name, nil
}

// DNSNameApp returns the label of a canonical record name that an app of the same
// network must not use: the last label before internal.
func DNSNameApp(name string) string {
	rest := strings.TrimSuffix(name, ".internal")
	return rest[strings.LastIndexByte(rest, '.')+1:]
}

// normalizeInZone lowercases, drops the final dot and appends .internal to names
// that do not end in it (names are relative to the zone).
func normalizeInZone(s, what string) (string, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return "", dnsErr("%s is empty", what)
	}
	if name != "internal" && !strings.HasSuffix(name, ".internal") {
		name += ".internal"
	}
	return name, nil
}

func checkLabel(input, l string) error {
	if l == "" {
		return dnsErr("%q has an empty label", input)
	}
	if len(l) > 63 {
		return dnsErr("%q has a label longer than 63 characters", input)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return dnsErr("%q: labels use letters, digits, '-' and '_' only", input)
		}
	}
	return nil
}

// normalizeTarget checks a target name (CNAME, SRV, ALIAS). A name without a dot is
// relative to internal.; other names are taken as absolute.
func normalizeTarget(s, what string) (string, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return "", dnsErr("%s is empty", what)
	}
	if !strings.Contains(name, ".") && name != "internal" {
		name += ".internal"
	}
	if len(name) > 253 {
		return "", dnsErr("%s %q is longer than 253 characters", what, s)
	}
	for _, l := range strings.Split(name, ".") {
		if err := checkLabel(s, l); err != nil {
			return "", err
		}
	}
	return name, nil
}

// InZone reports whether a canonical target name is under internal.
func InZone(name string) bool { return name == "internal" || strings.HasSuffix(name, ".internal") }

// NormalizeDNSRecord validates a record given as the user typed it and returns its
// canonical name, type and value. ttl < 0 means the default.
func NormalizeDNSRecord(name, typ, value string, ttl int) (DNSRecord, error) {
	var r DNSRecord
	n, err := NormalizeDNSName(name)
	if err != nil {
		return r, err
	}
	t := strings.ToUpper(strings.TrimSpace(typ))
	switch {
	case ttl < 0:
		ttl = DefaultDNSTTL
	case ttl > MaxDNSTTL:
		return r, dnsErr("ttl %d is above %d (one day)", ttl, MaxDNSTTL)
	}
	var v string
	switch t {
	case "AAAA", "A":
		a, err := netip.ParseAddr(strings.TrimSpace(value))
		if err != nil || a.Zone() != "" {
			return r, dnsErr("%s value %q is not an IP address", t, value)
		}
		if t == "AAAA" && (!a.Is6() || a.Is4In6()) {
			return r, dnsErr("AAAA value %q is not an IPv6 address (use A for IPv4)", value)
		}
		if t == "A" && !a.Is4() {
			return r, dnsErr("A value %q is not an IPv4 address (use AAAA for IPv6)", value)
		}
		v = a.String()
	case "CNAME":
		if v, err = normalizeTarget(value, "CNAME target"); err != nil {
			return r, err
		}
		if v == n {
			return r, dnsErr("CNAME %s points at itself", n)
		}
	case "ALIAS":
		// Always in-zone, so every target is relative: "ord.api" is ord.api.internal.
		if v, err = normalizeInZone(value, "ALIAS target"); err != nil {
			return r, err
		}
		if v == "internal" || strings.HasPrefix(v, "*.") {
			return r, dnsErr("ALIAS target %q must name an app or a name under .internal", value)
		}
		if v, err = normalizeTarget(v, "ALIAS target"); err != nil {
			return r, err
		}
		if v == n {
			return r, dnsErr("ALIAS %s points at itself", n)
		}
	case "TXT":
		v = value
		switch {
		case v == "":
			return r, dnsErr("TXT value is empty")
		case len(v) > MaxTXT:
			return r, dnsErr("TXT value is %d bytes, more than %d", len(v), MaxTXT)
		case !utf8.ValidString(v):
			return r, dnsErr("TXT value is not valid UTF-8")
		}
		for _, c := range v {
			if c < 0x20 || c == 0x7f {
				return r, dnsErr("TXT value contains a control character")
			}
		}
	case "SRV":
		f := strings.Fields(value)
		if len(f) != 4 {
			return r, dnsErr("SRV value %q: want \"PRIORITY WEIGHT PORT TARGET\", e.g. \"10 5 5432 db.example.com\"", value)
		}
		var nums [3]uint64
		for i, what := range []string{"priority", "weight", "port"} {
			x, err := strconv.ParseUint(f[i], 10, 16)
			if err != nil {
				return r, dnsErr("SRV %s %q is not a number 0-65535", what, f[i])
			}
			nums[i] = x
		}
		target := "."
		if f[3] != "." {
			if target, err = normalizeTarget(f[3], "SRV target"); err != nil {
				return r, err
			}
		}
		v = fmt.Sprintf("%d %d %d %s", nums[0], nums[1], nums[2], target)
	default:
		return r, dnsErr("record type %q: use one of %s", typ, strings.Join(DNSTypes(), ", "))
	}
	return DNSRecord{Name: n, Type: t, Value: v, TTL: uint32(ttl)}, nil
}

// ParseSRV splits a canonical SRV value.
func ParseSRV(v string) (prio, weight, port uint16, target string) {
	f := strings.Fields(v)
	if len(f) != 4 {
		return 0, 0, 0, "."
	}
	p, _ := strconv.ParseUint(f[0], 10, 16)
	w, _ := strconv.ParseUint(f[1], 10, 16)
	o, _ := strconv.ParseUint(f[2], 10, 16)
	return uint16(p), uint16(w), uint16(o), f[3]
}

// CheckDNSCoexist refuses a record that cannot live beside the network's existing
// records of the same name: a CNAME is the only record of its name (RFC 1034), an
// ALIAS owns its name's addresses, and the same value twice is a duplicate.
func CheckDNSCoexist(existing []*DNSRecord, r *DNSRecord) error {
	for _, e := range existing {
		if e.Name != r.Name {
			continue
		}
		switch {
		case e.Type == r.Type && e.Value == r.Value:
			return dnsErr("%s %s %s already exists", r.Name, r.Type, r.Value)
		case e.Type == "CNAME" || r.Type == "CNAME":
			return dnsErr("%s already has a %s record; a CNAME must be the only record of its name", r.Name, e.Type)
		case e.Type == "ALIAS" && r.Type == "ALIAS":
			return dnsErr("%s is already an ALIAS of %s; remove it first (dogwood dns remove %s ALIAS)", r.Name, e.Value, r.Name)
		case (e.Type == "ALIAS" && (r.Type == "A" || r.Type == "AAAA")) || (r.Type == "ALIAS" && (e.Type == "A" || e.Type == "AAAA")):
			return dnsErr("%s has %s records; an ALIAS and addresses cannot share a name", r.Name, e.Type)
		}
	}
	return nil
}

// check is what Record.Validate asks of a replicated body: it must be canonical.
func (d *DNSRecord) check(key string) error {
	if d.NetworkID == 0 {
		return errors.New("dns record without network")
	}
	n, err := NormalizeDNSRecord(d.Name, d.Type, d.Value, int(d.TTL))
	if err != nil {
		return err
	}
	if n.Name != d.Name || n.Type != d.Type || n.Value != d.Value {
		return errors.New("dns record not in canonical form")
	}
	if want := DNSRecordKey(d.NetworkID, d.Name, d.Type, d.Value); key != want {
		return fmt.Errorf("dns record key %q does not match body %q", key, want)
	}
	return nil
}
