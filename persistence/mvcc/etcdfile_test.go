package mvcc

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

// TestEtcdFileCompatibility opens a snapshot taken from a real etcd 3.4
// and checks that every read answers as etcd did, then checks that
// `etcdctl snapshot status` reads a file written here. It needs etcd and
// etcdctl in PATH, which scripts/test.sh installs.
func TestEtcdFileCompatibility(t *testing.T) {
	for _, bin := range []string{"etcd", "etcdctl"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("needs %s in PATH (scripts/test.sh installs Debian's etcd-server and etcd-client)", bin)
		}
	}
	conn := startEtcd(t)
	kv := pb.NewKVClient(conn)
	ctx := context.Background()
	for _, r := range []*pb.PutRequest{put("a", "1"), put("b", "2"), put("a", "3"), put("c", "4"), put("b", "5")} {
		if _, err := kv.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kv.DeleteRange(ctx, del("c", "")); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Compact(ctx, &pb.CompactionRequest{Revision: 4, Physical: true}); err != nil {
		t.Fatal(err)
	}
	reads := []*pb.RangeRequest{rng("\x00", "\x00"), {Key: []byte("a"), RangeEnd: []byte("\x00"), Revision: 4}, {Key: []byte("a"), Revision: 3}, {Key: []byte("c"), Revision: 5}}
	var want []proto.Message
	for _, r := range reads {
		resp, err := kv.Range(ctx, r)
		if err != nil {
			want = append(want, nil)
			continue
		}
		clearHeader(resp)
		want = append(want, resp)
	}
	stream, err := pb.NewMaintenanceClient(conn).Snapshot(ctx, &pb.SnapshotRequest{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for {
		chunk, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(chunk.Blob); err != nil {
			t.Fatal(err)
		}
	}
	// etcd appends a sha256 of the database; bbolt ignores the tail
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.Rev() != 7 || s.CompactRev() != 4 || s.ConsistentIndex() == 0 {
		t.Errorf("etcd file: rev %d compact %d index %d, want 7, 4, >0", s.Rev(), s.CompactRev(), s.ConsistentIndex())
	}
	for i, r := range reads {
		resp, err := s.Range(r)
		if (err != nil) != (want[i] == nil) || (err == nil && !proto.Equal(wire(t, resp), want[i])) {
			t.Errorf("read %v: got %v %v, etcd %v", r, resp, err, want[i])
		}
	}
	if _, err := s.Put(s.ConsistentIndex()+1, put("new", "1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("etcdctl", "snapshot", "status", path, "-w", "simple")
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("etcdctl snapshot status: %v\n%s", err, out)
	}
	if fields := strings.Split(strings.TrimSpace(string(out)), ", "); len(fields) != 4 || fields[1] != "8" {
		t.Errorf("etcdctl snapshot status = %q, want revision 8", out)
	}
}
