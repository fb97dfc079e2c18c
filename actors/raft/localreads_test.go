package raft

import (
	"sync"
	"testing"
	"testing/synctest"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/actors/internal/actortest"
	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/messages"
)

// soloFixture runs member 1 as the only voter, its WAL, applier and peers
// recorders played by the test. The applier hands applied configuration
// changes back, as the real one, and notes what the raft actor had
// published when each Apply and each message to a peer arrived: nothing
// of a Ready may leave before the read index that covers it.
type soloFixture struct {
	sys                 *actor.ActorSystem
	pid                 *actor.PID
	wal, applier, peers *actortest.Recorder
	view                *memberview.View
	waits               *raftclient.Waits
	local               *raftclient.LocalReadIndex

	mu sync.Mutex
	// seen is what left the raft actor, with the read index published
	// when it arrived.
	seen []departure
}

type departure struct {
	what      string // "apply" or the raft message type
	lastIndex uint64 // an Apply's last entry
	published uint64
}

// newSolo starts member 1 from storage ms (bootstrapping a new
// one-member cluster when ms is nil); call it inside a bubble.
func newSolo(t *testing.T, ms *raft.MemoryStorage) *soloFixture {
	t.Helper()
	sys := actortest.NewSystem()
	f := &soloFixture{
		sys: sys, wal: actortest.NewRecorder(1024), applier: actortest.NewRecorder(1024), peers: actortest.NewRecorder(1024),
		view: memberview.New(memberview.Member{ID: memberID, Name: "m"}, 1), waits: raftclient.NewWaits(),
		local: &raftclient.LocalReadIndex{},
	}
	f.applier.Reply = func(msg any) any {
		a, ok := msg.(*messages.Apply)
		if !ok {
			return nil
		}
		var ccs []*raftpb.ConfChange
		var last uint64
		for _, e := range a.Msg.Entries {
			last = e.GetIndex()
			if e.GetType() == raftpb.EntryConfChange {
				var cc raftpb.ConfChange
				if err := proto.Unmarshal(e.Data, &cc); err != nil {
					panic(err)
				}
				ccs = append(ccs, &cc)
			}
		}
		f.note(departure{what: "apply", lastIndex: last, published: f.local.Load()})
		return &messages.Applied{Msg: a.Msg, ConfChanges: ccs}
	}
	f.peers.Reply = func(msg any) any {
		if s, ok := msg.(*messages.SendRaft); ok {
			f.note(departure{what: s.Msg.GetType().String(), published: f.local.Load()})
		}
		return nil
	}
	var boot []raft.Peer
	if ms == nil {
		ms, boot = raft.NewMemoryStorage(), []raft.Peer{{ID: memberID}}
	}
	walPID, applierPID, peersPID := sys.Root.Spawn(f.wal.Props()), sys.Root.Spawn(f.applier.Props()), sys.Root.Spawn(f.peers.Props())
	f.pid = sys.Root.Spawn(Props(Config{
		ID: memberID, Storage: ms, Bootstrap: boot, ElectionTick: 10, HeartbeatTick: 1,
		WAL: walPID, Applier: applierPID, Peers: peersPID, Waits: f.waits, LocalReads: f.local, View: f.view,
		Logger: testLogger(),
	}))
	t.Cleanup(func() { stopAll(t, sys, f.pid, walPID, applierPID, peersPID) })
	return f
}

func (f *soloFixture) note(d departure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = append(f.seen, d)
}

// departures returns what left since the last call.
func (f *soloFixture) departures() []departure {
	synctest.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.seen
	f.seen = nil
	return out
}

// persistOne answers the Append in flight, if any, and reports whether
// there was one.
func (f *soloFixture) persistOne() bool {
	as := pending[*messages.Append](f.wal)
	for _, a := range as {
		f.sys.Root.Send(f.pid, &messages.Appended{Msg: a.Msg})
	}
	return len(as) > 0
}

