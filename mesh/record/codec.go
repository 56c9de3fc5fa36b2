package record

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"time"

	"github.com/dogwood/dogwood/mesh/sixpn"
)

// The binary record encoding is what records cost on the wire and on disk: JSON spells
// every field name and every byte of a key twice, so a machine record took ~330 bytes
// as JSON and takes ~110 here. The first byte is the format, never '{' (0x7b), so a
// reader can tell it from the JSON an older agent wrote.
//
// Layout (integers are unsigned varints unless noted):
//
//	format(1) kind(1) key(str) gen created.clock created.node
//	version.clock-created.clock version.node flags(1) [deletedAt(svarint)] bodies(1) body…
//
// A string is its length plus one, then its bytes; 0 stands for "the record's key",
// which a body repeats (a machine's id, a host's name). bodies is a bit set, bit k-1
// for a body of kind k, so a record that (invalidly) carries two bodies still
// round-trips, and Validate, not the decoder, refuses it.
const codecFormat = 0x01

// Flag bits.
const (
	flagDeleted     = 1 << 0
	flagDeletedAt   = 1 << 1
	flagVersionBack = 1 << 2 // version clock below created clock: stored as created - version
)

// Address tags.
const (
	addrNone    = 0
	addrDerived = 1 // a machine's address, from its network, host and field
	addrV4      = 4
	addrV6      = 16
)

// Public-key tags: WireGuard keys are 32 bytes spelled in base64; keep the 32 bytes.
const (
	keyText = 0
	keyRaw  = 1
)

// Machine states get a byte each; anything else is spelled out.
const (
	stateOther   = 0
	stateStarted = 1
	stateStopped = 2
)

// ErrCodec is what DecodeRecord's errors wrap: the input is not a record this
// agent can read.
var ErrCodec = errors.New("malformed binary record")

// AppendRecord appends r's binary encoding to b.
func AppendRecord(b []byte, r *Record) []byte {
	e := encoder{b: b, key: r.Key}
	e.byte(codecFormat)
	e.byte(byte(r.Kind))
	e.b = appendStr(e.b, r.Key)
	e.uint(uint64(r.Gen))
	e.uint(r.Created.Clock)
	e.uint(uint64(r.Created.Node))
	var flags byte
	if r.Deleted {
		flags |= flagDeleted
	}
	if r.DeletedAt != 0 {
		flags |= flagDeletedAt
	}
	if r.Version.Clock < r.Created.Clock {
		flags |= flagVersionBack
		e.uint(r.Created.Clock - r.Version.Clock)
	} else {
		e.uint(r.Version.Clock - r.Created.Clock)
	}
	e.uint(uint64(r.Version.Node))
	e.byte(flags)
	if r.DeletedAt != 0 {
		e.b = binary.AppendVarint(e.b, r.DeletedAt)
	}
	var bodies byte
	set := [...]bool{r.Host != nil, r.Org != nil, r.Network != nil, r.App != nil, r.Machine != nil, r.Peer != nil, r.DNS != nil}
	for i, ok := range set {
		if ok {
			bodies |= 1 << i
		}
	}
	e.byte(bodies)
	if h := r.Host; h != nil {
		e.str(h.Name)
		e.uint(uint64(h.ID))
		e.str(h.Region)
		e.addr(h.Addr)
		e.uint(uint64(h.GossipPort))
		e.uint(uint64(h.WGPort))
		e.pubkey(h.PublicKey)
		e.bool(h.Gateway)
		e.str(h.PublicEndpoint)
	}
	if o := r.Org; o != nil {
		e.str(o.Slug)
		e.time(o.CreatedAt)
	}
	if n := r.Network; n != nil {
		e.str(n.Org)
		e.str(n.Name)
		e.uint(uint64(n.ID))
	}
	if a := r.App; a != nil {
		e.str(a.Name)
		e.str(a.Org)
		e.str(a.Network)
		e.uint(uint64(a.NetworkID))
		e.str(appRequestID(a)) // ext.go
	}
	if m := r.Machine; m != nil {
		e.machine(m)
	}
	if p := r.Peer; p != nil {
		e.str(p.Name)
		e.str(p.Org)
		e.str(p.Network)
		e.uint(uint64(p.NetworkID))
		e.str(p.Region)
		e.str(p.Gateway)
		e.uint(uint64(p.GatewayID))
		e.addr(p.Address)
		e.pubkey(p.PublicKey)
		e.time(p.CreatedAt)
		e.bool(p.ExpiresAt != nil)
		if p.ExpiresAt != nil {
			e.time(*p.ExpiresAt)
		}
		e.str(p.RequestID)
	}
	if d := r.DNS; d != nil {
		e.str(d.Org)
		e.str(d.Network)
		e.uint(uint64(d.NetworkID))
		e.str(d.Name)
		e.str(d.Type)
		e.str(d.Value)
		e.uint(uint64(d.TTL))
		e.time(d.CreatedAt)
	}
	return e.b
}

