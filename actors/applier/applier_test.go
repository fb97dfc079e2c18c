package applier

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/troupedb/troupe/actors/internal/actortest"
	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/messages"
)

func TestApplyTriggersWaitersOnceAndSnapshots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := openStore(t)
		sys := newSystem(t)
		client := newClient(sys, 1)
		snaps := actortest.NewRecorder(8)
		f := start(t, sys, Config{
			Store: store, Client: client, Snapshotter: sys.Root.Spawn(snaps.Props()), SnapshotCount: 3,
		})
		w1, w2 := client.Waits().Proposals.Register(11), client.Waits().Proposals.Register(12)
		f.apply(
			&raftpb.Entry{Index: new(uint64(1)), Term: new(uint64(1)), Type: raftpb.EntryNormal.Enum()}, // a leader's empty entry
			putEntry(t, 2, 11, "a"),
			putEntry(t, 3, 12, "b"),
		)
		for i, w := range []<-chan raftclient.Result{w1, w2} {
			select {
			case res := <-w:
				if r, ok := res.Resp.(*pb.PutResponse); res.Err != nil || !ok || r.Header.Revision != int64(i+2) {
					t.Fatalf("waiter %d got %+v", i, res)
				}
			default:
				t.Fatalf("waiter %d not triggered before Applied", i)
			}
		}
		if got := client.AppliedIndex(); got != 3 {
			t.Fatalf("applied index %d, want 3", got)
		}
		// Three entries with --snapshot-count=3: a snapshot at 3, after a
		// backend commit.
		ss := actortest.Next[*messages.SaveSnapshot](t, snaps, wait)
		if ss.Index != 3 {
			t.Fatalf("snapshot at %d, want 3", ss.Index)
		}
		// Replaying the same entries (a WAL replay) applies nothing twice.
		w3 := client.Waits().Proposals.Register(12)
		f.apply(putEntry(t, 3, 12, "b"))
		select {
		case v := <-w3:
			t.Fatalf("replayed entry triggered its waiter again: %v", v)
		default:
		}
		if store.Rev() != 3 {
			t.Fatalf("store revision %d after replay, want 3", store.Rev())
		}
	})
}

// TestSlowApplyWarned: with --warning-apply-duration an apply slower than
// it is logged as etcd's "apply request took too long". Real time, not a
// bubble: in a bubble an apply takes no time at all.
func TestSlowApplyWarned(t *testing.T) {
	for _, d := range []time.Duration{time.Nanosecond, time.Hour} {
		var buf syncBuffer
		store := openStore(t)
		sys := newSystem(t)
		f := start(t, sys, Config{
			Store: store, Client: newClient(sys, 1), SnapshotCount: 1000, WarningApplyDuration: d,
			Logger: slog.New(slog.NewJSONHandler(&buf, nil)),
		})
		f.apply(putEntry(t, 1, 11, "a"))
		out := buf.String()
		if got := strings.Contains(out, `"msg":"apply request took too long"`); got != (d == time.Nanosecond) {
			t.Errorf("--warning-apply-duration %v: warned %v: %s", d, got, out)
		}
		if d == time.Nanosecond && !strings.Contains(out, `"expected-duration":1`) {
			t.Errorf("no expected-duration: %s", out)
		}
	}
}

// syncBuffer is a bytes.Buffer the applier's goroutine writes and the
// test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
