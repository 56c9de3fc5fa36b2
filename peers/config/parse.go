package config

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// ParseError is a problem at one line of a config file. Line is 1-based; 0
// means the problem is with the file as a whole (a missing section).
type ParseError struct {
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	if e.Line == 0 {
		return "wireguard config: " + e.Msg
	}
	return fmt.Sprintf("wireguard config: line %d: %s", e.Line, e.Msg)
}

// wgQuickOnly are [Interface] keys that only matter to wg-quick's own
// interface setup (routing table, hooks). They are accepted so a file that
// works with wg-quick also works with dogwood, and ignored because the
// userspace tunnel has no interface to apply them to.
var wgQuickOnly = map[string]bool{
	"table": true, "preup": true, "postup": true, "predown": true,
	"postdown": true, "saveconfig": true, "fwmark": true,
}

// Parse reads a WireGuard config in wg-quick syntax: "#" comments (whole line
// or trailing), case-insensitive section names and keys, free whitespace,
// repeated and comma-separated Address/DNS/AllowedIPs. It requires exactly
// one [Interface] and exactly one [Peer] (Dogwood peers talk to one gateway)
// and reports the offending line for anything malformed.
func Parse(data []byte) (Config, error) {
	var (
		c                      Config
		section                string
		ifaceLine, peerLine    int
		seen                   = map[string]int{} // "section.key" → line, for duplicates
		sawPriv, sawPub, sawEP bool
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 {
			text = strings.TrimPrefix(text, "\uFEFF") // editors on some OSes add a BOM
		}
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		perr := func(format string, args ...any) error {
			return &ParseError{Line: line, Msg: fmt.Sprintf(format, args...)}
		}
		if strings.HasPrefix(text, "[") {
			if !strings.HasSuffix(text, "]") {
				return Config{}, perr("malformed section header %q", text)
			}
			name := strings.ToLower(strings.TrimSpace(text[1 : len(text)-1]))
			switch name {
			case "interface":
				if ifaceLine != 0 {
					return Config{}, perr("second [Interface] section (first at line %d)", ifaceLine)
				}
				ifaceLine = line
			case "peer":
				if peerLine != 0 {
					return Config{}, perr("second [Peer] section (first at line %d): a Dogwood config has exactly one peer, its gateway", peerLine)
				}
				peerLine = line
			default:
				return Config{}, perr("unknown section %q (want [Interface] or [Peer])", text)
			}
			section = name
			continue
		}
		key, value, ok := strings.Cut(text, "=")
		if !ok {
			return Config{}, perr("expected \"Key = Value\", got %q", text)
		}
		key = strings.ToLower(strings.TrimSpace(key))
		value = strings.TrimSpace(value)
		if section == "" {
			return Config{}, perr("key %q outside of a section", key)
		}
		if key == "" {
			return Config{}, perr("empty key")
		}
		// List keys and hooks may repeat (wg-quick appends); scalar keys may not.
		list := key == "address" || key == "dns" || key == "allowedips" ||
			key == "preup" || key == "postup" || key == "predown" || key == "postdown"
		if first, dup := seen[section+"."+key]; dup && !list {
			return Config{}, perr("duplicate key %q (first at line %d)", key, first)
		}
		seen[section+"."+key] = line

		var err error
		switch section + "." + key {
		case "interface.privatekey":
			c.PrivateKey, err = parseKey(value)
			sawPriv = true
		case "interface.address":
			err = eachItem(value, func(s string) error {
				p, err := parsePrefix(s)
				if err == nil {
					c.Address = append(c.Address, p)
				}
				return err
			})
		case "interface.dns":
			err = eachItem(value, func(s string) error {
				if a, err := netip.ParseAddr(s); err == nil {
					c.DNS = append(c.DNS, a)
					return nil
				}
				if checkHost(s) != nil {
					return fmt.Errorf("%q is neither an address nor a search domain", s)
				}
				c.DNSSearch = append(c.DNSSearch, s)
				return nil
			})
		case "interface.mtu":
			c.MTU, err = parseInt(value, 576, 65535)
		case "interface.listenport":
			c.ListenPort, err = parseInt(value, 0, 65535)
		case "peer.publickey":
			c.PublicKey, err = parseKey(value)
			sawPub = true
		case "peer.presharedkey":
			c.PresharedKey, err = parseKey(value)
		case "peer.allowedips":
			err = eachItem(value, func(s string) error {
				p, err := parsePrefix(s)
				if err == nil {
					c.AllowedIPs = append(c.AllowedIPs, p.Masked())
				}
				return err
			})
		case "peer.endpoint":
			c.Endpoint, err = parseEndpoint(value)
			sawEP = true
		case "peer.persistentkeepalive":
			if strings.EqualFold(value, "off") {
				c.PersistentKeepalive = 0
			} else {
				c.PersistentKeepalive, err = parseInt(value, 0, 65535)
			}
		default:
			if section == "interface" && wgQuickOnly[key] {
				continue
			}
			return Config{}, perr("unknown key %q in [%s]", key, titleSection(section))
		}
		if err != nil {
			return Config{}, perr("bad %s: %v", key, err)
		}
	}
	if err := sc.Err(); err != nil {
		return Config{}, &ParseError{Line: line + 1, Msg: err.Error()}
	}

	switch {
	case ifaceLine == 0:
		return Config{}, &ParseError{Msg: "no [Interface] section"}
	case peerLine == 0:
		return Config{}, &ParseError{Msg: "no [Peer] section"}
	case !sawPriv:
		return Config{}, &ParseError{Line: ifaceLine, Msg: "[Interface] has no PrivateKey"}
	case len(c.Address) == 0:
		return Config{}, &ParseError{Line: ifaceLine, Msg: "[Interface] has no Address"}
	case !sawPub:
		return Config{}, &ParseError{Line: peerLine, Msg: "[Peer] has no PublicKey"}
	case len(c.AllowedIPs) == 0:
		return Config{}, &ParseError{Line: peerLine, Msg: "[Peer] has no AllowedIPs"}
	case !sawEP:
		// wg-quick allows a peer without endpoint (it waits to be
		// contacted), but a laptop behind NAT can never be reached first.
		return Config{}, &ParseError{Line: peerLine, Msg: "[Peer] has no Endpoint"}
	}
	return c, nil
}

func titleSection(s string) string {
	if s == "peer" {
		return "Peer"
	}
	return "Interface"
}

func eachItem(value string, f func(string) error) error {
	for _, item := range strings.Split(value, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			// wg-quick tolerates an empty value ("DNS =") but not holes in a list.
			if strings.TrimSpace(value) == "" {
				return nil
			}
			return fmt.Errorf("empty item in list %q", value)
		}
		if err := f(item); err != nil {
			return err
		}
	}
	return nil
}

func parseKey(s string) (wgtypes.Key, error) {
	k, err := wgtypes.ParseKey(s)
	if err != nil {
		// wgtypes' message mentions neither the value nor what is expected.
		return wgtypes.Key{}, fmt.Errorf("not a base64-encoded 32-byte key")
	}
	return k, nil
}

// parsePrefix accepts "addr/len" or a bare address (a host route, as wg-quick does).
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address/prefix", s)
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an address", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func parseEndpoint(s string) (string, error) {
	// Endpoint fills in a missing port for CLI input; a config file must say it.
	if _, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil || !strings.Contains(s, ":") {
		return "", fmt.Errorf("%q has no port", s)
	}
	return Endpoint(s, DefaultPort)
}

func parseInt(s string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%q is not an integer in %d-%d", s, lo, hi)
	}
	return n, nil
}
