package e2e

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// jsonSnapshotStatus mirrors `etcdctl snapshot status -w json`.
type jsonSnapshotStatus struct {
	Hash      uint32 `json:"hash"`
	Revision  int64  `json:"revision"`
	TotalKey  int    `json:"totalKey"`
	TotalSize int64  `json:"totalSize"`
}

func TestSnapshotSaveStatus(t *testing.T) {
	s, cli := startServer(t)
	var rev int64
	for i := range 20 {
		resp, err := cli.Put(ctx(t), fmt.Sprintf("snap/%02d", i), "v")
		must(t, err)
		rev = resp.Header.Revision
	}
	dir := t.TempDir()
	// The snapshot is the backend as committed: a write of the last commit
	// interval may be missing, so save again until the last put is in.
	var st jsonSnapshotStatus
	var path string
	for attempt := range 50 {
		path = filepath.Join(dir, fmt.Sprintf("snap-%d.db", attempt))
		etcdctl(t, s, "", "snapshot", "save", path)
		decodeJSON(t, etcdctl34(t, nil, "", "snapshot", "status", path, "-w", "json"), &st)
		if st.Revision >= rev {
			break
		}
	}
	if st.Revision != rev {
		t.Fatalf("snapshot revision %d, want %d", st.Revision, rev)
	}
	// 20 keys plus the members, meta and cluster entries.
	if st.TotalKey < 20 || st.TotalSize <= 0 {
		t.Fatalf("snapshot status %+v: want at least 20 keys and a size", st)
	}
	// restore checks the sha256 appended as the last chunk
	etcdctl34(t, nil, "", "snapshot", "restore", path, "--data-dir", filepath.Join(dir, "restored"))
}

// jsonEndpointStatus is one entry of `etcdctl endpoint status -w json`.
type jsonEndpointStatus struct {
	Status struct {
		DbSize      int64 `json:"dbSize"`
		DbSizeInUse int64 `json:"dbSizeInUse"`
	} `json:"Status"`
}

func dbSize(t *testing.T, s *e2etest.Server) (total, inUse int64) {
	t.Helper()
	var st []jsonEndpointStatus
	decodeJSON(t, etcdctl(t, s, "", "endpoint", "status", "-w", "json"), &st)
	if len(st) != 1 {
		t.Fatalf("endpoint status: %d entries", len(st))
	}
	return st[0].Status.DbSize, st[0].Status.DbSizeInUse
}

