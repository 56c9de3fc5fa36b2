package meshbench

import (
	"fmt"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/sixpn"
)

// Shape of the synthetic catalog: machines spread over Apps apps in Orgs orgs (one
// network each) on Hosts hosts. The hosts' records (HostRecords) carry no address:
// nobody tries to reach them, and DNS answers for their machines once membership
// says they are alive.
const (
	SynthOrgs  = 100
	SynthApps  = 1000
	SynthHosts = 50
)

var synthTime = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func synthNetID(org int) uint32 { return 0x00b00000 + uint32(org) }
func synthHostID(h int) uint32  { return 0x0be00000 + uint32(h) }
func synthOrg(org int) string   { return fmt.Sprintf("org%03d", org) }
func synthApp(app int) string   { return fmt.Sprintf("app%04d", app) }
func synthHost(h int) string    { return fmt.Sprintf("synth-h%02d", h) }

// Multiplying by an odd constant is a bijection mod 2^56: unique, random-looking ids.
func synthID(i int) string { return fmt.Sprintf("%014x", (uint64(i)*0x9E3779B97F4A7C15)&(1<<56-1)) }

// HostRecords are the SynthHosts hosts' records (no address, so nothing dials them).
func HostRecords() []*catalog.Record {
	var out []*catalog.Record
	for h := 0; h < SynthHosts; h++ {
		st := synthStamp(h, synthHostID(h))
		out = append(out, &catalog.Record{Kind: catalog.KindHost, Key: synthHost(h), Gen: 1, Created: st, Version: st,
			Host: &catalog.Host{Name: synthHost(h), ID: synthHostID(h), Region: "ord"}})
	}
	return out
}
func synthStamp(i int, node uint32) catalog.Stamp {
	return catalog.Stamp{Clock: uint64(10 + i), Node: node}
}

// ParentRecords are the orgs, networks and apps the synthetic machines live in
// (SynthOrgs + SynthOrgs + SynthApps records).
func ParentRecords() []*catalog.Record {
	var out []*catalog.Record
	for o := 0; o < SynthOrgs; o++ {
		st := synthStamp(o, 1)
		out = append(out, &catalog.Record{Kind: catalog.KindOrg, Key: synthOrg(o), Gen: 1, Created: st, Version: st,
			Org: &catalog.Org{Slug: synthOrg(o), CreatedAt: synthTime}})
		nw := &catalog.Network{Org: synthOrg(o), Name: "default", ID: synthNetID(o)}
		out = append(out, &catalog.Record{Kind: catalog.KindNetwork, Key: catalog.NetworkKey(nw.Org, nw.Name), Gen: 1, Created: st, Version: st, Network: nw})
	}
	for a := 0; a < SynthApps; a++ {
		o := a % SynthOrgs
		st := synthStamp(SynthOrgs+a, 1)
		out = append(out, &catalog.Record{Kind: catalog.KindApp, Key: catalog.AppKey(synthOrg(o), synthApp(a)), Gen: 1, Created: st, Version: st,
			App: &catalog.App{Name: synthApp(a), Org: synthOrg(o), Network: "default", NetworkID: synthNetID(o)}})
	}
	return out
}

// MachineRecords returns machine records number from..to-1. Each is what
// Machines.Create writes for a CLI create, with one metadata pair, one service and a
// 24-hex client request id; ids are 14 hex digits spread like random ones.
func MachineRecords(from, to int) []*catalog.Record { return machineRecords(from, to, false) }

// AttachedMachineRecords are MachineRecords attached to network namespaces (`machines
// create --netns`): each has a name of its own, which nothing can share.
func AttachedMachineRecords(from, to int) []*catalog.Record { return machineRecords(from, to, true) }

func machineRecords(from, to int, netns bool) []*catalog.Record {
	out := make([]*catalog.Record, 0, to-from)
	for i := from; i < to; i++ {
		m := synthMachine(i, netns)
		st := synthStamp(SynthOrgs+SynthApps+i, m.HostID)
		out = append(out, &catalog.Record{Kind: catalog.KindMachine, Key: m.ID, Gen: 1, Created: st, Version: st, Machine: m})
	}
	return out
}

// synthMachine is synthetic machine i as Machines.Create writes it.
func synthMachine(i int, netns bool) *catalog.Machine {
	a, h := i%SynthApps, i%SynthHosts
	o := a % SynthOrgs
	hid := synthHostID(h)
	field := sixpn.MinMachineField + uint32(i)
	id := synthID(i)
	m := &catalog.Machine{
		ID:           id,
		MachinePlace: &catalog.MachinePlace{App: synthApp(a), Org: synthOrg(o), Network: "default", NetworkID: synthNetID(o), Host: synthHost(h), HostID: hid, Region: "ord"},
		Field:        field,
		Address:      sixpn.MachineAddr(synthNetID(o), hid, field),
		CreatedAt:    synthTime,
		// The CLI sends a random 24-hex request id with every create.
		RequestID:    fmt.Sprintf("%024x", uint64(i)*0xD1B54A32D192ED03),
		MachineAttrs: &catalog.MachineAttrs{State: catalog.StateStarted, ProcessGroup: "app", Metadata: map[string]string{"role": "web"}, Services: []catalog.Service{{Name: "http", Proto: "tcp", Port: 8080}}},
	}
	if netns {
		m.Netns = "vm-" + id
	}
	return m
}
