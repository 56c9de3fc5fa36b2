// Package sixpn owns the 6PN address layout of SPEC §2: how network ids, host ids,
// machine fields and peer slots map to addresses inside fdaa::/16, and back.
//
//	16 bits | 32 bits    | 32 bits | 32 bits        | 16 bits
//	fdaa    | network id | host id | machine field  | low
//
// Everything here is pure arithmetic so it can be table-tested exhaustively.
package sixpn

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
)

// Prefix is fdaa::/16, the whole private space. (A function, not a variable, so no
// caller can move it.)
func Prefix() netip.Prefix { return netip.PrefixFrom(build(0, 0, 0, 0), 16) }

// MachineDNS is the DNS address machines use (network 0, host 0, low 3): fdaa::3.
func MachineDNS() netip.Addr { return build(0, 0, 0, 3) }

const (
	// MinMachineField is the first machine field a machine may get; lower values are
	// reserved for peers (0xa, 0xb, …) and services.
	MinMachineField uint32 = 0x10000
	// FirstPeerField is the machine field of a gateway's first 256 peers in a network.
	FirstPeerField uint32 = 0xa
	// PeersPerField is how many peer /120s fit into one machine field's /112.
	PeersPerField = 256
	// MaxPeerIndex bounds peer slots so peer fields never reach MinMachineField.
	MaxPeerIndex = int(MinMachineField-FirstPeerField) * PeersPerField
)

func build(net, host, field uint32, low uint16) netip.Addr {
	var b [16]byte
	b[0], b[1] = 0xfd, 0xaa
	binary.BigEndian.PutUint32(b[2:6], net)
	binary.BigEndian.PutUint32(b[6:10], host)
	binary.BigEndian.PutUint32(b[10:14], field)
	binary.BigEndian.PutUint16(b[14:16], low)
	return netip.AddrFrom16(b)
}

// NetworkPrefix is a network's /48.
func NetworkPrefix(net uint32) netip.Prefix {
	return netip.PrefixFrom(build(net, 0, 0, 0), 48)
}

// HostPrefix is everything one host routes for one network: a /80.
func HostPrefix(net, host uint32) netip.Prefix {
	return netip.PrefixFrom(build(net, host, 0, 0), 80)
}

// MachinePrefix is the /112 a machine owns.
func MachinePrefix(net, host, field uint32) netip.Prefix {
	return netip.PrefixFrom(build(net, host, field, 0), 112)
}

// MachineAddr is a machine's address, ::2 inside its /112.
func MachineAddr(net, host, field uint32) netip.Addr { return build(net, host, field, 2) }

// MachineGateway is the host side of a machine's veth, ::1 inside its /112.
func MachineGateway(net, host, field uint32) netip.Addr { return build(net, host, field, 1) }

// NetworkDNS is the network's DNS server as seen from peers: fdaa:<net>::3.
func NetworkDNS(net uint32) netip.Addr { return build(net, 0, 0, 3) }

// PeerField and PeerSlot split a peer index (0, 1, 2, …) into machine field and slot.
func PeerField(index int) uint32 { return FirstPeerField + uint32(index/PeersPerField) }

// PeerAddr is the address of a gateway's index-th peer in a network:
// fdaa:<net>:<gw>:0:a:<slot>02, the first 256 in field 0xa, then 0xb, …
func PeerAddr(net, gw uint32, index int) (netip.Addr, error) {
	if index < 0 || index >= MaxPeerIndex {
		return netip.Addr{}, fmt.Errorf("peer index %d out of range", index)
	}
	slot := uint16(index % PeersPerField)
	return build(net, gw, PeerField(index), slot<<8|0x02), nil
}

// PeerPrefix is the /120 a peer address sits in (what its config's Address names).
func PeerPrefix(addr netip.Addr) netip.Prefix {
	p, _ := addr.Prefix(120)
	return p
}

// PeerIndex is the inverse of PeerAddr for an address whose network and host match.
func PeerIndex(addr netip.Addr) (int, bool) {
	p, ok := Parse(addr)
	if !ok || p.Field < FirstPeerField || p.Field >= MinMachineField || p.Low&0xff != 0x02 {
		return 0, false
	}
	return int(p.Field-FirstPeerField)*PeersPerField + int(p.Low>>8), true
}

// Parts are the fields of a 6PN address.
type Parts struct {
	Net, Host, Field uint32
	Low              uint16
}

// Parse splits a 6PN address; ok is false outside fdaa::/16.
func Parse(a netip.Addr) (Parts, bool) {
	if !a.Is6() || a.Is4In6() || !Prefix().Contains(a) {
		return Parts{}, false
	}
	b := a.As16()
	return Parts{
		Net:   binary.BigEndian.Uint32(b[2:6]),
		Host:  binary.BigEndian.Uint32(b[6:10]),
		Field: binary.BigEndian.Uint32(b[10:14]),
		Low:   binary.BigEndian.Uint16(b[14:16]),
	}, true
}

// NetworkOf is the network id of a 6PN address or prefix of length ≥ 48.
func NetworkOf(a netip.Addr) (uint32, bool) {
	p, ok := Parse(a)
	return p.Net, ok
}

// Random32 returns a random non-zero 32-bit id (host ids, network ids).
func Random32() uint32 {
	for {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			panic(err) // crypto/rand never fails on Linux ≥ 3.17
		}
		if v := binary.BigEndian.Uint32(b[:]); v != 0 {
			return v
		}
	}
}

// RandomMachineField returns a random field in 0x10000..0xffffffff.
func RandomMachineField() uint32 {
	for {
		if v := Random32(); v >= MinMachineField {
			return v
		}
	}
}

// NewMachineID returns 14 lowercase hex digits.
func NewMachineID() string {
	var b [7]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// ErrNotSixPN is returned by parsers for addresses outside fdaa::/16.
var ErrNotSixPN = errors.New("not a 6PN address (fdaa::/16)")
