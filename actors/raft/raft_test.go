package raft

import (
	"log/slog"
	"testing"
	"testing/synctest"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/troupedb/troupe/actors/internal/actortest"
	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/messages"
)

// Every test runs in a synctest bubble: ticks are sent by hand (no ticker
// child), and synctest.Wait stands for "the actors did all they could",
// so nothing waits on a wall clock.

// fixture runs a raft actor whose wal and applier are recorders; the test
// plays both: it answers Appends with Appended and Applies with Applied.
type fixture struct {
	sys     *actor.ActorSystem
	pid     *actor.PID
	wal     *actortest.Recorder
	applier *actortest.Recorder
	view    *memberview.View
	waits   *raftclient.Waits
}

const memberID = 1

func testLogger() *slog.Logger { return actortest.Logger() }

// newFixture starts member 1 of a new one-member cluster; call it inside a
// bubble. The actor system is stopped by a cleanup, inside the bubble.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	sys := actortest.NewSystem()
	f := &fixture{
		sys:     sys,
		wal:     actortest.NewRecorder(1024),
		applier: actortest.NewRecorder(1024),
		view:    memberview.New(memberview.Member{ID: memberID, Name: "m"}, 1),
		waits:   raftclient.NewWaits(),
	}
	f.applier.Reply = func(msg any) any {
		if a, ok := msg.(*messages.Apply); ok {
			return &messages.Applied{Msg: a.Msg}
		}
		return nil
	}
	walPID := sys.Root.Spawn(f.wal.Props())
	applierPID := sys.Root.Spawn(f.applier.Props())
	f.pid = sys.Root.Spawn(Props(Config{
		ID: memberID, Storage: raft.NewMemoryStorage(), Bootstrap: []raft.Peer{{ID: memberID}},
		ElectionTick: 10, HeartbeatTick: 1,
		WAL: walPID, Applier: applierPID, Waits: f.waits, View: f.view, Logger: testLogger(),
	}))
	t.Cleanup(func() { stopAll(t, sys, f.pid, walPID, applierPID) })
	return f
}

// stopAll stops the actors and the system, so no goroutine outlives the
// bubble.
func stopAll(t *testing.T, sys *actor.ActorSystem, pids ...*actor.PID) {
	t.Helper()
	for _, pid := range pids {
		if err := sys.Root.StopFuture(pid).Wait(); err != nil {
			t.Errorf("stop %s: %v", pid.Id, err)
		}
	}
	actortest.Shutdown(sys)
}

// pending returns the messages a recorder holds once the actors are idle.
func pending[T any](r *actortest.Recorder) []T {
	synctest.Wait()
	var out []T
	for {
		select {
		case m := <-r.C:
			if v, ok := m.(T); ok {
				out = append(out, v)
			}
		default:
			return out
		}
	}
}

// persistAll answers every Append as a durable WAL would, until the raft
// actor sends no more, and returns them.
func (f *fixture) persistAll() []*messages.Append {
	var all []*messages.Append
	for {
		as := pending[*messages.Append](f.wal)
		if len(as) == 0 {
			return all
		}
		for _, a := range as {
			f.sys.Root.Send(f.pid, &messages.Appended{Msg: a.Msg})
		}
		all = append(all, as...)
	}
}

// elect drives the bootstrap and election by ticking and persisting until
// the member leads.
func (f *fixture) elect(t *testing.T) {
	t.Helper()
	for i := 0; i < 100 && f.view.Leader() != memberID; i++ {
		f.sys.Root.Send(f.pid, &messages.Tick{})
		f.persistAll()
	}
	if f.view.Leader() != memberID {
		t.Fatal("member did not become leader")
	}
	f.persistAll()
	pending[*messages.Apply](f.applier) // the bootstrap configuration
}

