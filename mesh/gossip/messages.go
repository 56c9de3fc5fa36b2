package gossip

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dogwood/dogwood/mesh/gossip/proto"
	"github.com/dogwood/dogwood/mesh/record"
)

// Every user message starts with a type byte (as serf does). Records (in tree
// payloads and records messages) and tree messages are binary, since they are
// nearly all of the bytes; the rest is JSON, which keeps foreign or garbled input
// easy to reject with a reason.
type msgType byte

const (
	msgRecords   msgType = 1 // records (encodeRecordList) that anti-entropy repairs
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
	// msgTree: a broadcast-tree message (proto.Message, binary), after the sender's
	// name (one length byte, then the name).
	msgTree msgType = 10
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
	case msgTree:
		return "tree"
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
	return frame(t, b), nil
}

// frame is a sealed message of type t around an encoded body.
func frame(t msgType, body []byte) []byte {
	msg := make([]byte, 0, 1+len(body))
	return seal(time.Now(), append(append(msg, byte(t)), body...))
}

var errEmpty = errors.New("empty message")

// decode splits a message; unknown types are an error so they are dropped and counted.
func decode(buf []byte) (msgType, []byte, error) {
	if len(buf) == 0 {
		return 0, nil, errEmpty
	}
	t := msgType(buf[0])
	if t < msgRecords || t > msgTree {
		return 0, nil, fmt.Errorf("unknown message type %d", buf[0])
	}
	return t, buf[1:], nil
}

// decodeRecordList parses and validates a record batch as the tree and anti-entropy
// carry it (mesh/record's binary encoding: a machine record is about 110 bytes instead
// of 330 as JSON); one bad record rejects the batch.
func decodeRecordList(b []byte) ([]*record.Record, error) {
	rs, err := record.DecodeRecords(b)
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, errors.New("no records")
	}
	return validRecords(rs)
}

func validRecords(rs []*record.Record) ([]*record.Record, error) {
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

// encodeRecordList is a change's payload on the tree, and the body of a records
// message: the records in mesh/record's binary encoding.
func encodeRecordList(rs []*record.Record) []byte { return record.AppendRecords(nil, rs) }

// treeFrame prefixes a tree message with its sender's name.
func treeFrame(self string, m *proto.Message) []byte {
	buf := make([]byte, 0, 2+len(self)+m.Size())
	buf = append(buf, byte(msgTree), byte(len(self)))
	buf = append(buf, self...)
	return m.Append(buf)
}

// splitTreeFrame undoes treeFrame (body is the message without its type byte).
func splitTreeFrame(body []byte) (from string, msg []byte, err error) {
	if len(body) < 1 || len(body) < 1+int(body[0]) || body[0] == 0 {
		return "", nil, errors.New("short tree frame")
	}
	n := int(body[0])
	return string(body[1 : 1+n]), body[1+n:], nil
}