func (e *encoder) machine(m *Machine) {
	if m.MachinePlace == nil || m.MachineAttrs == nil {
		// A hand-built machine may leave them out: encode them as empty.
		c := *m
		if c.MachinePlace == nil {
			c.MachinePlace = &MachinePlace{}
		}
		if c.MachineAttrs == nil {
			c.MachineAttrs = &MachineAttrs{}
		}
		m = &c
	}
	e.str(m.ID)
	e.str(m.App)
	e.str(m.Org)
	e.str(m.Network)
	e.uint(uint64(m.NetworkID))
	e.str(m.Host)
	e.uint(uint64(m.HostID))
	e.str(m.Region)
	e.uint(uint64(m.Field))
	if m.Address.IsValid() && m.Address == sixpn.MachineAddr(m.NetworkID, m.HostID, m.Field) {
		e.byte(addrDerived)
	} else {
		e.addr(m.Address)
	}
	switch m.State {
	case StateStarted:
		e.byte(stateStarted)
	case StateStopped:
		e.byte(stateStopped)
	default:
		e.byte(stateOther)
		e.str(m.State)
	}
	e.str(m.ProcessGroup)
	md := machineMetadata(m.MachineAttrs) // with health and checks (ext.go)
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	e.uint(uint64(len(keys)))
	for _, k := range keys {
		e.str(k)
		e.str(md[k])
	}
	e.uint(uint64(len(m.Services)))
	for _, s := range m.Services {
		e.str(s.Name)
		e.str(s.Proto)
		e.uint(uint64(s.Port))
	}
	e.str(m.Netns)
	e.time(m.CreatedAt)
	e.str(m.RequestID)
}

// AppendRecords appends a count and then each record.
func AppendRecords(b []byte, rs []*Record) []byte {
	b = binary.AppendUvarint(b, uint64(len(rs)))
	for _, r := range rs {
		b = AppendRecord(b, r)
	}
	return b
}

// DecodeRecords decodes what AppendRecords wrote; all of b must be used.
func DecodeRecords(b []byte) ([]*Record, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, fmt.Errorf("%w: record count", ErrCodec)
	}
	b = b[k:]
	// Every record takes at least a few bytes: a count beyond that is a lie, and
	// must not size an allocation.
	if n > uint64(len(b)/4) {
		return nil, fmt.Errorf("%w: %d records in %d bytes", ErrCodec, n, len(b))
	}
	out := make([]*Record, 0, n)
	for i := uint64(0); i < n; i++ {
		r, used, err := DecodeRecord(b)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		out = append(out, r)
		b = b[used:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the records", ErrCodec, len(b))
	}
	return out, nil
}

