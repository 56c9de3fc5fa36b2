package claim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dogwood/dogwood/mesh/record"
)

// The RPC ops and their JSON bodies, as every release since arbiters exist sends
// them (wire_test.go pins the bytes).
const (
	opClaim   = "claim"
	opRelease = "claim.release"
	opWritten = "claim.written"
)

type claimant struct {
	Host    string       `json:"host"`
	Gen     uint32       `json:"gen"`
	Created record.Stamp `json:"created"`
}

type claimRequest struct {
	Keys   []string       `json:"keys"`
	Holder claimant       `json:"holder"`
	Record *record.Record `json:"record"`
}

type claimReply struct {
	Granted bool             `json:"granted"`
	Holder  *claimant        `json:"holder,omitempty"` // who holds it when refused
	Records []*record.Record `json:"records,omitempty"`
}

func (c *Claimer) handleClaim(_ context.Context, _ string, body json.RawMessage) (any, error) {
	var req claimRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("bad claim request: %v", err)
	}
	return c.arb.arbitrate(req), nil
}

func (c *Claimer) handleRelease(_ context.Context, _ string, body json.RawMessage) (any, error) {
	var req claimRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("bad release request: %v", err)
	}
	c.arb.release(req)
	return nil, nil
}

func (c *Claimer) handleWritten(_ context.Context, _ string, body json.RawMessage) (any, error) {
	r, err := decodeWritten(body)
	if err != nil {
		return nil, fmt.Errorf("bad written request: %v", err)
	}
	c.cfg.Merger.Merge([]*record.Record{r})
	return nil, nil
}

// decodeWritten parses a written request: a JSON list of exactly one valid record,
// in its portable form.
func decodeWritten(body []byte) (*record.Record, error) {
	var rs []*record.Record
	if err := json.Unmarshal(body, &rs); err != nil {
		return nil, err
	}
	if len(rs) != 1 || rs[0] == nil {
		return nil, errors.New("want one record")
	}
	rs[0].Unportable()
	if err := rs[0].Validate(); err != nil {
		return nil, err
	}
	return rs[0], nil
}
