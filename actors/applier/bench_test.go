package applier

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/actors/internal/actortest"
	"github.com/troupedb/troupe/internal/hublink"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// benchBatch is the entries per Apply: about what one commit carries at
// 256 clients on this machine.
const benchBatch = 64

// BenchmarkApplyPut applies batches of puts the way a member under the
// put benchmark does (the core's store options: Changed hook, hub link
// with a hub that takes each batch, the default quota), as the leader
// (every entry has a waiter) and as a follower (none). ns/op and
// allocs/op are per entry.
func BenchmarkApplyPut(b *testing.B) {
	for _, leader := range []bool{true, false} {
		name := "follower"
		if leader {
			name = "leader"
		}
		b.Run(name, func(b *testing.B) { benchApply(b, leader, putRequest) })
	}
}

// BenchmarkApplyTxnPut is BenchmarkApplyPut with each entry a txn of one
// put, as under the txn-put benchmark.
func BenchmarkApplyTxnPut(b *testing.B) {
	for _, leader := range []bool{true, false} {
		name := "follower"
		if leader {
			name = "leader"
		}
		b.Run(name, func(b *testing.B) { benchApply(b, leader, txnPutRequest) })
	}
}

func putRequest(index uint64, key, value []byte) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: index}, Put: &pb.PutRequest{Key: key, Value: value}}
}

func txnPutRequest(index uint64, key, value []byte) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: index}, Txn: &pb.TxnRequest{
		Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: key, Value: value}}}},
	}}
}

func benchApply(b *testing.B, leader bool, request func(index uint64, key, value []byte) *pb.InternalRaftRequest) {
	changes := &Changes{}
	st, err := mvcc.Open(filepath.Join(b.TempDir(), "db"), mvcc.Options{NoSync: true, Logger: actortest.Logger(), Changed: changes.Add})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	sys := actortest.NewSystem()
	defer actortest.Shutdown(sys)
	client := newClient(sys, 1)
	link := &hublink.Link{}
	link.Publish(sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*messages.EventsApplied); ok {
			link.EventsTaken()
		}
	})))
	pid := sys.Root.Spawn(Props(Config{
		Store: st, Client: client, Hub: link, Changes: changes, Logger: actortest.Logger(),
		QuotaBytes: 2 << 30, SnapshotCount: 1 << 62,
	}))
	applied := make(chan struct{}, 1)
	driver := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *messages.Apply:
			ctx.Request(pid, m)
		case *messages.Applied:
			applied <- struct{}{}
		}
	}))

	value := make([]byte, 256)
	var index uint64
	batch := func(n int) []*raftpb.Entry {
		ents := make([]*raftpb.Entry, n)
		for i := range ents {
			index++
			data, err := proto.Marshal(request(index, fmt.Appendf(nil, "key-%08d", index%100000), value))
			if err != nil {
				b.Fatal(err)
			}
			ents[i] = &raftpb.Entry{Index: new(index), Term: new(uint64(1)), Type: raftpb.EntryNormal.Enum(), Data: data}
		}
		return ents
	}
	batches := make([][]*raftpb.Entry, 0, b.N/benchBatch+1)
	for done := 0; done < b.N; done += benchBatch {
		ents := batch(min(benchBatch, b.N-done))
		if leader {
			for _, e := range ents {
				_ = client.Waits().Proposals.Register(e.GetIndex())
			}
		}
		batches = append(batches, ents)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for _, ents := range batches {
		sys.Root.Send(driver, &messages.Apply{Msg: &raftpb.Message{Entries: ents}})
		<-applied
	}
	// The process's CPU time, not the wall clock: other processes on the
	// machine slow the wall clock, not this.
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	b.StopTimer()
	if got := client.AppliedIndex(); got != index {
		b.Fatalf("applied index %d, want %d", got, index)
	}
}

// cpuTime is the CPU time the process used so far (user + system).
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
