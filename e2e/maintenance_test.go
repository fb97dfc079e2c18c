package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
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
		decodeJSON(t, etcdctl(t, s, "", "snapshot", "status", path, "-w", "json"), &st)
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
	etcdctl(t, s, "", "snapshot", "restore", path, "--data-dir", filepath.Join(dir, "restored"))
}