// leadWithAppendHeld ticks and persists until member 1 leads, and
// returns the Append of its term's first entry, unanswered.
func (f *soloFixture) leadWithAppendHeld(t *testing.T) *messages.Append {
	t.Helper()
	for range 100 {
		f.sys.Root.Send(f.pid, &messages.Tick{})
		for {
			as := pending[*messages.Append](f.wal)
			if len(as) == 0 {
				break
			}
			if f.view.Leader() == memberID {
				if len(as) != 1 || len(as[0].Msg.Entries) == 0 || as[0].Msg.Entries[0].GetTerm() != f.view.Term() {
					t.Fatalf("the new leader's Append: %v, want one with the term's first entry", as)
				}
				return as[0]
			}
			for _, a := range as {
				f.sys.Root.Send(f.pid, &messages.Appended{Msg: a.Msg})
			}
		}
	}
	t.Fatal("member 1 did not become leader")
	return nil
}

// checkCovered fails if anything left the raft actor before the read
// index it published covered it: an Apply before its last entry, a
// message before the commit index of the Ready that carried it (which
// the view holds once the actor is idle).
func (f *soloFixture) checkCovered(t *testing.T, ds []departure, wantPublished bool) {
	t.Helper()
	for _, d := range ds {
		switch {
		case !wantPublished && d.published != 0:
			t.Fatalf("%s left with read index %d published, want none", d.what, d.published)
		case wantPublished && d.what == "apply" && d.published < d.lastIndex:
			t.Fatalf("apply up to %d left with read index %d published", d.lastIndex, d.published)
		case wantPublished && d.published == 0:
			t.Fatalf("%s left with no read index published", d.what)
		}
	}
}

// TestLocalReadsAfterTheTermsFirstCommit: a new single voter publishes no
// read index until the first entry of its term is committed, then its
// commit index, before the Ready that hands the entry to the applier
// leaves; reads then need no round.
func TestLocalReadsAfterTheTermsFirstCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSolo(t, nil)
		held := f.leadWithAppendHeld(t)
		f.checkCovered(t, f.departures(), false) // the bootstrap entry, applied as a follower
		if got := f.local.Load(); got != 0 {
			t.Fatalf("leader with nothing of its term committed published read index %d", got)
		}
		f.sys.Root.Send(f.pid, &messages.Appended{Msg: held.Msg})
		for f.persistOne() {
		}
		ds := f.departures()
		if len(ds) == 0 {
			t.Fatal("the term's first entry was not applied")
		}
		f.checkCovered(t, ds, true)
		first := held.Msg.Entries[0].GetIndex()
		if got := f.local.Load(); got < first || got != f.view.RaftIndex() {
			t.Fatalf("read index %d after the term's first commit (entry %d, commit %d)", got, first, f.view.RaftIndex())
		}

		// A proposal's Apply leaves with the read index at its entry.
		f.sys.Root.Send(f.pid, &messages.Propose{ID: 1, Data: []byte("a")})
		for f.persistOne() {
		}
		f.checkCovered(t, f.departures(), true)
		if got := f.local.Load(); got != first+1 {
			t.Fatalf("read index %d after a proposal, want %d", got, first+1)
		}
	})
}

// addMember proposes adding member 2 as a voter or a learner and persists
// and applies until the raft actor is idle.
func (f *soloFixture) addMember(learner bool) {
	typ := raftpb.ConfChangeAddNode
	if learner {
		typ = raftpb.ConfChangeAddLearnerNode
	}
	f.sys.Root.Send(f.pid, &messages.ProposeConfChange{CC: &raftpb.ConfChange{
		Type: typ.Enum(), NodeId: proto.Uint64(2), Id: proto.Uint64(100),
	}})
	for f.persistOne() {
	}
}

