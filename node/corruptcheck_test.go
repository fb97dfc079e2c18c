//go:build !race

// Clusters of several members in one process: not under -race (see
// cluster_test.go).

package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/troupedb/troupe/actors/core"
	"github.com/troupedb/troupe/actors/corruptcheck"
	"github.com/troupedb/troupe/internal/polltest"
)

// corruptBackend changes the value of the newest revision in the key
// bucket of the stopped member's backend, without a new revision: the
// data of one member silently differs from the others'.
func corruptBackend(t *testing.T, dataDir string) {
	t.Helper()
	db, err := bolt.Open(core.DBPath(dataDir), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("key"))
		k, v := b.Cursor().Last()
		if k == nil {
			return errors.New("key bucket is empty")
		}
		nv := bytes.Clone(v)
		nv[len(nv)-1] ^= 1 // the last byte of the value of a mvccpb.KeyValue
		return b.Put(bytes.Clone(k), nv)
	}); err != nil {
		t.Fatal(err)
	}
}

// writeAndCorrupt writes keys through member 0, waits until member i has
// them all, stops it and corrupts its backend. It returns the revision
// and the healthy members' hash at it.
func writeAndCorrupt(t *testing.T, c *testCluster, i int) (rev int64, hash uint32) {
	t.Helper()
	for k := range 5 {
		rev = put(t, c.client(0), fmt.Sprintf("k%d", k), fmt.Sprintf("v%d", k))
	}
	c.waitValue(i, "k4", "v4")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := c.client(0).HashKV(ctx, c.cfgs[0].ListenClientURLs[0].Host, rev)
	if err != nil {
		t.Fatal(err)
	}
	c.stop(i)
	corruptBackend(t, c.cfgs[i].DataDir)
	return rev, h.Hash
}

// TestInitialCorruptCheck: a member restarted with a corrupted backend and
// the initial check stops within a second of finding the mismatch, with
// an error naming the other member, both hashes and the revision, as etcd
// 3.6 (which raises no alarm); the others keep serving. Without the
// check it starts.
func TestInitialCorruptCheck(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	rev, healthy := writeAndCorrupt(t, c, 2)

	cfg := c.cfgs[2]
	cfg.InitialCorruptCheck = true
	logs := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	nd, err := Start(cfg)
	returned := time.Now()
	if err == nil {
		_ = nd.Stop()
		t.Fatal("a member with a corrupted backend started with the initial corruption check")
	}
	if !errors.Is(err, corruptcheck.ErrInconsistent) {
		t.Fatalf("start-up error %v, want ErrInconsistent", err)
	}
	found := logs.record("found different hash values from remote peer")
	if found == nil {
		t.Fatal("no log record 'found different hash values from remote peer'")
	}
	peer, _ := found["remote-peer-id"].(string)
	local, _ := found["local-member-hash"].(float64)
	for _, s := range []string{
		fmt.Sprintf("%x found data inconsistency with peers", c.ids[2]),
		fmt.Sprintf("member %s ", peer),
		fmt.Sprintf("has hash %d at revision %d", healthy, rev),
		fmt.Sprintf("this member %d", uint32(local)),
	} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	if peer != fmt.Sprintf("%x", c.ids[0]) && peer != fmt.Sprintf("%x", c.ids[1]) {
		t.Errorf("remote-peer-id %q is not another member", peer)
	}
	if found["remote-peer-hash"] != float64(healthy) || found["local-member-revision"] != float64(rev) || uint32(local) == healthy {
		t.Errorf("log record %v: want remote-peer-hash %d, local-member-revision %d and another local hash", found, healthy, rev)
	}
	at, _ := time.Parse(time.RFC3339Nano, found["time"].(string))
	if d := returned.Sub(at); d > time.Second {
		t.Errorf("Start returned %s after the mismatch was found, want under a second", d)
	}
	t.Logf("Start returned %s after the mismatch was found: %v", returned.Sub(at), err)
	if logs.record("checkInitialHashKV failed") == nil {
		t.Error("no log record 'checkInitialHashKV failed'")
	}

	// The others serve; the alarm list stays empty. The stopped member
	// may have led: wait for the other two to elect one of themselves.
	c.waitLeader()
	put(t, c.client(0), "after", "1")
	c.waitValue(1, "after", "1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alarms, err := c.client(1).AlarmList(ctx)
	if err != nil || len(alarms.Alarms) != 0 {
		t.Fatalf("alarms %v, %v; want none", alarms, err)
	}

	// Without the check the member starts (and serves its corrupted data).
	c.restart(2)
	c.waitValue(2, "after", "1")
}

// TestPeriodicCorruptCheck: with CorruptCheckTime the leader finds the
// follower whose backend was corrupted and raises the CORRUPT alarm for
// it; every member lists it and refuses writes with etcd's "etcdserver:
// corrupt cluster", reads are served.
func TestPeriodicCorruptCheck(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.CorruptCheckTime = 500 * time.Millisecond })
	lead := c.waitLeader()
	bad := (lead + 1) % 3
	writeAndCorrupt(t, c, bad)
	c.restart(bad)

	c.waitCorruptAlarm(bad)
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.client(i).Put(ctx, "x", "y")
		if !errors.Is(err, rpctypes.ErrCorrupt) {
			t.Errorf("member %d: put %v, want %v", i, err, rpctypes.ErrCorrupt)
		}
		if _, err := c.client(i).Get(ctx, "k1"); err != nil {
			t.Errorf("member %d: get %v, want it served", i, err)
		}
		cancel()
	}
}

