package gossip

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dogwood/dogwood/mesh/catalog"
)

// Every user message starts with a type byte (as serf does) followed by JSON. JSON
// costs some bytes but keeps foreign or garbled input easy to reject with a reason.
type msgType byte

const (
	msgRecords   msgType = 1 // []*Record: a change, pushed to every member
	msgAERoot    msgType = 2 // aeRoot: "my digest is X"
	msgAEBuckets msgType = 3 // aeBuckets: bucket digests, sent back when roots differ
	msgAEHeaders msgType = 4 // aeHeaders: the headers of differing buckets
	msgAEWant    msgType = 5 // aeWant: ids to send
	msgRPCReq    msgType = 6
	msgRPCResp   msgType = 7
	// msgLeaving: "I am leaving on purpose", sent to every member right before
	// memberlist's Leave. memberlist hands NotifyLeave a Node whose State field is
	// never updated (nodeState.State shadows it), so it cannot tell left from failed.
	msgLeaving msgType = 8
	// msgAESubs: the leaf digests of the buckets that differ (second digest level).
	msgAESubs msgType = 9
)

func (t msgType) String() string {
	switch t {
	case msgRecords:
		return "records"
	case msgAERoot:
		return "ae_root"
	case msgAEBuckets:
		return "ae_buckets"
	case msgAEHeaders:
		return "ae_headers"
	case msgAEWant:
		return "ae_want"
	case msgRPCReq:
		return "rpc_request"
	case msgRPCResp:
		return "rpc_response"
	case msgLeaving:
		return "leaving"
	case msgAESubs:
		return "ae_subs"
	}
	return "unknown"
}

// origin is who sent a message and the gossip address to answer on: lets us answer
// a host membership has not told us about yet.
type origin struct {
	From string `json:"from"`
	Addr string `json:"addr,omitempty"`
}

func (o origin) sender() origin { return o }

type aeRoot struct {
	origin
	Root uint64 `json:"root"`
}

type aeBuckets struct {
	origin
	Buckets [catalog.Buckets]uint64 `json:"buckets"`
}

type aeSubs struct {
	origin
	Buckets []int    `json:"buckets"`
	Subs    [][]byte `json:"subs"` // per bucket, SubBuckets big-endian uint64 digests
}

type aeHeaders struct {
	origin
	Leaves  []int            `json:"leaves"`
	Headers []catalog.Header `json:"headers"`
}

type aeWant struct {
	origin
	IDs []catalog.ID `json:"ids"`
}

type rpcRequest struct {
	ID uint64 `json:"id"`
	origin
	Op   string          `json:"op"`
	Body json.RawMessage `json:"body"`
}

type rpcResponse struct {
	ID    uint64          `json:"id"`
	Error string          `json:"error,omitempty"`
	Code  int             `json:"code,omitempty"`
	Body  json.RawMessage `json:"body,omitempty"`
}

// encode builds a message and seals it against replay (replay.go).
func encode(t msgType, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return seal(time.Now(), append([]byte{byte(t)}, b...)), nil
}

var errEmpty = errors.New("empty message")

// decode splits a message; unknown types are an error so they are dropped and counted.
func decode(buf []byte) (msgType, []byte, error) {
	if len(buf) == 0 {
		return 0, nil, errEmpty
	}
	t := msgType(buf[0])
	if t < msgRecords || t > msgAESubs {
		return 0, nil, fmt.Errorf("unknown message type %d", buf[0])
	}
	return t, buf[1:], nil
}

// decodeRecords parses and validates a record batch; one bad record rejects the batch,
// since a sender that produces it is broken or hostile.
func decodeRecords(b []byte) ([]*catalog.Record, error) {
	var rs []*catalog.Record
	if err := json.Unmarshal(b, &rs); err != nil {
		return nil, err
	}
	for _, r := range rs {
		if r == nil {
			return nil, errors.New("null record")
		}
		if err := r.Validate(); err != nil {
			return nil, err
		}
	}
	return rs, nil
}