func TestProposalsAreBatchedBehindTheWAL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		f.elect(t)
		// Hold the WAL: the first proposal's Append stays unanswered while
		// more proposals arrive.
		f.sys.Root.Send(f.pid, &messages.Propose{ID: 1, Data: []byte("a")})
		first := pending[*messages.Append](f.wal)
		if len(first) != 1 || len(first[0].Msg.Entries) != 1 {
			t.Fatalf("first proposal: %d Appends, want 1 with its entry", len(first))
		}
		for i := uint64(2); i <= 50; i++ {
			f.sys.Root.Send(f.pid, &messages.Propose{ID: i, Data: []byte("b")})
		}
		if held := pending[*messages.Append](f.wal); len(held) != 0 {
			t.Fatalf("%d Appends sent while one is in flight, want 0", len(held))
		}
		if got := pending[*messages.Apply](f.applier); len(got) != 0 {
			t.Fatalf("%d Applies before the first entry was durable", len(got))
		}
		// The 49 queued proposals go out in one Append once the WAL
		// answers.
		f.sys.Root.Send(f.pid, &messages.Appended{Msg: first[0].Msg})
		next := pending[*messages.Append](f.wal)
		if len(next) != 1 || len(next[0].Msg.Entries) != 49 {
			t.Fatalf("after the first Appended: %d Appends, want one with the 49 queued entries", len(next))
		}
		f.sys.Root.Send(f.pid, &messages.Appended{Msg: next[0].Msg})
		f.persistAll()
		// Every entry reaches the applier in index order, after it was
		// durable.
		var last uint64
		seen := 0
		for _, a := range pending[*messages.Apply](f.applier) {
			for _, e := range a.Msg.Entries {
				if e.GetIndex() <= last {
					t.Fatalf("entry %d applied after %d", e.GetIndex(), last)
				}
				last = e.GetIndex()
				if len(e.Data) > 0 {
					seen++
				}
			}
		}
		if seen != 50 {
			t.Fatalf("%d proposals applied, want 50", seen)
		}
	})
}

func TestReadIndexAnswersThroughWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		f.elect(t)
		chs := make([]<-chan raftclient.ReadResult, 10)
		for i := range chs {
			chs[i] = f.waits.Reads.Register(uint64(100 + i))
			f.sys.Root.Send(f.pid, &messages.ReadIndex{ID: uint64(100 + i)})
		}
		f.persistAll()
		commit := f.view.RaftIndex()
		for i, ch := range chs {
			select {
			case r := <-ch:
				if r.Err != nil || r.Index != commit {
					t.Fatalf("read %d got %+v, want index %d", i, r, commit)
				}
			default:
				t.Fatalf("read %d not answered", i)
			}
		}
	})
}

// noLeader starts member 2 of a two-member cluster whose peer never
// answers: it has no leader. The raft messages for member 3 go to peers.
func noLeader(t *testing.T, sys *actor.ActorSystem, waits *raftclient.Waits, peers *actortest.Recorder) *actor.PID {
	t.Helper()
	return noLeaderWith(t, sys, waits, peers, false)
}

// noLeaderWith is noLeader whose WAL persists at once, with Pre-Vote off
// if asked.
func noLeaderWith(t *testing.T, sys *actor.ActorSystem, waits *raftclient.Waits, peers *actortest.Recorder, disablePreVote bool) *actor.PID {
	t.Helper()
	return member2(t, sys, waits, peers, func(c *Config) { c.DisablePreVote = disablePreVote })
}

// member2 is noLeader with its Config changed by configure.
func member2(t *testing.T, sys *actor.ActorSystem, waits *raftclient.Waits, peers *actortest.Recorder, configure func(*Config)) *actor.PID {
	t.Helper()
	wal, applier := actortest.NewRecorder(4096), actortest.NewRecorder(4096)
	// Named in advance: the wal answers the raft actor's first Append,
	// which may come before Spawn returns.
	pid := actor.NewPID(sys.Address(), "member2")
	wal.Reply = func(msg any) any {
		if a, ok := msg.(*messages.Append); ok {
			// Sent, not answered: the raft actor sends Appends without a
			// sender.
			sys.Root.Send(pid, &messages.Appended{Msg: a.Msg})
		}
		return nil
	}
	ms := raft.NewMemoryStorage()
	_ = ms.ApplySnapshot(&raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
		Index: new(uint64(1)), Term: new(uint64(1)), ConfState: &raftpb.ConfState{Voters: []uint64{2, 3}},
	}})
	walPID, applierPID, peersPID := sys.Root.Spawn(wal.Props()), sys.Root.Spawn(applier.Props()), sys.Root.Spawn(peers.Props())
	cfg := Config{
		ID: 2, Storage: ms, ElectionTick: 10, HeartbeatTick: 1,
		WAL: walPID, Applier: applierPID, Peers: peersPID,
		Waits: waits, View: memberview.New(memberview.Member{ID: 2, Name: "m"}, 1), Logger: testLogger(),
	}
	configure(&cfg)
	if _, err := sys.Root.SpawnNamed(Props(cfg), pid.Id); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopAll(t, sys, pid, walPID, applierPID, peersPID) })
	return pid
}