// TestCompactHashCheck: with CompactHashCheck the leader compares the
// hashes every member kept at a compaction and raises the CORRUPT alarm of
// the member whose backend was corrupted, on every member.
func TestCompactHashCheck(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.CompactHashCheck = true
		cfg.CompactHashCheckTime = 500 * time.Millisecond
	})
	lead := c.waitLeader()
	bad := (lead + 1) % 3
	rev, _ := writeAndCorrupt(t, c, bad)
	c.restart(bad)
	c.waitValue(bad, "k3", "v3") // k4 is the corrupted one

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alarms, err := c.client(lead).AlarmList(ctx)
	if err != nil || len(alarms.Alarms) != 0 {
		t.Fatalf("alarms before a compaction: %v, %v; want none", alarms, err)
	}
	if _, err := c.client(lead).Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	c.waitCorruptAlarm(bad)
}

// waitCorruptAlarm waits until every member lists the CORRUPT alarm of
// member bad, and no other alarm.
func (c *testCluster) waitCorruptAlarm(bad int) {
	c.t.Helper()
	for i := range c.nodes {
		cli := c.client(i)
		polltest.Eventually(c.t, 20*time.Second, fmt.Sprintf("member %d lists the CORRUPT alarm of member %x", i, c.ids[bad]), func() (bool, string) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			resp, err := cli.AlarmList(ctx)
			if err != nil {
				return false, err.Error()
			}
			return len(resp.Alarms) == 1 && resp.Alarms[0].MemberID == c.ids[bad] && resp.Alarms[0].Alarm == pb.AlarmType_CORRUPT, fmt.Sprint(resp.Alarms)
		})
	}
}

// TestInitialCorruptCheckPeerDown: a member that is down does not hold up
// the initial check for the request timeout (7 s here): nothing listens
// at its peer URL, which is found at once, as etcd's HTTP request finds
// it; the member that answers agrees and the start-up goes on.
func TestInitialCorruptCheckPeerDown(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	for k := range 3 {
		put(t, c.client(0), fmt.Sprintf("k%d", k), "v")
	}
	c.waitValue(2, "k2", "v")
	c.stop(1)
	c.stop(2)
	cfg := c.cfgs[2]
	cfg.InitialCorruptCheck = true
	logs := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	start := time.Now()
	nd, err := Start(cfg)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("start with the initial check, one member down: %v", err)
	}
	c.nodes[2] = nd
	if took > 3*time.Second {
		t.Errorf("start-up took %s with a member down; the request timeout is %s", took, cfg.requestTimeout())
	}
	if logs.recordWith("failed hash kv request", "remote-peer-id", fmt.Sprintf("%x", c.ids[1])) == nil {
		t.Errorf("no 'failed hash kv request' for the member that is down")
	}
	began, passed := logs.record("starting initial corruption check"), logs.record("initial corruption checking passed; no corruption")
	if began == nil || passed == nil {
		t.Fatalf("no 'starting initial corruption check' (%v) or 'initial corruption checking passed; no corruption' (%v)", began, passed)
	}
	t0, _ := time.Parse(time.RFC3339Nano, began["time"].(string))
	t1, _ := time.Parse(time.RFC3339Nano, passed["time"].(string))
	if d := t1.Sub(t0); d > time.Second {
		t.Errorf("the check took %s with a member down", d)
	}
	t.Logf("start-up with the initial check and a member down took %s, the check %s", took, t1.Sub(t0))
}
