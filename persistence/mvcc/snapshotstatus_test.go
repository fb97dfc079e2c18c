package mvcc

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

// TestReadSnapshotStatusEtcdFile: what etcdctl 3.4.23's `snapshot status
// -w json` printed for testdata/etcd34-members.db.
func TestReadSnapshotStatusEtcdFile(t *testing.T) {
	got, err := ReadSnapshotStatus("testdata/etcd34-members.db")
	if err != nil {
		t.Fatal(err)
	}
	want := SnapshotStatus{Hash: 1910454321, Revision: 0, TotalKeys: 7, TotalSizeBytes: 20480}
	if got != want {
		t.Fatalf("ReadSnapshotStatus = %+v, etcdctl %+v", got, want)
	}
}

// TestReadSnapshotStatusMatchesEtcdctl writes a file with keys, history,
// a compaction and a lease, and compares with etcdctl's status of it. It
// needs etcdctl in PATH, as TestEtcdFileCompatibility.
func TestReadSnapshotStatusMatchesEtcdctl(t *testing.T) {
	if _, err := exec.LookPath("etcdctl"); err != nil {
		t.Fatal("needs etcdctl in PATH (scripts/test.sh installs Debian's etcd-client)")
	}
	ts := openTest(t, Options{})
	for _, req := range []proto.Message{put("a", "1"), put("b", "2"), put("a", "3"), del("b", ""), &pb.CompactionRequest{Revision: 3}} {
		if _, err := ts.do(req); err != nil {
			t.Fatal(err)
		}
	}
	ts.index++
	if _, err := ts.LeaseGrant(ts.index, &pb.LeaseGrantRequest{ID: 7, TTL: 60}); err != nil {
		t.Fatal(err)
	}
	ts.mustPut("c", "4")
	path := ts.Path()
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSnapshotStatus(path)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("etcdctl", "snapshot", "status", path, "-w", "json")
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("etcdctl snapshot status: %v", err)
	}
	var want struct {
		Hash      uint32 `json:"hash"`
		Revision  int64  `json:"revision"`
		TotalKey  int    `json:"totalKey"`
		TotalSize int64  `json:"totalSize"`
	}
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got != (SnapshotStatus{want.Hash, want.Revision, want.TotalKey, want.TotalSize}) || got.Revision != 6 {
		t.Fatalf("ReadSnapshotStatus = %+v, etcdctl %s (want revision 6)", got, out)
	}
}

func TestReadSnapshotStatusRefused(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadSnapshotStatus(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v, want fs.ErrNotExist", err)
	}
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a bbolt file ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSnapshotStatus(garbage); err == nil || !strings.HasPrefix(err.Error(), "open "+garbage+": ") {
		t.Fatalf("garbage file: %v, want open %s: ...", err, garbage)
	}
}