// waitDBSize polls the db size until ok accepts it (writes reach the file
// within a commit interval).
func waitDBSize(t *testing.T, s *e2etest.Server, what string, ok func(total, inUse int64) bool) int64 {
	t.Helper()
	for range 100 {
		total, inUse := dbSize(t, s)
		if ok(total, inUse) {
			return total
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("db size never %s", what)
	return 0
}

func TestDefragShrinksDB(t *testing.T) {
	s, cli := startServer(t)
	value := strings.Repeat("x", 4096)
	for i := range 1000 {
		_, err := cli.Put(ctx(t), fmt.Sprintf("defrag/%04d", i), value)
		must(t, err)
	}
	// the puts must reach the file before the deletes and the compaction
	waitDBSize(t, s, "above 4 MB", func(total, _ int64) bool { return total > 4<<20 })
	resp, err := cli.Delete(ctx(t), "defrag/", clientv3.WithPrefix())
	must(t, err)
	_, err = cli.Compact(ctx(t), resp.Header.Revision, clientv3.WithCompactPhysical())
	must(t, err)
	// bbolt frees the pages of a transaction at the next one: keep writing
	before := waitDBSize(t, s, "in use below 1 MB", func(_, inUse int64) bool {
		_, err := cli.Put(ctx(t), "next", "v")
		must(t, err)
		return inUse < 1<<20
	})

	etcdctl(t, s, "", "defrag")
	after, _ := dbSize(t, s)
	if after >= before/2 {
		t.Fatalf("db size %d after defrag, %d before: want it to shrink", after, before)
	}
	_, err = cli.Put(ctx(t), "after", "v")
	must(t, err)
	got, err := cli.Get(ctx(t), "after")
	must(t, err)
	if len(got.Kvs) != 1 {
		t.Fatalf("get after defrag: %v", got.Kvs)
	}
	mc := pb.NewMaintenanceClient(cli.ActiveConnection())
	h1, err := mc.Hash(ctx(t), &pb.HashRequest{})
	must(t, err)
	h2, err := mc.Hash(ctx(t), &pb.HashRequest{})
	must(t, err)
	if h1.Hash != h2.Hash || h1.Header.Revision != got.Header.Revision {
		t.Fatalf("hash %d rev %d, then %d; want one hash at revision %d", h1.Hash, h1.Header.Revision, h2.Hash, got.Header.Revision)
	}
}

// troupeCmd runs the troupe binary with args and returns stdout.
func troupeCmd(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := e2etest.TroupeBinary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("troupe %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// TestTroupeSnapshotSaveStatus checks `troupe snapshot save` writes a file
// etcdctl accepts and `troupe snapshot status` prints what etcdctl prints.
func TestTroupeSnapshotSaveStatus(t *testing.T) {
	s, cli := startServer(t)
	for i := range 5 {
		_, err := cli.Put(ctx(t), fmt.Sprintf("tsnap/%d", i), "v")
		must(t, err)
	}
	path := filepath.Join(t.TempDir(), "snap.db")
	if out := troupeCmd(t, "snapshot", "save", path, "--endpoints", s.Endpoint()); out != "Snapshot saved at "+path+"\n" {
		t.Fatalf("save printed %q", out)
	}
	for _, w := range []string{"simple", "json", "table"} {
		want := etcdctl34(t, nil, "", "snapshot", "status", path, "-w", w)
		if got := troupeCmd(t, "snapshot", "status", path, "-w", w); got != want {
			t.Fatalf("status -w %s:\n%s\netcdctl:\n%s", w, got, want)
		}
	}
	etcdctl34(t, nil, "", "snapshot", "restore", path, "--data-dir", filepath.Join(t.TempDir(), "restored"))
}

// TestTroupeSnapshotRestore restores a saved snapshot into the data dir of
// a new one-member cluster and serves it: the keys are there, the
// membership is the new one, and writes go on from the snapshot's
// revision.
func TestTroupeSnapshotRestore(t *testing.T) {
	s := e2etest.Start(t, e2etest.Config{Kind: e2etest.Troupe})
	cli := s.Client(t)
	for i := range 5 {
		_, err := cli.Put(ctx(t), fmt.Sprintf("restore/%d", i), "v")
		must(t, err)
	}
	dir := t.TempDir()
	var st jsonSnapshotStatus
	path := filepath.Join(dir, "snap.db")
	for range 50 { // until the snapshot holds the last put
		troupeCmd(t, "snapshot", "save", path, "--endpoints", s.Endpoint())
		decodeJSON(t, troupeCmd(t, "snapshot", "status", path, "-w", "json"), &st)
		if st.Revision == 6 {
			break
		}
	}
	r, peer := restoreAndStart(t, e2etest.Troupe, path)
	rcli := r.Client(t)
	got, err := rcli.Get(ctx(t), "restore/", clientv3.WithPrefix())
	must(t, err)
	if len(got.Kvs) != 5 || got.Header.Revision != 6 {
		t.Fatalf("restored: %d keys at revision %d, want 5 at 6", len(got.Kvs), got.Header.Revision)
	}
	ml, err := rcli.MemberList(ctx(t))
	must(t, err)
	if len(ml.Members) != 1 || ml.Members[0].PeerURLs[0] != peer {
		t.Fatalf("restored members %v, want one at %s", ml.Members, peer)
	}
	put, err := rcli.Put(ctx(t), "restore/new", "v")
	must(t, err)
	if put.Header.Revision != 7 {
		t.Fatalf("put after restore at revision %d, want 7", put.Header.Revision)
	}
}