func tick(sys *actor.ActorSystem, pid *actor.PID, n int) {
	for range n {
		sys.Root.Send(pid, &messages.Tick{})
	}
	synctest.Wait()
}

// TestPreVoteFlag: with Pre-Vote (etcd's --pre-vote, on by default) an
// election starts with MsgPreVote at the same term; without it, the
// member bumps its term and sends MsgVote at once.
func TestPreVoteFlag(t *testing.T) {
	for _, disable := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			sys := actortest.NewSystem()
			peers := actortest.NewRecorder(1024)
			pid := noLeaderWith(t, sys, raftclient.NewWaits(), peers, disable)
			tick(sys, pid, 21) // past the longest randomized election timeout
			first := raftpb.MessageType(-1)
			for _, m := range pending[*messages.SendRaft](peers) {
				if first < 0 && (m.Msg.GetType() == raftpb.MsgPreVote || m.Msg.GetType() == raftpb.MsgVote) {
					first = m.Msg.GetType()
				}
			}
			want := raftpb.MsgPreVote
			if disable {
				want = raftpb.MsgVote
			}
			if first != want {
				t.Fatalf("DisablePreVote %v: campaign opened with %v, want %v", disable, first, want)
			}
		})
	}
}

// threeVoters starts member 2 of the voters 2, 3, 4, whose peers never
// answer raft messages; the view says whether they answer probes.
func threeVoters(t *testing.T, sys *actor.ActorSystem, peers *actortest.Recorder, view *memberview.View, skipAdvance bool) *actor.PID {
	t.Helper()
	wal, applier := actortest.NewRecorder(64), actortest.NewRecorder(64)
	wal.Reply = func(msg any) any {
		if a, ok := msg.(*messages.Append); ok {
			return &messages.Appended{Msg: a.Msg}
		}
		return nil
	}
	ms := raft.NewMemoryStorage()
	_ = ms.ApplySnapshot(&raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
		Index: new(uint64(1)), Term: new(uint64(1)), ConfState: &raftpb.ConfState{Voters: []uint64{2, 3, 4}},
	}})
	walPID, applierPID, peersPID := sys.Root.Spawn(wal.Props()), sys.Root.Spawn(applier.Props()), sys.Root.Spawn(peers.Props())
	pid := sys.Root.Spawn(Props(Config{
		ID: 2, Storage: ms, ElectionTick: electionTicks, HeartbeatTick: 1, SkipElectionTickAdvance: skipAdvance,
		WAL: walPID, Applier: applierPID, Peers: peersPID,
		Waits: raftclient.NewWaits(), View: view, Logger: testLogger(),
	}))
	t.Cleanup(func() { stopAll(t, sys, pid, walPID, applierPID, peersPID) })
	return pid
}

const electionTicks = 50

// ticksToCampaign ticks pid one tick at a time until it sends a pre-vote,
// and returns how many ticks that took (0: none in three timeouts).
func ticksToCampaign(sys *actor.ActorSystem, pid *actor.PID, peers *actortest.Recorder) int {
	for n := 1; n <= 3*electionTicks; n++ {
		tick(sys, pid, 1)
		for _, m := range pending[*messages.SendRaft](peers) {
			if m.Msg.GetType() == raftpb.MsgPreVote {
				return n
			}
		}
	}
	return 0
}

