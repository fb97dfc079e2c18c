package wal

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/wal"
)

// BenchmarkAppendConcurrent measures the group commit of the wal actor: N
// goroutines each send an Append of one 100-byte entry and wait for its
// Appended. Run it on a real disk: fsync on tmpfs is free.
func BenchmarkAppendConcurrent(b *testing.B) {
	for _, n := range []int{1, 64, 1024} {
		b.Run(fmt.Sprintf("appenders=%d", n), func(b *testing.B) { benchAppend(b, n) })
	}
}

func benchAppend(b *testing.B, appenders int) {
	dir := filepath.Join(b.TempDir(), "wal")
	w, err := wal.Create(dir, wal.Metadata{}, wal.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	var waiters sync.Map // *raftpb.Message -> chan struct{}
	raft := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if m, ok := ctx.Message().(*messages.Appended); ok {
			if ch, ok := waiters.LoadAndDelete(m.Msg); ok {
				ch.(chan struct{}) <- struct{}{}
			}
		}
	}))
	pid := sys.Root.Spawn(Props(Config{Dir: dir, WAL: w, Raft: raft, Logger: quiet}))
	defer func() { _ = sys.Root.StopFuture(pid).Wait() }()

	data := bytes.Repeat([]byte("x"), 100)
	var index, left atomic.Int64
	left.Store(int64(b.N))
	base := w.Stats()
	b.ResetTimer()
	var wg sync.WaitGroup
	for range appenders {
		wg.Go(func() {
			done := make(chan struct{}, 1)
			for left.Add(-1) >= 0 {
				i := uint64(index.Add(1))
				m := &raftpb.Message{
					Type:    raftpb.MsgStorageAppend.Enum(),
					Entries: []*raftpb.Entry{{Index: new(i), Term: new(uint64(1)), Data: data}},
				}
				waiters.Store(m, done)
				sys.Root.Send(pid, &messages.Append{Msg: m})
				<-done
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	secs := b.Elapsed().Seconds()
	fsyncs := float64(w.Stats().Fsyncs - base.Fsyncs)
	b.ReportMetric(float64(b.N)/secs, "entries/s")
	b.ReportMetric(fsyncs/secs, "fsyncs/s")
	if fsyncs > 0 {
		b.ReportMetric(float64(b.N)/fsyncs, "entries/fsync")
	}
}
