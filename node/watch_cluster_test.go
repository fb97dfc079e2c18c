//go:build !race

package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/failpoint"
)

// TestClusterWatchAcrossSnapshotInstall: a follower holding a watch is cut
// off while the others write past their log, then catches up by a
// snapshot whose install crashes its core once. The watch, served by the
// hub beside the core, stays open and delivers every event once, in
// order: the gap the snapshot leaves is filled from the new backend's
// history.
func TestClusterWatchAcrossSnapshotInstall(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.SnapshotCount = 50 })
	lead := c.waitLeader()
	behind := (lead + 1) % 3
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	wc := c.client(behind).Watch(ctx, "w/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	<-wc
	cli := c.client(lead)
	var want []int64
	want = append(want, put(t, cli, "w/first", "x"))
	c.waitValue(behind, "w/first", "x")
	c.isolate(behind, true)
	for i := 0; i < 5200; i++ { // past the 5000 catch-up entries kept after a snapshot
		want = append(want, put(t, cli, fmt.Sprintf("w/%05d", i), "x"))
	}
	c.waitOthersSnapshot(behind, 5100)
	if err := failpoint.Enable("snapshotInstallPanic", "1*panic"); err != nil {
		t.Fatal(err)
	}
	defer failpoint.Disable("snapshotInstallPanic")
	c.isolate(behind, false)
	want = append(want, put(t, cli, "w/last", "x"))
	var got []int64
	for len(got) < len(want) {
		select {
		case r, ok := <-wc:
			if !ok || r.Err() != nil {
				t.Fatalf("watch ended after %d events: %v", len(got), r.Err())
			}
			for _, ev := range r.Events {
				got = append(got, ev.Kv.ModRevision)
			}
		case <-ctx.Done():
			t.Fatalf("watch saw %d of %d events", len(got), len(want))
		}
	}
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Fatalf("event %d at revision %v, want %d", i, got[min(i, len(got)-1)], want[i])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	if failpoint.Hits("snapshotInstallPanic") == 0 {
		t.Fatal("the member caught up without installing a snapshot")
	}
}