// TestInitialElectionTickAdvance: as etcd's --initial-election-tick-advance,
// a member of a multi-member cluster whose two peers answer fast-forwards
// election-2 ticks, so its first campaign comes within election+1 ticks
// (raft's timeout is random in [election, 2*election)); with the advance
// skipped, or while fewer than two peers answer, it never campaigns before
// a whole election timeout. (A wrong implementation fails each case with
// probability about 1-2/electionTicks.)
func TestInitialElectionTickAdvance(t *testing.T) {
	for _, tc := range []struct {
		name        string
		skip        bool
		activePeers []uint64
		advanced    bool
	}{
		{"advance", false, []uint64{3, 4}, true},
		{"skipped", true, []uint64{3, 4}, false},
		{"one peer answers", false, []uint64{3}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sys := actortest.NewSystem()
				peers := actortest.NewRecorder(4096)
				view := memberview.New(memberview.Member{ID: 2, Name: "m"}, 1)
				for _, id := range tc.activePeers {
					view.SetPeerActive(id, true)
				}
				pid := threeVoters(t, sys, peers, view, tc.skip)
				n := ticksToCampaign(sys, pid, peers)
				switch {
				case n == 0:
					t.Fatal("no campaign in three election timeouts")
				case tc.advanced && n > electionTicks+1:
					t.Fatalf("first campaign after %d ticks, want at most %d with the advance", n, electionTicks+1)
				case !tc.advanced && n < electionTicks:
					t.Fatalf("first campaign after %d ticks, want a whole election timeout (%d) without the advance", n, electionTicks)
				}
			})
		})
	}
}

// TestFollowerForwardsHeldProposalsAsOne: a follower whose WAL is busy
// holds the proposals that arrive meanwhile and forwards them to the
// leader as one MsgProp once the WAL answers, not one per mailbox run.
func TestFollowerForwardsHeldProposalsAsOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := actortest.NewSystem()
		wal, applier, peers := actortest.NewRecorder(1024), actortest.NewRecorder(1024), actortest.NewRecorder(1024)
		ms := raft.NewMemoryStorage()
		_ = ms.ApplySnapshot(&raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
			Index: new(uint64(1)), Term: new(uint64(1)), ConfState: &raftpb.ConfState{Voters: []uint64{2, 3}},
		}})
		walPID, applierPID, peersPID := sys.Root.Spawn(wal.Props()), sys.Root.Spawn(applier.Props()), sys.Root.Spawn(peers.Props())
		pid := sys.Root.Spawn(Props(Config{
			ID: 2, Storage: ms, ElectionTick: 10, HeartbeatTick: 1,
			WAL: walPID, Applier: applierPID, Peers: peersPID, Waits: raftclient.NewWaits(),
			View: memberview.New(memberview.Member{ID: 2, Name: "m"}, 1), Logger: testLogger(),
		}))
		t.Cleanup(func() { stopAll(t, sys, pid, walPID, applierPID, peersPID) })

		// Member 3 leads at term 2: the new term is an Append the test
		// leaves in flight.
		sys.Root.Send(pid, &messages.StepRaft{Msgs: []*raftpb.Message{{
			Type: raftpb.MsgHeartbeat.Enum(), From: new(uint64(3)), To: new(uint64(2)), Term: new(uint64(2)), Commit: new(uint64(1)),
		}}})
		inFlight := pending[*messages.Append](wal)
		if len(inFlight) != 1 {
			t.Fatalf("%d Appends after the leader's heartbeat, want 1", len(inFlight))
		}
		for i := uint64(1); i <= 10; i++ {
			// One at a time, as proposers on many goroutines arrive.
			sys.Root.Send(pid, &messages.Propose{ID: i, Data: []byte("v")})
			synctest.Wait()
		}
		props := func() []*raftpb.Message {
			var out []*raftpb.Message
			for _, s := range pending[*messages.SendRaft](peers) {
				if s.Msg.GetType() == raftpb.MsgProp {
					out = append(out, s.Msg)
				}
			}
			return out
		}
		if got := props(); len(got) != 0 {
			t.Fatalf("%d MsgProp forwarded while the WAL is busy, want 0", len(got))
		}
		sys.Root.Send(pid, &messages.Appended{Msg: inFlight[0].Msg})
		got := props()
		if len(got) != 1 || len(got[0].Entries) != 10 || got[0].GetTo() != 3 {
			t.Fatalf("after Appended: %d MsgProp, want one to member 3 with the 10 held entries", len(got))
		}
	})
}

