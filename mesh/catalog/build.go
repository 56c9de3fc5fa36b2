package catalog

// Snapshot returns the latest immutable snapshot, rebuilding only the parts that
// changed since the previous one: unchanged network and app views are shared.
func (c *Catalog) Snapshot() *Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snap != nil && c.snap.Seq == c.seq {
		return c.snap
	}
	prev := c.snap
	if prev == nil {
		prev = Empty(c.self)
		c.dirtyHosts, c.dirtyOrgs, c.dirtyLocal = true, true, true
		for id := range c.nets {
			c.dirtyNets[id] = struct{}{}
		}
	}
	s := &Snapshot{
		Seq: c.seq, Self: c.self,
		Hosts: prev.Hosts, HostsByID: prev.HostsByID, Orgs: prev.Orgs,
		Networks: prev.Networks, NetworkByName: prev.NetworkByName, Apps: prev.Apps,
		LocalMachines: prev.LocalMachines, LocalPeers: prev.LocalPeers,
	}
	if c.dirtyHosts {
		s.Hosts = make(map[string]*HostView, len(c.hosts))
		s.HostsByID = make(map[uint32]*HostView, len(c.hosts))
		for name, h := range c.hosts {
			hv := &HostView{Host: *h, Status: c.statusLocked(name)}
			s.Hosts[name] = hv
			s.HostsByID[h.ID] = hv
		}
		c.dirtyHosts = false
	}
	if c.dirtyOrgs {
		s.Orgs = make(map[string]*Org, len(c.orgs))
		for k, o := range c.orgs {
			s.Orgs[k] = o
		}
		c.dirtyOrgs = false
	}
	if len(c.dirtyNets) > 0 || len(c.dirtyApps) > 0 {
		s.Networks = make(map[uint32]*NetworkView, len(c.nets))
		for id, nv := range prev.Networks {
			s.Networks[id] = nv
		}
		for id := range c.dirtyNets {
			idx := c.nets[id]
			old := prev.Networks[id]
			if idx == nil || idx.net == nil {
				delete(s.Networks, id)
				continue
			}
			s.Networks[id] = c.buildNetwork(idx, old)
		}
		s.NetworkByName = make(map[string]*NetworkView, len(s.Networks))
		s.Apps = make(map[string]*AppView, len(prev.Apps))
		for _, nv := range s.Networks {
			s.NetworkByName[NetworkKey(nv.Org, nv.Name)] = nv
			for _, a := range nv.Apps {
				s.Apps[AppKey(a.Org, a.Name)] = a
			}
		}
		clear(c.dirtyNets)
		clear(c.dirtyApps)
		clear(c.dirtyRecs)
	}
	if c.dirtyLocal {
		s.LocalMachines = make([]*Machine, 0, len(c.localM))
		for _, m := range c.localM {
			s.LocalMachines = append(s.LocalMachines, m)
		}
		s.LocalPeers = make([]*Peer, 0, len(c.localP))
		for _, p := range c.localP {
			s.LocalPeers = append(s.LocalPeers, p)
		}
		sortMachines(s.LocalMachines)
		sortPeers(s.LocalPeers)
		c.dirtyLocal = false
	}
	c.snap = s
	c.latest.Store(s)
	return s
}

func (c *Catalog) buildNetwork(idx *netIndex, old *NetworkView) *NetworkView {
	nv := &NetworkView{
		Network:    *idx.net,
		Apps:       make(map[string]*AppView, len(idx.apps)),
		Peers:      make(map[string]*Peer, len(idx.peers)),
		HostCounts: make(map[uint32]int, len(idx.hostCounts)),
	}
	// Merge every app's pending machine changes, also of apps without an app record
	// (their machines wait for it), so changes do not pile up.
	for name, am := range idx.machines {
		if am.flush() == nil {
			delete(idx.machines, name)
		}
	}
	for name, a := range idx.apps {
		if _, dirty := c.dirtyApps[name]; !dirty && old != nil {
			if ov := old.Apps[name]; ov != nil && ov.App == *a {
				nv.Apps[name] = ov
				continue
			}
		}
		av := &AppView{App: *a}
		if am := idx.machines[name]; am != nil {
			av.Machines = am.cur
		}
		nv.Apps[name] = av
	}
	for name, p := range idx.peers {
		nv.Peers[name] = p
	}
	for h, n := range idx.hostCounts {
		nv.HostCounts[h] = n
	}
	if _, dirty := c.dirtyRecs[idx.net.ID]; !dirty && old != nil {
		nv.Records = old.Records
	} else {
		nv.Records = newRecordSet(idx.records)
	}
	nv.finish()
	return nv
}
