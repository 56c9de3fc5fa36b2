package gossip

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/dogwood/dogwood/mesh/catalog"
	"github.com/dogwood/dogwood/mesh/gossip/proto"
)

// fuzzGossip is one member on memberlist's in-memory network: receive runs the
// real handlers (records, anti-entropy at every level, RPC, leave) without sockets.
func fuzzGossip(f *testing.F) (*Gossip, *catalog.Catalog) {
	net := &memberlist.MockNetwork{}
	cat := catalog.New("h1")
	g, err := New(Config{Name: "h1", HostID: 7, Sink: catalogSink{cat}, Reader: catalogSink{cat}, Transport: net.NewTransport("h1"),
		AEInterval: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { g.Close() })
	g.Handle("echo", func(_ context.Context, _ string, body json.RawMessage) (any, error) { return body, nil })
	return g, cat
}

// catalogSink keeps what gossip learns in a catalog, in memory.
type catalogSink struct{ *catalog.Catalog }

func (s catalogSink) Merge(rs []*catalog.Record) []*catalog.Record { return s.ApplyAll(rs) }
func (s catalogSink) Failed() []Peer                               { return nil }

func seedMessages(f *testing.F) {
	org := `{"k":2,"key":"x","cr":{"c":1,"n":1},"v":{"c":1,"n":1},"org":{"slug":"x"}}`
	o := origin{From: "h2", Addr: "127.0.0.1:1"}
	add := func(t msgType, v any) {
		b, _ := json.Marshal(v)
		f.Add(append([]byte{byte(t)}, b...))
	}
	var rec catalog.Record
	if err := json.Unmarshal([]byte(org), &rec); err != nil {
		f.Fatal(err)
	}
	bin := encodeRecordList([]*catalog.Record{&rec})
	f.Add(append([]byte{byte(msgRecords)}, bin...))
	add(msgAERoot, aeRoot{o, &proto.AERoot{Root: 1}})
	add(msgAEBuckets, aeBuckets{o, &proto.AEBuckets{}})
	add(msgAESubs, aeSubs{o, &proto.AESubs{Buckets: []int{0, 3}, Subs: [][]byte{make([]byte, 8*catalog.SubBuckets), {1}}}})
	add(msgAEHeaders, aeHeaders{o, &proto.AEHeaders{Leaves: []int{0, 1 << 20}, Headers: []catalog.Header{{}}}})
	add(msgAEWant, aeWant{o, &proto.AEWant{IDs: []catalog.ID{{Kind: catalog.KindOrg, Key: "x"}}}})
	f.Add(treeFrame("h2", &proto.Message{Kind: proto.KindGossip, ID: 1, Payload: bin}))
	f.Add(treeFrame("h2", &proto.Message{Kind: proto.KindIHave, IDs: []uint64{1, 2}}))
	f.Add(treeFrame("h2", &proto.Message{Kind: proto.KindBatch, Batch: []proto.Message{{Kind: proto.KindGossip, ID: 2, Payload: bin}, {Kind: proto.KindGossip, ID: 3, Payload: bin}}}))
	f.Add(treeFrame("h2", &proto.Message{Kind: proto.KindPack, Batch: []proto.Message{{Kind: proto.KindGossip, Payload: bin}, {Kind: proto.KindGossip, Round: 2, Payload: bin}}}))
	f.Add(treeFrame("h2", &proto.Message{Kind: proto.KindIHaveShort, IDs: []uint64{1, 2}}))
	f.Add(treeFrame("h2", &proto.Message{Kind: proto.KindGraftShort, IDs: []uint64{3}}))
	f.Add(treeFrame("h2", &proto.Message{Kind: proto.KindJoin, Payload: []byte("127.0.0.1:1")}))
	add(msgRPCReq, rpcRequest{ID: 1, origin: o, Op: "echo", Body: json.RawMessage(`{}`)})
	add(msgRPCReq, rpcRequest{ID: 2, origin: o, Op: "claim", Body: json.RawMessage(`{"keys":["id/org/x"],"holder":{"host":"h2"},"record":` + org + `}`)})
	add(msgRPCResp, rpcResponse{ID: 1})
	add(msgLeaving, "h2")
}

// FuzzGossipReceive feeds arbitrary messages through the whole receive path:
// sealed (as a member with the key would send them) and raw (as a replayer or a
// broken sender would). Beyond "no panic": whatever arrives, the catalog holds only
// valid records, and raw input without a seal never reaches a handler.
func FuzzGossipReceive(f *testing.F) {
	seedMessages(f)
	g, cat := fuzzGossip(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		// memberlist's contract: NotifyMsg (and the push/pull merge) must not block.
		done := make(chan string, 1)
		go func() { done <- check(g, cat, b) }()
		select {
		case msg := <-done:
			if msg != "" {
				t.Fatal(msg)
			}
		case <-time.After(5 * time.Second):
			buf := make([]byte, 1<<20)
			t.Fatalf("receive blocked on %q\n%s", b, buf[:runtime.Stack(buf, true)])
		}
	})
}

// check runs one input through the receive path and returns what went wrong.
func check(g *Gossip, cat *catalog.Catalog, b []byte) string {
	g.receive(seal(time.Now(), b))
	seq := cat.Seq()
	if len(b) == 0 || b[0] != sealTag {
		g.receive(b) // unsealed: dropped at the gate
		if cat.Seq() != seq {
			return "an unsealed message changed the catalog"
		}
	}
	g.ae.mergePushPull(b)
	for _, r := range cat.All() {
		if err := r.Validate(); err != nil {
			return fmt.Sprintf("catalog holds an invalid record after %q: %v", b, err)
		}
	}
	return ""
}
