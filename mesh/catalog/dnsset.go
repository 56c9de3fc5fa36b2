package catalog

import "sort"

// RecordSet is a network's custom records, sorted by name, type and value. It is
// immutable and shared between snapshots while the records do not change, so
// consumers may cache what they derive from it by pointer.
type RecordSet struct {
	List []*DNSRecord
}

func newRecordSet(m map[string]*DNSRecord) *RecordSet {
	if len(m) == 0 {
		return nil
	}
	rs := &RecordSet{List: make([]*DNSRecord, 0, len(m))}
	for _, r := range m {
		rs.List = append(rs.List, r)
	}
	sortDNS(rs.List)
	return rs
}

func sortDNS(l []*DNSRecord) {
	sort.Slice(l, func(i, j int) bool {
		a, b := l[i], l[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		return a.Value < b.Value
	})
}

// AddRecords attaches custom records to the networks of a snapshot made by Build
// (tests and benchmarks; the catalog maintains its own).
func AddRecords(s *Snapshot, recs []DNSRecord) {
	by := map[uint32]map[string]*DNSRecord{}
	for i := range recs {
		r := &recs[i]
		if by[r.NetworkID] == nil {
			by[r.NetworkID] = map[string]*DNSRecord{}
		}
		by[r.NetworkID][DNSRecordKey(r.NetworkID, r.Name, r.Type, r.Value)] = r
	}
	for id, m := range by {
		if n := s.Networks[id]; n != nil {
			n.Records = newRecordSet(m)
		}
	}
}
