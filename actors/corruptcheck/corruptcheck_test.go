package corruptcheck

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/troupedb/troupe/actors/internal/actortest"
	"github.com/troupedb/troupe/actors/peers"
	"github.com/troupedb/troupe/messages"
)

// TestPeriodicCheckRaisesCorrupt: every interval the leader checks and
// asks for the CORRUPT alarm of the member whose hash differs; a follower
// does not check; nothing is checked before the first interval.
func TestPeriodicCheckRaisesCorrupt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(Hash{Hash: 111, Revision: 9, CompactRevision: 3}, answer(2, 111, 9, 3), answer(3, 222, 9, 3))
		f.leader.Store(false)
		sys := actortest.NewSystem()
		pid := sys.Root.Spawn(Props(Config{Self: 1, Interval: time.Minute, Member: f, Logger: actortest.Logger()}))

		time.Sleep(90 * time.Second) // one tick, as a follower
		synctest.Wait()
		if len(f.asked) != 0 || len(f.raised) != 0 {
			t.Fatalf("a follower checked: asked %d, raised %d", len(f.asked), len(f.raised))
		}
		f.leader.Store(true)
		time.Sleep(time.Minute) // the tick at 2 min
		synctest.Wait()
		if got := <-f.asked; got != 9 {
			t.Fatalf("asked at revision %d, want 9", got)
		}
		if len(f.raised) != 1 {
			t.Fatalf("raised %d alarms, want 1", len(f.raised))
		}
		if id := <-f.raised; id != 3 {
			t.Fatalf("CORRUPT alarm for member %x, want 3", id)
		}

		noLeader := errors.New("no leader")
		f.readErr.Store(&noLeader) // a check that cannot finish raises nothing
		time.Sleep(time.Minute)
		synctest.Wait()
		if len(f.asked) != 1 || len(f.raised) != 0 {
			t.Fatalf("after a failed read: asked %d, raised %d", len(f.asked), len(f.raised))
		}

		if err := sys.Root.StopFuture(pid).Wait(); err != nil {
			t.Fatal(err)
		}
		actortest.Shutdown(sys)
	})
}

// TestInitialCheckAnswers: CheckInitialHash is answered with the check's
// outcome; no periodic check runs when the interval is 0.
func TestInitialCheckAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := actortest.NewSystem()
		for _, tt := range []struct {
			peer    uint32
			wantErr bool
		}{{111, false}, {222, true}} {
			f := newFake(Hash{Hash: 111, Revision: 9, CompactRevision: 3}, answer(2, tt.peer, 9, 3))
			pid := sys.Root.Spawn(Props(Config{Self: 1, Member: f, Logger: actortest.Logger()}))
			res, err := sys.Root.RequestFuture(pid, &messages.CheckInitialHash{}, time.Minute).Result()
			if err != nil {
				t.Fatal(err)
			}
			got := res.(*messages.CheckInitialHashResult)
			if (got.Err != nil) != tt.wantErr || (tt.wantErr && !errors.Is(got.Err, ErrInconsistent)) {
				t.Fatalf("peer hash %d: result %v, want error %v", tt.peer, got.Err, tt.wantErr)
			}
			time.Sleep(time.Hour)
			synctest.Wait()
			if len(f.asked) != 1 || len(f.raised) != 0 {
				t.Fatalf("interval 0: asked %d times, raised %d alarms; want only the initial check", len(f.asked), len(f.raised))
			}
			if err := sys.Root.StopFuture(pid).Wait(); err != nil {
				t.Fatal(err)
			}
		}
		actortest.Shutdown(sys)
	})
}

// TestCompactHashCheckTicks: every CompactHashInterval the leader compares
// the compaction hashes and raises CORRUPT for the minority; a revision
// the whole cluster agreed on is not asked for again.
func TestCompactHashCheckTicks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(Hash{})
		f.compactHashes = []Hash{{Hash: 2020, Revision: 20, CompactRevision: 10}}
		f.peersAt = map[int64][]peers.PeerHash{20: {answer(2, 2020, 30, 10), answer(3, 3030, 30, 10)}}
		sys := actortest.NewSystem()
		pid := sys.Root.Spawn(Props(Config{Self: 1, CompactHashInterval: time.Minute, Member: f, Logger: actortest.Logger()}))
		time.Sleep(90 * time.Second)
		synctest.Wait()
		if len(f.raised) != 1 {
			t.Fatalf("raised %d alarms, want 1", len(f.raised))
		}
		if id := <-f.raised; id != 3 {
			t.Fatalf("CORRUPT alarm for member %x, want 3", id)
		}
		<-f.asked

		f.setPeers([]peers.PeerHash{answer(2, 2020, 30, 10), answer(3, 2020, 30, 10)}, nil) // repaired
		time.Sleep(time.Minute)
		synctest.Wait()
		if len(f.asked) != 1 || len(f.raised) != 0 {
			t.Fatalf("second check: asked %d, raised %d; want 1, 0", len(f.asked), len(f.raised))
		}
		<-f.asked
		time.Sleep(time.Minute)
		synctest.Wait()
		if len(f.asked) != 0 {
			t.Fatalf("revision 20 asked again after the cluster agreed on it")
		}
		if err := sys.Root.StopFuture(pid).Wait(); err != nil {
			t.Fatal(err)
		}
		actortest.Shutdown(sys)
	})
}