// TestLocalReadsAcrossMembershipChanges: a learner keeps the leader the
// only voter; a voter added (here: the learner promoted) withdraws the
// read index when the change is applied, before any message of the new
// configuration leaves, and reads take the round again.
func TestLocalReadsAcrossMembershipChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSolo(t, nil)
		f.sys.Root.Send(f.pid, &messages.Appended{Msg: f.leadWithAppendHeld(t).Msg})
		for f.persistOne() {
		}
		f.departures()

		f.addMember(true)
		learnerAdded := f.local.Load()
		f.checkCovered(t, f.departures(), true)
		if learnerAdded == 0 {
			t.Fatal("read index withdrawn when a learner was added")
		}

		f.addMember(false)
		if got := f.local.Load(); got != 0 {
			t.Fatalf("read index %d published with two voters", got)
		}
		// Whatever left after the promotion's Apply, and the heartbeats
		// of the new configuration, left without it.
		var ds []departure
		for _, d := range f.departures() {
			if d.what == "apply" {
				ds = nil
				continue
			}
			ds = append(ds, d)
		}
		tick(f.sys, f.pid, 3)
		ds = append(ds, f.departures()...)
		if len(ds) == 0 {
			t.Fatal("no message to member 2 after its promotion was applied")
		}
		f.checkCovered(t, ds, false)

		// A read takes the round to member 2 now.
		f.sys.Root.Send(f.pid, &messages.ReadIndex{ID: 7})
		synctest.Wait()
		heartbeats := 0
		for _, d := range f.departures() {
			if d.what == raftpb.MsgHeartbeat.String() {
				heartbeats++
			}
		}
		if heartbeats == 0 {
			t.Fatal("a read with two voters sent no heartbeat round")
		}
	})
}

// TestLocalReadsWithdrawnOnStepDown: a vote the leader grants (here a
// forced one, as a leadership transfer sends) or a leader of a higher term
// makes it a follower, and the read index is withdrawn before its answer
// leaves.
func TestLocalReadsWithdrawnOnStepDown(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  func(term, lastIndex, lastTerm uint64) *raftpb.Message
	}{
		{"vote", func(term, lastIndex, lastTerm uint64) *raftpb.Message {
			return &raftpb.Message{
				Type: raftpb.MsgVote.Enum(), From: proto.Uint64(2), To: proto.Uint64(memberID), Term: proto.Uint64(term + 1),
				Index: proto.Uint64(lastIndex), LogTerm: proto.Uint64(lastTerm), Context: []byte("CampaignTransfer"), // raft's campaignTransfer: no lease check,
			}
		}},
		{"higher term", func(term, _, _ uint64) *raftpb.Message {
			return &raftpb.Message{
				Type: raftpb.MsgHeartbeat.Enum(), From: proto.Uint64(2), To: proto.Uint64(memberID), Term: proto.Uint64(term + 1),
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newSolo(t, nil)
				held := f.leadWithAppendHeld(t)
				f.sys.Root.Send(f.pid, &messages.Appended{Msg: held.Msg})
				for f.persistOne() {
				}
				f.departures()
				if f.local.Load() == 0 {
					t.Fatal("no read index published before the step-down")
				}
				last := held.Msg.Entries[len(held.Msg.Entries)-1]
				f.sys.Root.Send(f.pid, &messages.StepRaft{Msgs: []*raftpb.Message{tc.msg(f.view.Term(), last.GetIndex(), last.GetTerm())}})
				for f.persistOne() {
				}
				ds := f.departures()
				if len(ds) == 0 {
					t.Fatal("the step-down sent nothing")
				}
				f.checkCovered(t, ds, false)
				if f.view.Leader() == memberID || f.local.Load() != 0 {
					t.Fatalf("after the step-down: leader %d, read index %d", f.view.Leader(), f.local.Load())
				}
			})
		})
	}
}

// restartedSolo is the storage of a single voter that crashed after
// committing entries 2-5 of term 2 while its hard state said commit 3 (a
// commit-only hard state is written without a sync).
func restartedSolo() *raft.MemoryStorage {
	ms := raft.NewMemoryStorage()
	_ = ms.ApplySnapshot(&raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
		Index: proto.Uint64(1), Term: proto.Uint64(1), ConfState: &raftpb.ConfState{Voters: []uint64{memberID}},
	}})
	var ents []*raftpb.Entry
	for i := uint64(2); i <= 5; i++ {
		ents = append(ents, &raftpb.Entry{Index: proto.Uint64(i), Term: proto.Uint64(2), Data: []byte("w")})
	}
	_ = ms.Append(ents)
	_ = ms.SetHardState(&raftpb.HardState{Term: proto.Uint64(2), Vote: proto.Uint64(memberID), Commit: proto.Uint64(3)})
	return ms
}

