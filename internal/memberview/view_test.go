package memberview

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/troupedb/troupe/persistence/membership"
)

func TestMembersFromFlagsUntilTheCoreKnows(t *testing.T) {
	v := New(Member{ID: 1, Name: "a"}, 9)
	v.SetMembers([]Member{{ID: 1, Name: "a"}, {ID: 2, Name: "b", PeerURLs: []string{"http://b:2380"}}})
	if got := v.PeerURLs(); len(got) != 1 || got[2][0] != "http://b:2380" {
		t.Fatalf("peer urls from the flags: %v", got)
	}
	v.SetCluster(membership.NewCluster([]Member{{ID: 1}, {ID: 3, IsLearner: true}}, []uint64{2}))
	if ms := v.Members(); len(ms) != 2 || ms[1].ID != 3 {
		t.Fatalf("members after the core loaded them: %v", ms)
	}
	if !v.Removed(2) || v.Removed(3) {
		t.Fatal("removal not as the applied membership says")
	}
	if v.IsVoter(3) || !v.IsVoter(1) || v.IsVoter(4) {
		t.Fatal("voters not as the applied membership says")
	}
}

// In a synctest bubble: the activity times differ by a virtual millisecond.
func TestBestTransfereeIsTheMostCaughtUpVoter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v := New(Member{ID: 1}, 9)
		v.SetCluster(membership.NewCluster([]Member{{ID: 1}, {ID: 2}, {ID: 3}, {ID: 4, IsLearner: true}}, nil))
		if to := v.BestTransferee(); to != 0 {
			t.Fatalf("with no progress and no active peer %x was chosen", to)
		}
		// before the leader's first progress: the voter connected longest
		v.SetPeerActive(4, true) // a learner, never chosen
		v.SetPeerActive(3, true)
		time.Sleep(time.Millisecond) // virtual: distinct activity times
		v.SetPeerActive(2, true)
		if to := v.BestTransferee(); to != 3 {
			t.Fatalf("without progress: %x, want 3 (the voter connected longest)", to)
		}
		v.SetRaftStatus(1, 5, 100)
		v.SetProgress(map[uint64]uint64{1: 100, 2: 90, 3: 99, 4: 100}, 100)
		if !v.IsLeader() || v.Term() != 5 || v.RaftIndex() != 100 {
			t.Fatal("raft status not recorded")
		}
		if to := v.BestTransferee(); to != 3 {
			t.Fatalf("best transferee %x, want 3 (the learner 4 is ahead but cannot lead)", to)
		}
		v.SetPeerActive(3, false) // down: not chosen however far along
		if to := v.BestTransferee(); to != 2 {
			t.Fatalf("with 3 down: %x, want 2", to)
		}
		v.SetPeerActive(2, false)
		if to := v.BestTransferee(); to != 0 {
			t.Fatalf("with every voter down: %x, want none", to)
		}
	})
}

func TestPeerActivity(t *testing.T) {
	v := New(Member{ID: 1}, 9)
	if v.PeerActiveSince(1).IsZero() {
		t.Fatal("a member counts itself as active")
	}
	v.SetPeerActive(2, true)
	since := v.PeerActiveSince(2)
	v.SetPeerActive(2, true)
	if since.IsZero() || !v.PeerActiveSince(2).Equal(since) {
		t.Fatal("active since must be the first report")
	}
	v.SetPeerActive(2, false)
	if !v.PeerActiveSince(2).IsZero() {
		t.Fatal("an inactive member has no active-since")
	}
}
