package raft

import (
	"fmt"
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

// soloFixture drives member 1, the only voter, on the test's goroutine:
// the fixture is the actor's context, so every message the actor sends
// (an Append, an Apply, a raft message to a peer) is recorded with the
// read index published at the moment it left. (Recipients of a spawned
// actor run concurrently and would look too late.) The test plays the
// WAL and the applier, which hands applied configuration changes back as
// the real one does.
type soloFixture struct {
	actor.Context // unset: the raft actor calls only the methods below
	r             *raftActor
	self          *actor.PID
	msg           any
	inbox         []any // what the actor sent itself, not yet delivered
	sent          []departure
	view          *memberview.View
	waits         *raftclient.Waits
	local         *raftclient.LocalReadIndex
}

// departure is a message the actor sent, with the read index published
// when it was sent.
type departure struct {
	msg       any
	published uint64
}

func (f *soloFixture) Message() any     { return f.msg }
func (f *soloFixture) Self() *actor.PID { return f.self }
func (f *soloFixture) Send(pid *actor.PID, msg any) {
	if pid.Equal(f.self) {
		f.inbox = append(f.inbox, msg)
		return
	}
	f.sent = append(f.sent, departure{msg: msg, published: f.local.Load()})
}
func (f *soloFixture) Request(pid *actor.PID, msg any) { f.Send(pid, msg) }

// deliver hands msg to the actor, then what it sent itself meanwhile.
func (f *soloFixture) deliver(msg any) {
	f.inbox = append(f.inbox, msg)
	for len(f.inbox) > 0 {
		f.msg, f.inbox = f.inbox[0], f.inbox[1:]
		f.r.Receive(f)
	}
}

// newSolo starts member 1 from storage ms (bootstrapping a new
// one-member cluster when ms is nil).
func newSolo(t *testing.T, ms *raft.MemoryStorage) *soloFixture {
	t.Helper()
	f := &soloFixture{
		self: actor.NewPID("solo", "raft"), view: memberview.New(memberview.Member{ID: memberID, Name: "m"}, 1),
		waits: raftclient.NewWaits(), local: &raftclient.LocalReadIndex{},
	}
	var boot []raft.Peer
	if ms == nil {
		ms, boot = raft.NewMemoryStorage(), []raft.Peer{{ID: memberID}}
	}
	f.r = &raftActor{cfg: Config{
		ID: memberID, Storage: ms, Bootstrap: boot, ElectionTick: 10, HeartbeatTick: 1,
		WAL: actor.NewPID("solo", "wal"), Applier: actor.NewPID("solo", "applier"), Peers: actor.NewPID("solo", "peers"),
		Waits: f.waits, LocalReads: f.local, View: f.view, Logger: testLogger(),
	}}
	f.deliver(&actor.Started{})
	return f
}

// departures returns what left since the last call.
func (f *soloFixture) departures() []departure {
	out := f.sent
	f.sent = nil
	return out
}

// persistAll answers every Append as a durable WAL and every Apply as the
// applier, until the actor sends no more, and returns what left.
func (f *soloFixture) persistAll() []departure {
	var all []departure
	for range 1000 {
		ds := f.departures()
		if len(ds) == 0 {
			return all
		}
		all = append(all, ds...)
		for _, d := range ds {
			f.answer(d.msg)
		}
	}
	panic("the raft actor never went idle")
}

// answer answers an Append or an Apply as the WAL or the applier would.
func (f *soloFixture) answer(msg any) {
	switch m := msg.(type) {
	case *messages.Append:
		f.deliver(&messages.Appended{Msg: m.Msg})
	case *messages.Apply:
		var ccs []*raftpb.ConfChange
		for _, e := range m.Msg.Entries {
			if e.GetType() == raftpb.EntryConfChange {
				var cc raftpb.ConfChange
				if err := proto.Unmarshal(e.Data, &cc); err != nil {
					panic(err)
				}
				ccs = append(ccs, &cc)
			}
		}
		f.deliver(&messages.Applied{Msg: m.Msg, ConfChanges: ccs})
	}
}

// leadWithAppendHeld ticks and persists until member 1 leads, and
// returns the Append of its term's first entry, unanswered.
func (f *soloFixture) leadWithAppendHeld(t *testing.T) *messages.Append {
	t.Helper()
	for range 100 {
		f.deliver(&messages.Tick{})
		for range 100 {
			ds := f.departures()
			if len(ds) == 0 {
				break
			}
			for _, d := range ds {
				if a, ok := d.msg.(*messages.Append); ok && f.view.Leader() == memberID {
					if len(a.Msg.Entries) == 0 || a.Msg.Entries[0].GetTerm() != f.view.Term() {
						t.Fatalf("the new leader's Append: %v, want the term's first entry", a.Msg)
					}
					return a
				}
				f.answer(d.msg)
			}
		}
	}
	t.Fatal("member 1 did not become leader")
	return nil
}

// checkCovered fails if anything left before the read index covered it:
// with wantPublished, an Apply before the index reached its last entry
// and a raft message before any index; without, anything while one was
// published.
func checkCovered(t *testing.T, ds []departure, wantPublished bool) {
	t.Helper()
	for _, d := range ds {
		what := fmt.Sprintf("%T", d.msg)
		if s, ok := d.msg.(*messages.SendRaft); ok {
			what = s.Msg.GetType().String()
		}
		var last uint64
		if a, ok := d.msg.(*messages.Apply); ok && len(a.Msg.Entries) > 0 {
			last = a.Msg.Entries[len(a.Msg.Entries)-1].GetIndex()
		}
		switch {
		case !wantPublished && d.published != 0:
			t.Fatalf("%s left with read index %d published, want none", what, d.published)
		case wantPublished && (d.published == 0 || d.published < last):
			t.Fatalf("%s (last entry %d) left with read index %d published", what, last, d.published)
		}
	}
}

// TestLocalReadsAfterTheTermsFirstCommit: a new single voter publishes no
// read index until the first entry of its term is committed, then its
// commit index, before the Ready that hands the entry to the applier
// leaves; reads then need no round.
func TestLocalReadsAfterTheTermsFirstCommit(t *testing.T) {
	f := newSolo(t, nil)
	held := f.leadWithAppendHeld(t)
	if got := f.local.Load(); got != 0 {
		t.Fatalf("leader with nothing of its term committed published read index %d", got)
	}
	f.answer(held)
	ds := f.persistAll()
	checkCovered(t, ds, true)
	first := held.Msg.Entries[0].GetIndex()
	if got := f.local.Load(); got < first || got != f.view.RaftIndex() {
		t.Fatalf("read index %d after the term's first commit (entry %d, commit %d)", got, first, f.view.RaftIndex())
	}

	// A proposal's Apply leaves with the read index at its entry, and a
	// read is answered with it, without a round.
	f.deliver(&messages.Propose{ID: 1, Data: []byte("a")})
	checkCovered(t, f.persistAll(), true)
	if got := f.local.Load(); got != first+1 {
		t.Fatalf("read index %d after a proposal, want %d", got, first+1)
	}
	read := f.waits.Reads.Register(9)
	f.deliver(&messages.ReadIndex{ID: 9})
	if r := <-read; r.Err != nil || r.Index != first+1 {
		t.Fatalf("read index %+v, want %d", r, first+1)
	}
	if ds := f.departures(); len(ds) != 0 {
		t.Fatalf("a read sent %d messages, want none", len(ds))
	}

	// A stopping actor withdraws it.
	f.deliver(&actor.Stopping{})
	if got := f.local.Load(); got != 0 {
		t.Fatalf("read index %d after Stopping", got)
	}
}

// addMember proposes adding member 2 as a voter or a learner and persists
// and applies until the raft actor is idle.
func (f *soloFixture) addMember(learner bool) []departure {
	typ := raftpb.ConfChangeAddNode
	if learner {
		typ = raftpb.ConfChangeAddLearnerNode
	}
	f.deliver(&messages.ProposeConfChange{CC: &raftpb.ConfChange{
		Type: typ.Enum(), NodeId: proto.Uint64(2), Id: proto.Uint64(100),
	}})
	return f.persistAll()
}

// TestLocalReadsAcrossMembershipChanges: a learner keeps the leader the
// only voter; a voter added (here: the learner promoted) withdraws the
// read index when the change is applied, before any message of the new
// configuration leaves, and reads take the round again.
func TestLocalReadsAcrossMembershipChanges(t *testing.T) {
	f := newSolo(t, nil)
	f.answer(f.leadWithAppendHeld(t))
	f.persistAll()

	checkCovered(t, f.addMember(true), true)
	if f.local.Load() == 0 {
		t.Fatal("read index withdrawn when a learner was added")
	}

	// Whatever left after the promotion's Apply, and the heartbeats of
	// the new configuration, left without it.
	var after []departure
	for _, d := range f.addMember(false) {
		if _, ok := d.msg.(*messages.Apply); ok {
			after = nil
			continue
		}
		after = append(after, d)
	}
	if got := f.local.Load(); got != 0 {
		t.Fatalf("read index %d published with two voters", got)
	}
	for range 3 {
		f.deliver(&messages.Tick{})
	}
	after = append(after, f.departures()...)
	if len(after) == 0 {
		t.Fatal("no message to member 2 after its promotion was applied")
	}
	checkCovered(t, after, false)

	// A read takes a heartbeat round to member 2 now.
	read := f.waits.Reads.Register(7)
	f.deliver(&messages.ReadIndex{ID: 7})
	heartbeats := 0
	for _, d := range f.departures() {
		if s, ok := d.msg.(*messages.SendRaft); ok && s.Msg.GetType() == raftpb.MsgHeartbeat && len(s.Msg.Context) > 0 {
			heartbeats++
		}
	}
	if heartbeats != 1 {
		t.Fatalf("a read with two voters sent %d heartbeats with a read context, want 1", heartbeats)
	}
	select {
	case r := <-read:
		t.Fatalf("read answered %+v without member 2", r)
	default:
	}
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
				Index: proto.Uint64(lastIndex), LogTerm: proto.Uint64(lastTerm),
				Context: []byte("CampaignTransfer"), // raft's campaignTransfer: no lease check
			}
		}},
		{"higher term", func(term, _, _ uint64) *raftpb.Message {
			return &raftpb.Message{
				Type: raftpb.MsgHeartbeat.Enum(), From: proto.Uint64(2), To: proto.Uint64(memberID), Term: proto.Uint64(term + 1),
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSolo(t, nil)
			held := f.leadWithAppendHeld(t)
			f.answer(held)
			f.persistAll()
			if f.local.Load() == 0 {
				t.Fatal("no read index published before the step-down")
			}
			last := held.Msg.Entries[len(held.Msg.Entries)-1]
			f.deliver(&messages.StepRaft{Msgs: []*raftpb.Message{tc.msg(f.view.Term(), last.GetIndex(), last.GetTerm())}})
			ds := f.persistAll()
			answered := false
			for _, d := range ds {
				if s, ok := d.msg.(*messages.SendRaft); ok && s.Msg.GetTo() == 2 {
					answered = true
				}
			}
			if !answered {
				t.Fatal("the step-down sent member 2 nothing")
			}
			checkCovered(t, ds, false)
			if f.view.Leader() == memberID || f.local.Load() != 0 {
				t.Fatalf("after the step-down: leader %d, read index %d", f.view.Leader(), f.local.Load())
			}
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
	f := newSolo(t, restartedSolo())
	held := f.leadWithAppendHeld(t)
	first := held.Msg.Entries[0].GetIndex()
	if first != 6 {
		t.Fatalf("the term's first entry at %d, want 6", first)
	}
	read := f.waits.Reads.Register(9)
	f.deliver(&messages.ReadIndex{ID: 9})
	for range 20 {
		f.deliver(&messages.Tick{}) // resends would go to raft, too
	}
	select {
	case r := <-read:
		t.Fatalf("read index before the term's first commit answered %+v, want it waiting", r)
	default:
	}
	if got := f.local.Load(); got != 0 {
		t.Fatalf("read index %d published before the term's first commit", got)
	}
	f.answer(held)
	f.persistAll()
	select {
	case r := <-read:
		if r.Err != nil || r.Index < first {
			t.Fatalf("read index %+v, want at least %d", r, first)
		}
	default:
		t.Fatal("read index not answered after the term's first commit")
	}
	if got := f.local.Load(); got < first {
		t.Fatalf("published read index %d, want at least %d", got, first)
	}
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
