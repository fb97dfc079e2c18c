package e2e

import (
	"fmt"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// TestAutoCompactionPeriodic: with --auto-compaction-retention=2s the
// history older than about two seconds is compacted without any client
// asking (etcd 3.4's periodic compactor; the revision mode checks every 5
// minutes, so only its unit test covers it).
func TestAutoCompactionPeriodic(t *testing.T) {
	s := e2etest.Start(t, e2etest.Config{Args: []string{"--auto-compaction-mode", "periodic", "--auto-compaction-retention", "2s"}})
	cli := s.Client(t)
	for i := range 5 {
		_, err := cli.Put(ctx(t), fmt.Sprintf("ac/%d", i), "v")
		must(t, err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := cli.Get(ctx(t), "ac/0", clientv3.WithRev(2))
		if err != nil {
			requireErr(t, err, rpctypes.ErrGRPCCompacted)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("revision 2 not compacted after 15 s")
		}
		// keep the revision moving, as a live cluster does
		_, err = cli.Put(ctx(t), "ac/tick", "v")
		must(t, err)
		time.Sleep(200 * time.Millisecond)
	}
	// The latest data is still there.
	resp, err := cli.Get(ctx(t), "ac/", clientv3.WithPrefix())
	must(t, err)
	if len(resp.Kvs) != 6 {
		t.Fatalf("%d keys after auto compaction, want 6", len(resp.Kvs))
	}
}
