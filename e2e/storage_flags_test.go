package e2e

// --wal-dir and --force-new-cluster with the built binary, set through
// their ETCD_ variables as an operator of etcd would.

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/e2e/e2etest"
	"github.com/troupedb/troupe/internal/polltest"
)

// TestWALDirFromEnvironment: ETCD_WAL_DIR puts the WAL in its own dir,
// none under the data dir, and a restart replays it.
func TestWALDirFromEnvironment(t *testing.T) {
	walDir := filepath.Join(t.TempDir(), "wal")
	s := e2etest.Start(t, e2etest.Config{Env: []string{"ETCD_WAL_DIR=" + walDir}})
	put, err := s.Client(t).Put(ctx(t), "k", "v")
	must(t, err)
	s.Restart()
	got, err := s.Client(t).Get(ctx(t), "k")
	must(t, err)
	if len(got.Kvs) != 1 || got.Kvs[0].ModRevision != put.Header.Revision {
		t.Fatalf("after restart: %v, want k at revision %d", got.Kvs, put.Header.Revision)
	}
	if segs, _ := filepath.Glob(filepath.Join(walDir, "*.wal")); len(segs) == 0 {
		t.Fatalf("no WAL file in %s", walDir)
	}
	if segs, _ := filepath.Glob(filepath.Join(s.DataDir(), "member", "wal", "*.wal")); len(segs) != 0 {
		t.Fatalf("WAL files under the data dir: %v", segs)
	}
}

// TestForceNewClusterKeepsData: a member of a stopped 3-member cluster
// restarted with ETCD_FORCE_NEW_CLUSTER=true lists only itself, keeps the
// revision and data, takes writes, and a plain restart keeps it alone
// (what etcd 3.6.8 does).
func TestForceNewClusterKeepsData(t *testing.T) {
	c := e2etest.StartCluster(t, e2etest.ClusterConfig{})
	var rev int64
	for i := range 5 {
		resp, err := c.Client(t).Put(ctx(t), fmt.Sprintf("k%d", i), fmt.Sprint(i))
		must(t, err)
		rev = resp.Header.Revision
	}
	const forced = 1
	cli := c.MemberClient(t, forced)
	polltest.Eventually(t, 20*time.Second, "the member to force applied the last put", func() (bool, string) {
		resp, err := cli.Get(ctx(t), "k4", clientv3.WithSerializable())
		return err == nil && len(resp.Kvs) == 1, fmt.Sprint(err)
	})
	for i := range c.Size() {
		must(t, c.Stop(i))
	}
	must(t, c.RestartEnv(forced, []string{"ETCD_FORCE_NEW_CLUSTER=true"}))
	id := checkSingleMember(t, c.MemberClient(t, forced), rev)
	after, err := c.MemberClient(t, forced).Put(ctx(t), "after", "force")
	must(t, err)
	if after.Header.Revision != rev+1 {
		t.Fatalf("put after force at revision %d, want %d", after.Header.Revision, rev+1)
	}
	must(t, c.Restart(forced))
	if again := checkSingleMember(t, c.MemberClient(t, forced), rev+1); again != id {
		t.Fatalf("member id %x after a plain restart, was %x", again, id)
	}
}

// checkSingleMember checks the member list is the member alone and the
// revision is rev, and returns the member's id.
func checkSingleMember(t *testing.T, cli *clientv3.Client, rev int64) uint64 {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := cli.MemberList(c)
	must(t, err)
	if len(list.Members) != 1 || list.Members[0].ID != list.Header.MemberId || list.Members[0].IsLearner {
		t.Fatalf("member list %v from member %x, want that member alone", list.Members, list.Header.MemberId)
	}
	got, err := cli.Get(c, "k0")
	must(t, err)
	if got.Header.Revision != rev || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "0" {
		t.Fatalf("k0 %v at revision %d, want 0 at %d", got.Kvs, got.Header.Revision, rev)
	}
	return list.Header.MemberId
}