// DecodeRecord decodes one record from the front of b and returns it with the number
// of bytes it took. It checks the encoding only; callers still Validate the record.
func DecodeRecord(b []byte) (*Record, int, error) {
	d := decoder{b: b}
	if f := d.byte(); d.err == nil && f != codecFormat {
		return nil, 0, fmt.Errorf("%w: format %#x", ErrCodec, f)
	}
	r := &Record{Kind: Kind(d.byte())}
	r.Key = d.rawStr()
	d.key = r.Key
	r.Gen = d.u32()
	r.Created.Clock = d.uint()
	r.Created.Node = d.u32()
	delta := d.uint()
	r.Version.Node = d.u32()
	flags := d.byte()
	if flags&flagVersionBack != 0 {
		if delta > r.Created.Clock {
			d.fail("version clock below zero")
		}
		r.Version.Clock = r.Created.Clock - delta
	} else {
		if delta > math.MaxUint64-r.Created.Clock {
			d.fail("version clock overflows")
		}
		r.Version.Clock = r.Created.Clock + delta
	}
	r.Deleted = flags&flagDeleted != 0
	if flags&flagDeletedAt != 0 {
		r.DeletedAt = d.svarint()
	}
	if flags&^(flagDeleted|flagDeletedAt|flagVersionBack) != 0 {
		d.fail("unknown flags")
	}
	bodies := d.byte()
	if bodies&0x80 != 0 {
		d.fail("unknown body")
	}
	if bodies&(1<<0) != 0 {
		r.Host = &Host{Name: d.str(), ID: d.u32(), Region: d.str(), Addr: d.addr(), GossipPort: d.u16(),
			WGPort: d.u16(), PublicKey: d.pubkey(), Gateway: d.bool(), PublicEndpoint: d.str()}
	}
	if bodies&(1<<1) != 0 {
		r.Org = &Org{Slug: d.str(), CreatedAt: d.time()}
	}
	if bodies&(1<<2) != 0 {
		r.Network = &Network{Org: d.str(), Name: d.str(), ID: d.u32()}
	}
	if bodies&(1<<3) != 0 {
		r.App = &App{Name: d.str(), Org: d.str(), Network: d.str(), NetworkID: d.u32(), RequestID: d.str()}
		liftAppExt(r.App)
	}
	if bodies&(1<<4) != 0 {
		r.Machine = d.machine()
	}
	if bodies&(1<<5) != 0 {
		p := &Peer{Name: d.str(), Org: d.str(), Network: d.str(), NetworkID: d.u32(), Region: d.str(),
			Gateway: d.str(), GatewayID: d.u32(), Address: d.addr(), PublicKey: d.pubkey(), CreatedAt: d.time()}
		if d.bool() {
			t := d.time()
			p.ExpiresAt = &t
		}
		p.RequestID = d.str()
		r.Peer = p
	}
	if bodies&(1<<6) != 0 {
		r.DNS = &DNSRecord{Org: d.str(), Network: d.str(), NetworkID: d.u32(), Name: d.str(), Type: d.str(),
			Value: d.str(), TTL: d.u32(), CreatedAt: d.time()}
	}
	if d.err != nil {
		return nil, 0, d.err
	}
	return r, d.off, nil
}

func (d *decoder) machine() *Machine {
	m := &Machine{ID: d.str(), MachinePlace: &MachinePlace{App: d.str(), Org: d.str(), Network: d.str(), NetworkID: d.u32(),
		Host: d.str(), HostID: d.u32(), Region: d.str()}, Field: d.u32(), MachineAttrs: &MachineAttrs{}}
	if d.peek() == addrDerived {
		d.byte()
		m.Address = sixpn.MachineAddr(m.NetworkID, m.HostID, m.Field)
	} else {
		m.Address = d.addr()
	}
	switch d.byte() {
	case stateStarted:
		m.State = StateStarted
	case stateStopped:
		m.State = StateStopped
	case stateOther:
		m.State = d.str()
	default:
		d.fail("unknown machine state")
	}
	m.ProcessGroup = d.str()
	if n := d.count(2); n > 0 {
		m.Metadata = make(map[string]string, n)
		for i := 0; i < n; i++ {
			k := d.str()
			m.Metadata[k] = d.str()
		}
	}
	if n := d.count(3); n > 0 {
		m.Services = make([]Service, n)
		for i := range m.Services {
			m.Services[i] = Service{Name: d.str(), Proto: d.str(), Port: d.u16()}
		}
	}
	liftMachineExt(m.MachineAttrs)
	m.Netns = d.str()
	m.CreatedAt = d.time()
	m.RequestID = d.str()
	return m
}

type encoder struct {
	b   []byte
	key string
}

func (e *encoder) byte(v byte)   { e.b = append(e.b, v) }
func (e *encoder) uint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }

func (e *encoder) bool(v bool) {
	if v {
		e.byte(1)
	} else {
		e.byte(0)
	}
}

func (e *encoder) str(s string) {
	if s != "" && s == e.key {
		e.byte(0)
		return
	}
	e.b = appendStr(e.b, s)
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s))+1)
	return append(b, s...)
}

