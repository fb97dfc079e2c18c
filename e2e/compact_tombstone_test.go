package e2e

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// TestCompactionTombstoneDifferential: etcd 3.6 keeps a tombstone that a
// compaction lands on until the next compaction (etcd 3.4 removed it). A
// client sees that tombstone: a watch from the compact revision gets its
// DELETE event, and a snapshot holds it. The script compacts at a
// tombstone, at a revision where only tombstones are left (three at one
// revision), restarts in between (the index is rebuilt from the file) and
// compacts again past them, and after each step compares with etcd 3.6.8:
// the watch history from the compact revision (and from below it), ranges
// and counts at and below the compact revision, HashKV and the key bucket
// of a snapshot. With -e2e.server=etcd it compares etcd with itself.
func TestCompactionTombstoneDifferential(t *testing.T) {
	ref := startEtcd36(t, "compaction")
	sut := e2etest.Start(t, e2etest.Config{})
	want := tombstoneScript(t, ref)
	got := tombstoneScript(t, sut)
	if len(got) != len(want) {
		t.Fatalf("%d answers from etcd, %d from %s", len(want), len(got), sut.Kind())
	}
	bad := 0
	for i := range want {
		if got[i] != want[i] {
			bad++
			t.Errorf("answer %d differs:\n--- etcd\n%s\n--- %s\n%s", i, want[i], sut.Kind(), got[i])
		}
	}
	if bad > 0 || testing.Verbose() {
		t.Logf("etcd's answers:\n%s", strings.Join(want, "\n"))
	}
}

// tombstoneScript runs the history on s and returns every answer as text,
// each prefixed with what was asked. Revisions in comments.
func tombstoneScript(t *testing.T, s *e2etest.Server) []string {
	var out []string
	cc := s.Client(t).ActiveConnection()
	kvc := pb.NewKVClient(cc)
	do := func(name string, f func(kvc pb.KVClient) (proto.Message, error)) {
		resp, err := f(kvc)
		out = append(out, name+": "+answerString(t, resp, err))
	}
	restart := func() {
		s.Restart()
		cc = s.Client(t).ActiveConnection()
		kvc = pb.NewKVClient(cc)
		out = append(out, "restarted")
	}
	physical := func(rev int64) {
		do(fmt.Sprintf("compact %d", rev), func(kvc pb.KVClient) (proto.Message, error) {
			return kvc.Compact(ctx(t), &pb.CompactionRequest{Revision: rev, Physical: true})
		})
	}
	putKV := func(k, v string) {
		do("put "+k, func(kvc pb.KVClient) (proto.Message, error) {
			return kvc.Put(ctx(t), &pb.PutRequest{Key: b(k), Value: b(v)})
		})
	}
	delKV := func(k, end string) {
		r := &pb.DeleteRangeRequest{Key: b(k)}
		if end != "" {
			r.RangeEnd = b(end)
		}
		do("del "+k, func(kvc pb.KVClient) (proto.Message, error) { return kvc.DeleteRange(ctx(t), r) })
	}
	// observe asks what a client can see of the compaction at rev. It
	// first writes z, so that every watch has an event to end at.
	observe := func(rev int64) {
		putKV("z", fmt.Sprint(rev))
		for _, from := range []int64{rev - 1, rev} {
			out = append(out, fmt.Sprintf("watch all from %d: %s", from, watchHistory(t, cc, from)))
		}
		all := func(r *pb.RangeRequest) *pb.RangeRequest { r.Key, r.RangeEnd = b("\x00"), b("\x00"); return r }
		for _, r := range []struct {
			name string
			req  *pb.RangeRequest
		}{
			{"all at %d", all(&pb.RangeRequest{Revision: rev})},
			{"count at %d", all(&pb.RangeRequest{Revision: rev, CountOnly: true})},
			{"count below %d", all(&pb.RangeRequest{Revision: rev - 1, CountOnly: true})},
			{"b at %d", &pb.RangeRequest{Key: b("b"), Revision: rev}},
			{"all now (compacted at %d)", all(&pb.RangeRequest{})},
		} {
			do("range "+fmt.Sprintf(r.name, rev), func(kvc pb.KVClient) (proto.Message, error) { return kvc.Range(ctx(t), r.req) })
		}
		for _, h := range []int64{0, rev} {
			resp, err := pb.NewMaintenanceClient(cc).HashKV(ctx(t), &pb.HashKVRequest{Revision: h})
			out = append(out, fmt.Sprintf("hashkv %d: %s", h, answerString(t, resp, err)))
		}
		out = append(out, "snapshot key bucket:\n"+snapshotKeyBucket(t, cc))
	}

	putKV("a", "1") // 2
	putKV("b", "2") // 3
	putKV("a", "3") // 4
	delKV("b", "")  // 5
	putKV("c", "4") // 6
	physical(5)     // at b's tombstone
	observe(5)      // z 7
	restart()
	observe(5)      // z 8
	putKV("b", "5") // 9: b starts again after its kept tombstone
	do("range b", func(kvc pb.KVClient) (proto.Message, error) { return kvc.Range(ctx(t), &pb.RangeRequest{Key: b("b")}) })
	physical(9)           // removes b's tombstone at 5
	observe(9)            // z 10
	delKV("\x00", "\x00") // 11: four tombstones at one revision
	physical(11)          // only tombstones are left
	observe(11)           // z 12
	restart()
	observe(11)     // z 13
	putKV("d", "6") // 14
	physical(14)    // removes the tombstones at 11, read back from the file
	observe(14)     // z 15
	restart()
	observe(14) // z 16
	return out
}