// TestRestartedSoloReadsWaitForTheTermsCommit: after a restart whose hard
// state lags what was committed (and may have been acknowledged), neither
// the local read index nor a read index round answers before the term's
// first entry, which follows every entry committed before, is committed.
// raft answers a single voter's ReadIndex at once with its commit index
// (3 here), so the raft actor holds the round until then.
func TestRestartedSoloReadsWaitForTheTermsCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSolo(t, restartedSolo())
		held := f.leadWithAppendHeld(t)
		first := held.Msg.Entries[0].GetIndex()
		if first != 6 {
			t.Fatalf("the term's first entry at %d, want 6", first)
		}
		read := f.waits.Reads.Register(9)
		f.sys.Root.Send(f.pid, &messages.ReadIndex{ID: 9})
		noAnswer(t, "read index before the term's first commit", read)
		if got := f.local.Load(); got != 0 {
			t.Fatalf("read index %d published before the term's first commit", got)
		}
		f.sys.Root.Send(f.pid, &messages.Appended{Msg: held.Msg})
		for f.persistOne() {
		}
		if r := answer(t, "read index after the term's first commit", read); r.Err != nil || r.Index < first {
			t.Fatalf("read index %+v, want at least %d", r, first)
		}
		if got := f.local.Load(); got < first {
			t.Fatalf("published read index %d, want at least %d", got, first)
		}
	})
}

// TestFollowerAndLearnerPublishNothing: a member that does not lead, a
// follower of a two-voter cluster or a learner of a single voter,
// publishes no read index.
func TestFollowerAndLearnerPublishNothing(t *testing.T) {
	for _, cs := range []*raftpb.ConfState{
		{Voters: []uint64{2, 3}},
		{Voters: []uint64{3}, Learners: []uint64{2}},
	} {
		synctest.Test(t, func(t *testing.T) {
			sys := actortest.NewSystem()
			local := &raftclient.LocalReadIndex{}
			ms := raft.NewMemoryStorage()
			_ = ms.ApplySnapshot(&raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
				Index: proto.Uint64(1), Term: proto.Uint64(1), ConfState: cs,
			}})
			wal, applier := actortest.NewRecorder(64), actortest.NewRecorder(64)
			wal.Reply = func(msg any) any {
				if a, ok := msg.(*messages.Append); ok {
					return &messages.Appended{Msg: a.Msg}
				}
				return nil
			}
			walPID, applierPID := sys.Root.Spawn(wal.Props()), sys.Root.Spawn(applier.Props())
			pid := sys.Root.Spawn(Props(Config{
				ID: 2, Storage: ms, ElectionTick: 10, HeartbeatTick: 1, WAL: walPID, Applier: applierPID,
				Waits: raftclient.NewWaits(), LocalReads: local, View: memberview.New(memberview.Member{ID: 2, Name: "m"}, 1),
				Logger: testLogger(),
			}))
			t.Cleanup(func() { stopAll(t, sys, pid, walPID, applierPID) })
			leaderAppears(sys, pid)
			// Member 3 commits an entry of its term at index 2.
			sys.Root.Send(pid, &messages.StepRaft{Msgs: []*raftpb.Message{{
				Type: raftpb.MsgApp.Enum(), From: proto.Uint64(3), To: proto.Uint64(2), Term: proto.Uint64(2),
				LogTerm: proto.Uint64(1), Index: proto.Uint64(1), Commit: proto.Uint64(2),
				Entries: []*raftpb.Entry{{Index: proto.Uint64(2), Term: proto.Uint64(2)}},
			}}})
			tick(sys, pid, 5)
			if got := local.Load(); got != 0 {
				t.Fatalf("%v: member 2 published read index %d", cs, got)
			}
		})
	}
}