// twoMembers runs member 1 of a two-member cluster {1, 2} whose wal and
// peers are recorders; the test plays member 2 (play) and the WAL.
type twoMembers struct {
	sys        *actor.ActorSystem
	pid        *actor.PID
	wal, peers *actortest.Recorder
	view       *memberview.View
	waits      *raftclient.Waits
}

func newTwoMembers(t *testing.T) *twoMembers {
	t.Helper()
	sys := actortest.NewSystem()
	tm := &twoMembers{
		sys: sys, wal: actortest.NewRecorder(1024), peers: actortest.NewRecorder(1024),
		view: memberview.New(memberview.Member{ID: 1, Name: "m"}, 1), waits: raftclient.NewWaits(),
	}
	applier := actortest.NewRecorder(1024)
	ms := raft.NewMemoryStorage()
	_ = ms.ApplySnapshot(&raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
		Index: new(uint64(1)), Term: new(uint64(1)), ConfState: &raftpb.ConfState{Voters: []uint64{1, 2}},
	}})
	walPID, applierPID, peersPID := sys.Root.Spawn(tm.wal.Props()), sys.Root.Spawn(applier.Props()), sys.Root.Spawn(tm.peers.Props())
	tm.pid = sys.Root.Spawn(Props(Config{
		ID: 1, Storage: ms, ElectionTick: 10, HeartbeatTick: 1, SkipElectionTickAdvance: true,
		WAL: walPID, Applier: applierPID, Peers: peersPID, Waits: tm.waits, View: tm.view, Logger: testLogger(),
	}))
	t.Cleanup(func() { stopAll(t, sys, tm.pid, walPID, applierPID, peersPID) })
	return tm
}

// play persists every Append and answers as member 2 would; it returns
// the MsgApps member 2 got.
func (tm *twoMembers) play() []*raftpb.Message {
	var apps []*raftpb.Message
	for {
		synctest.Wait()
		as := pending[*messages.Append](tm.wal)
		for _, a := range as {
			tm.sys.Root.Send(tm.pid, &messages.Appended{Msg: a.Msg})
		}
		var replies []*raftpb.Message
		for _, s := range pending[*messages.SendRaft](tm.peers) {
			m := s.Msg
			r := &raftpb.Message{From: new(uint64(2)), To: new(uint64(1)), Term: new(m.GetTerm())}
			switch m.GetType() {
			case raftpb.MsgPreVote:
				r.Type = raftpb.MsgPreVoteResp.Enum()
			case raftpb.MsgVote:
				r.Type = raftpb.MsgVoteResp.Enum()
			case raftpb.MsgApp:
				apps = append(apps, m)
				r.Type = raftpb.MsgAppResp.Enum()
				r.Index = new(m.GetIndex() + uint64(len(m.Entries)))
			default:
				continue
			}
			replies = append(replies, r)
		}
		if len(replies) > 0 {
			tm.sys.Root.Send(tm.pid, &messages.StepRaft{Msgs: replies})
		}
		if len(as) == 0 && len(replies) == 0 {
			return apps
		}
	}
}

// elect ticks and plays until member 1 leads.
func (tm *twoMembers) elect(t *testing.T) {
	t.Helper()
	for i := 0; i < 100 && tm.view.Leader() != 1; i++ {
		tm.sys.Root.Send(tm.pid, &messages.Tick{})
		tm.play()
	}
	if tm.view.Leader() != 1 {
		t.Fatal("member 1 did not become leader")
	}
}

// appendInFlight proposes "a" as proposal 1 and returns its Append, left
// unanswered: the WAL is busy until the test answers it.
func (tm *twoMembers) appendInFlight(t *testing.T) *messages.Append {
	t.Helper()
	tm.sys.Root.Send(tm.pid, &messages.Propose{ID: 1, Data: []byte("a")})
	first := pending[*messages.Append](tm.wal)
	if len(first) != 1 {
		t.Fatalf("%d Appends for the first proposal, want 1", len(first))
	}
	return first[0]
}