func (e *encoder) addr(a netip.Addr) {
	switch {
	case !a.IsValid():
		e.byte(addrNone)
	case a.Is4():
		e.byte(addrV4)
		v := a.As4()
		e.b = append(e.b, v[:]...)
	default:
		e.byte(addrV6)
		v := a.As16()
		e.b = append(e.b, v[:]...)
	}
}

func (e *encoder) pubkey(k string) {
	if raw, err := base64.StdEncoding.DecodeString(k); err == nil && len(raw) == 32 && base64.StdEncoding.EncodeToString(raw) == k {
		e.byte(keyRaw)
		e.b = append(e.b, raw...)
		return
	}
	e.byte(keyText)
	e.b = appendStr(e.b, k)
}

// time keeps seconds and nanoseconds since the Unix epoch; the location is not kept
// (records are compared by stamps, and shown in UTC).
func (e *encoder) time(t time.Time) {
	e.b = binary.AppendVarint(e.b, t.Unix())
	e.uint(uint64(t.Nanosecond()))
}

type decoder struct {
	b   []byte
	off int
	key string
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at byte %d", ErrCodec, what, d.off)
	}
	d.off = len(d.b)
}

func (d *decoder) peek() byte {
	if d.err != nil || d.off >= len(d.b) {
		return 0xff
	}
	return d.b[d.off]
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("truncated")
		return 0
	}
	v := d.b[d.off]
	d.off++
	return v
}

func (d *decoder) uint() uint64   { return readVarint(d, binary.Uvarint) }
func (d *decoder) svarint() int64 { return readVarint(d, binary.Varint) }

func readVarint[T uint64 | int64](d *decoder, read func([]byte) (T, int)) T {
	if d.err != nil {
		return 0
	}
	v, n := read(d.b[d.off:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) u32() uint32 {
	v := d.uint()
	if v > math.MaxUint32 {
		d.fail("value exceeds 32 bits")
	}
	return uint32(v)
}

func (d *decoder) u16() uint16 {
	v := d.uint()
	if v > math.MaxUint16 {
		d.fail("value exceeds 16 bits")
	}
	return uint16(v)
}

func (d *decoder) bool() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail("bad bool")
	return false
}

// count reads an element count, each element at least min bytes long.
func (d *decoder) count(min int) int {
	n := d.uint()
	if n > uint64((len(d.b)-d.off)/min) {
		d.fail("count beyond the input")
		return 0
	}
	return int(n)
}

// str reads a string, where 0 is the record's key.
func (d *decoder) str() string {
	if d.peek() == 0 {
		d.byte()
		if d.key == "" {
			d.fail("key reference without a key")
		}
		return d.key
	}
	return d.rawStr()
}

func (d *decoder) rawStr() string {
	n := d.uint()
	if d.err != nil {
		return ""
	}
	if n == 0 || n-1 > uint64(len(d.b)-d.off) {
		d.fail("bad string length")
		return ""
	}
	s := string(d.b[d.off : d.off+int(n-1)])
	d.off += int(n - 1)
	return s
}

func (d *decoder) addr() netip.Addr {
	switch d.byte() {
	case addrNone:
		return netip.Addr{}
	case addrV4:
		var v [4]byte
		d.bytes(v[:])
		return netip.AddrFrom4(v)
	case addrV6:
		var v [16]byte
		d.bytes(v[:])
		return netip.AddrFrom16(v)
	}
	d.fail("bad address tag")
	return netip.Addr{}
}

func (d *decoder) bytes(dst []byte) {
	if d.err != nil {
		return
	}
	if len(d.b)-d.off < len(dst) {
		d.fail("truncated")
		return
	}
	copy(dst, d.b[d.off:])
	d.off += len(dst)
}

func (d *decoder) pubkey() string {
	switch d.byte() {
	case keyRaw:
		var k [32]byte
		d.bytes(k[:])
		if d.err != nil {
			return ""
		}
		return base64.StdEncoding.EncodeToString(k[:])
	case keyText:
		return d.rawStr()
	}
	d.fail("bad key tag")
	return ""
}

func (d *decoder) time() time.Time {
	s := d.svarint()
	ns := d.uint()
	if ns >= 1e9 {
		d.fail("bad nanoseconds")
		return time.Time{}
	}
	if d.err != nil {
		return time.Time{}
	}
	return time.Unix(s, int64(ns)).UTC()
}