// watchHistory watches every key from rev and returns the responses up to
// the event at the current revision (the script writes one after each
// compaction before it watches), or up to the cancellation of a watch
// from a compacted revision.
func watchHistory(t *testing.T, cc *grpc.ClientConn, from int64) string {
	t.Helper()
	c := ctx(t)
	stream, err := pb.NewWatchClient(cc).Watch(c)
	must(t, err)
	must(t, stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
		Key: b("\x00"), RangeEnd: b("\x00"), StartRevision: from,
	}}}))
	var parts []string
	current := int64(-1)
	for i := 0; i < 100; i++ {
		r, err := stream.Recv()
		if err != nil {
			t.Fatalf("watch from %d after %v: %v", from, parts, err)
		}
		parts = append(parts, respString(r))
		if r.Created {
			current = r.Header.GetRevision()
		}
		if r.Canceled {
			break
		}
		if n := len(r.Events); n > 0 && r.Events[n-1].Kv.ModRevision >= current {
			break
		}
	}
	_ = stream.CloseSend()
	return strings.Join(parts, "; ")
}

// snapshotKeyBucket takes a snapshot over the Maintenance API and lists
// its "key" bucket: one line per revision, "main_sub" ('t' for a
// tombstone) and the KeyValue stored there. etcd's tombstone holds only
// the key.
func snapshotKeyBucket(t *testing.T, cc *grpc.ClientConn) string {
	t.Helper()
	stream, err := pb.NewMaintenanceClient(cc).Snapshot(ctx(t), &pb.SnapshotRequest{})
	must(t, err)
	var blobs [][]byte
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		must(t, err)
		blobs = append(blobs, r.Blob)
	}
	if len(blobs) < 2 {
		t.Fatalf("snapshot of %d responses", len(blobs))
	}
	// the last response is the sha256 of the file, not part of it
	path := filepath.Join(t.TempDir(), "snapshot.db")
	must(t, os.WriteFile(path, bytes.Join(blobs[:len(blobs)-1], nil), 0o600))
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	must(t, err)
	defer db.Close()
	var lines []string
	must(t, db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("key")).ForEach(func(k, v []byte) error {
			if len(k) < 17 {
				return fmt.Errorf("key bucket: bad revision %x", k)
			}
			main, sub := binary.BigEndian.Uint64(k), binary.BigEndian.Uint64(k[9:])
			kv := &mvccpb.KeyValue{}
			if err := proto.Unmarshal(v, kv); err != nil {
				return fmt.Errorf("key bucket %x: %w", k, err)
			}
			lines = append(lines, fmt.Sprintf("  %d_%d%s key=%q value=%q create=%d mod=%d version=%d lease=%d",
				main, sub, k[17:], kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease))
			return nil
		})
	}))
	return strings.Join(lines, "\n")
}