// forward delivers a MsgProp member 2 forwarded with one entry of data.
func (tm *twoMembers) forward(data string) {
	tm.sys.Root.Send(tm.pid, &messages.StepRaft{Msgs: []*raftpb.Message{{
		Type: raftpb.MsgProp.Enum(), From: new(uint64(2)), To: new(uint64(1)),
		Entries: []*raftpb.Entry{{Data: []byte(data)}},
	}}})
	synctest.Wait()
}

// TestLeaderHoldsForwardedProposals: proposals a follower forwards
// while the leader's WAL is busy join the leader's own held ones, so the
// follower gets one MsgApp with them all, not one per forwarded MsgProp.
func TestLeaderHoldsForwardedProposals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tm := newTwoMembers(t)
		tm.elect(t)

		first := tm.appendInFlight(t)
		pending[*messages.SendRaft](tm.peers) // its MsgApp, left unanswered
		for i := range 5 {
			tm.forward(string([]byte{'f', byte(i)}))
		}
		tm.sys.Root.Send(tm.pid, &messages.Propose{ID: 2, Data: []byte("b")})
		if held := pending[*messages.Append](tm.wal); len(held) != 0 {
			t.Fatalf("%d Appends sent while one is in flight, want 0", len(held))
		}
		tm.sys.Root.Send(tm.pid, &messages.Appended{Msg: first.Msg})
		var withEntries []*raftpb.Message
		for _, m := range tm.play() {
			if len(m.Entries) > 0 {
				withEntries = append(withEntries, m)
			}
		}
		if len(withEntries) != 1 || len(withEntries[0].Entries) != 6 {
			t.Fatalf("member 2 got %d MsgApp with entries, want one with the 6 held entries", len(withEntries))
		}
	})
}

// TestHeldForwardedProposalsDroppedWithoutLeader: a leader that loses
// its quorum while it holds forwarded proposals parks them with its own
// when the WAL answers; the forwarded ones, which nobody here waits for,
// go at the next tick (raft drops a forwarded MsgProp without a leader,
// as etcd's), its own wait for a leader and reach it.
func TestHeldForwardedProposalsDroppedWithoutLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tm := newTwoMembers(t)
		tm.elect(t)

		first := tm.appendInFlight(t)
		tm.forward("f0")
		tm.forward("f1")
		own := tm.waits.Proposals.Register(2)
		tm.sys.Root.Send(tm.pid, &messages.Propose{ID: 2, Data: []byte("b")})
		// Member 2 is silent: after two election timeouts the check
		// quorum steps member 1 down, with no leader.
		for range 25 {
			tm.sys.Root.Send(tm.pid, &messages.Tick{})
		}
		tm.sys.Root.Send(tm.pid, &messages.Appended{Msg: first.Msg})
		synctest.Wait()
		if lead := tm.view.Leader(); lead != 0 {
			t.Fatalf("leader %d after member 2 was silent, want none", lead)
		}
		tm.sys.Root.Send(tm.pid, &messages.Tick{})
		synctest.Wait()
		noAnswer(t, "own parked proposal", own)
		pending[*messages.SendRaft](tm.peers)

		// Member 2 leads at a higher term: only the own proposal goes to it.
		tm.sys.Root.Send(tm.pid, &messages.StepRaft{Msgs: []*raftpb.Message{{
			Type: raftpb.MsgHeartbeat.Enum(), From: new(uint64(2)), To: new(uint64(1)), Term: new(uint64(10)),
		}}})
		var props []*raftpb.Message
		for range 10 {
			for _, a := range pending[*messages.Append](tm.wal) {
				tm.sys.Root.Send(tm.pid, &messages.Appended{Msg: a.Msg})
			}
			for _, s := range pending[*messages.SendRaft](tm.peers) {
				if s.Msg.GetType() == raftpb.MsgProp {
					props = append(props, s.Msg)
				}
			}
		}
		if len(props) != 1 || len(props[0].Entries) != 1 || string(props[0].Entries[0].GetData()) != "b" {
			t.Fatalf("parked proposals sent to the new leader: %v, want one MsgProp with the own entry only", props)
		}
	})
}
