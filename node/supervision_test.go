package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/failpoint"
	"github.com/troupedb/troupe/persistence/snap"
)

// ack is one acknowledged put.
type ack struct {
	key string
	rev int64
}

// putLoad runs total puts of distinct keys from workers goroutines,
// retrying a put whose outcome the server reported as unavailable, and
// returns what was acknowledged.
func putLoad(t *testing.T, cfg Config, workers, total int, during func(done int)) []ack {
	t.Helper()
	c := client(t, cfg)
	var (
		mu   sync.Mutex
		acks []ack
		wg   sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	per := total / workers
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				key := fmt.Sprintf("k-%02d-%05d", w, i)
				for attempt := 0; attempt < 50; attempt++ {
					resp, err := c.Put(ctx, key, key)
					if err == nil {
						mu.Lock()
						acks = append(acks, ack{key, resp.Header.Revision})
						n := len(acks)
						mu.Unlock()
						if during != nil {
							during(n)
						}
						break
					}
					if !unavailable(err) || ctx.Err() != nil {
						t.Errorf("put %s: %v", key, err)
						return
					}
					// A client's retry pause (real time: the member
					// serves over loopback, outside synctest).
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	return acks
}

// unavailable reports an error clients may retry: gRPC Unavailable, as
// clientv3 hands it back (an rpctypes.EtcdError) or raw.
func unavailable(err error) bool {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code() == codes.Unavailable
	}
	return status.Code(err) == codes.Unavailable
}

func checkAcks(t *testing.T, cfg Config, acks []ack) {
	t.Helper()
	c := client(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, a := range acks {
		resp, err := c.Get(ctx, a.key)
		if err != nil {
			t.Fatalf("get %s: %v", a.key, err)
		}
		if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != a.key {
			t.Fatalf("acknowledged put %s lost: %v", a.key, resp.Kvs)
		}
		// A put retried after an unknown outcome may have applied twice;
		// the acknowledged revision is then the later one.
		if got := resp.Kvs[0].ModRevision; got != a.rev {
			t.Fatalf("key %s mod revision %d, acknowledged %d", a.key, got, a.rev)
		}
	}
}

// TestCorePanicsMidLoad makes each core actor panic once during a put load:
// the core restarts from disk, the load goes on, nothing acknowledged is
// lost.
func TestCorePanicsMidLoad(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.SnapshotCount = 300
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	points := []string{"raftPanic", "walPanic", "applierPanic", "snapshotterPanic"}
	defer func() {
		for _, p := range points {
			failpoint.Disable(p)
		}
	}()
	var once sync.Once
	acks := putLoad(t, cfg, 16, 2400, func(done int) {
		if done < 400 {
			return
		}
		once.Do(func() {
			for i, p := range points {
				if err := failpoint.Enable(p, fmt.Sprintf("after(%d):1*panic", 50*(i+1))); err != nil {
					t.Error(err)
				}
			}
		})
	})
	if len(acks) != 2400 {
		t.Fatalf("acknowledged %d of 2400 puts", len(acks))
	}
	for _, p := range points {
		if failpoint.Hits(p) == 0 {
			t.Errorf("failpoint %s never reached", p)
		}
	}
	if r := n.view.Restarts(); r < 3 {
		t.Errorf("core restarted %d times, want at least 3", r)
	}
	select {
	case err := <-n.Done():
		t.Fatalf("node stopped: %v", err)
	default:
	}
	checkAcks(t, cfg, acks)
}

// TestRestartBudgetExhausted: a core that fails on every start stops the
// member with an error instead of restarting forever.
func TestRestartBudgetExhausted(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	if err := failpoint.Enable("raftPanic", "panic"); err != nil {
		t.Fatal(err)
	}
	defer failpoint.Disable("raftPanic")
	c := client(t, cfg)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = c.Put(ctx, "x", "y")
	}()
	select {
	case err := <-n.Done():
		if err == nil || !strings.Contains(err.Error(), "restart budget exhausted") {
			t.Fatalf("done with %v, want restart budget exhausted", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("member did not stop after its restart budget")
	}
}

// TestSnapshotsAndRestart: with a small --snapshot-count the member saves
// snapshots while it works and restarts from the newest one.
func TestSnapshotsAndRestart(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.SnapshotCount = 100
	cfg.WALSegmentBytes = 16 << 10
	cfg.MaxWALs = 1 // release every segment the snapshots cover
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	acks := putLoad(t, cfg, 8, 800, nil)
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	snaps, _ := filepath.Glob(filepath.Join(cfg.DataDir, "member", "snap", "*.snap"))
	if len(snaps) == 0 || len(snaps) > 5 {
		t.Fatalf("%d snapshot files after 800 puts with --snapshot-count=100, want 1 to 5 (old ones released)", len(snaps))
	}
	// 800 puts of ~60 bytes fill many 16 KiB segments; those before the
	// newest snapshot are gone.
	segs, _ := filepath.Glob(filepath.Join(cfg.DataDir, "member", "wal", "*.wal"))
	if len(segs) == 0 || len(segs) > 4 {
		t.Fatalf("%d WAL segments after snapshots, want old ones released", len(segs))
	}
	// A crash between writing a snapshot file and its WAL marker leaves a
	// newest snapshot the WAL does not know: start-up uses the one before.
	ss, err := snap.New(filepath.Join(cfg.DataDir, "member", "snap"), snap.Options{})
	if err != nil {
		t.Fatal(err)
	}
	newest, err := ss.Load()
	if err != nil {
		t.Fatal(err)
	}
	orphan := proto.CloneOf(newest)
	orphan.Metadata.Index = new(newest.GetMetadata().GetIndex() + 10)
	if err := ss.Save(orphan); err != nil {
		t.Fatal(err)
	}
	n, err = Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	checkAcks(t, cfg, acks)
	// The member still takes writes after starting from a snapshot.
	more := putLoad(t, cfg, 2, 20, nil)
	checkAcks(t, cfg, more)
}

// TestStartupErrorNamesFile: a corrupt WAL stops the start-up with an
// error naming the file.
func TestStartupErrorNamesFile(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	putLoad(t, cfg, 2, 200, nil)
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(cfg.DataDir, "member", "wal", "*.wal"))
	if len(segs) == 0 {
		t.Fatal("no wal segments")
	}
	f, err := os.OpenFile(segs[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Flip bytes well inside the segment: a record in the middle.
	if _, err := f.WriteAt([]byte{0xde, 0xad, 0xbe, 0xef}, 200); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = Start(cfg)
	if err == nil {
		t.Fatal("start-up accepted a corrupt WAL")
	}
	if !strings.Contains(err.Error(), "wal") {
		t.Fatalf("error does not name the WAL: %v", err)
	}
}

// TestPanicServingARequest: a panic on a gRPC goroutine fails that request
// with Internal and leaves the member serving.
func TestPanicServingARequest(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	c := client(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := failpoint.Enable("kvRangePanic", "1*panic"); err != nil {
		t.Fatal(err)
	}
	defer failpoint.Disable("kvRangePanic")
	_, err = c.Get(ctx, "k")
	var ee rpctypes.EtcdError
	if !errors.As(err, &ee) || ee.Code() != codes.Internal {
		if status.Code(err) != codes.Internal {
			t.Fatalf("get with a panicking handler: %v, want Internal", err)
		}
	}
	if resp, err := c.Get(ctx, "k"); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get after the panic: %v %v", resp, err)
	}
}
