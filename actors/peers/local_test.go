package peers

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/actors/internal/actortest"
	"github.com/troupedb/troupe/messages"
)

// The tests in this file run every member in one actor system, without
// remote (so they run under -race): Config.InboxPID resolves "mem://mN"
// to the inbox of the supervisor spawned as "mN/peers".

func memInbox(system *actor.ActorSystem) func(uint64, string) (*actor.PID, error) {
	return func(_ uint64, u string) (*actor.PID, error) {
		name, ok := strings.CutPrefix(u, "mem://")
		if !ok {
			return nil, fmt.Errorf("not a mem url: %s", u)
		}
		return actor.NewPID(system.Address(), name+"/peers/"+InboxName), nil
	}
}

func memURL(id uint64) []string { return []string{fmt.Sprintf("mem://m%d", id)} }

// fastConfig probes quickly so that down and up are seen within a test.
func fastConfig(system *actor.ActorSystem) Config {
	return Config{
		InboxPID:        memInbox(system),
		ProbeInterval:   50 * time.Millisecond,
		ProbeTimeout:    time.Second, // generous: -race on a loaded machine
		MaxProbeBackoff: 100 * time.Millisecond,
	}
}

func startLocal(t *testing.T, system *actor.ActorSystem, id uint64, cfg Config) *member {
	return startMember(t, system, id, fmt.Sprintf("m%d/peers", id), cfg)
}

// localCluster starts members 1..n, each knowing all others.
func localCluster(t *testing.T, n int, tweak func(id uint64, cfg *Config)) []*member {
	system := newSystem()
	peers := map[uint64][]string{}
	for id := uint64(1); id <= uint64(n); id++ {
		peers[id] = memURL(id)
	}
	var ms []*member
	for id := uint64(1); id <= uint64(n); id++ {
		cfg := fastConfig(system)
		if tweak != nil {
			tweak(id, &cfg)
		}
		m := startLocal(t, system, id, cfg)
		m.setPeers(peers)
		ms = append(ms, m)
	}
	for _, m := range ms {
		for _, o := range ms {
			if o != m {
				m.waitStatus(t, o.id, true)
			}
		}
	}
	return ms
}

func TestDeliverToTheRightMember(t *testing.T) {
	ms := localCluster(t, 3, nil)
	ms[0].send(2, raftpb.MsgApp, 7)
	ms[0].send(3, raftpb.MsgApp, 8)
	ms[2].send(2, raftpb.MsgHeartbeat, 9)
	ms[0].send(9, raftpb.MsgApp, 10) // unknown member: dropped
	ms[0].send(1, raftpb.MsgApp, 11) // itself: dropped

	// Member 2 gets one message from each of 1 and 3, in any order.
	fromTo := map[uint64]uint64{}
	for range 2 {
		got := ms[1].nextRaft(t)
		fromTo[got.GetFrom()] = got.GetIndex()
		if got.GetTo() != 2 {
			t.Fatalf("member 2 got %v", got)
		}
	}
	if fromTo[1] != 7 || fromTo[3] != 9 {
		t.Fatalf("member 2 got from->index %v", fromTo)
	}
	got := ms[2].nextRaft(t)
	if got.GetFrom() != 1 || got.GetTo() != 3 || got.GetIndex() != 8 {
		t.Fatalf("member 3 got %v", got)
	}
	expectNoRaft[*messages.StepRaft](t, ms[0])
}

func TestInboxDropsForeignEnvelopes(t *testing.T) {
	ms := localCluster(t, 2, nil)
	inbox, _ := memInbox(ms[0].system)(2, "mem://m2")
	root := ms[0].system.Root
	root.Send(inbox, &messages.RaftEnvelope{ClusterId: 0xbad, From: 1, To: 2, Msgs: []*raftpb.Message{raftMsg(1, 2, raftpb.MsgApp, 1)}})
	root.Send(inbox, &messages.RaftEnvelope{ClusterId: testCluster, From: 1, To: 3, Msgs: []*raftpb.Message{raftMsg(1, 3, raftpb.MsgApp, 2)}})
	root.Send(inbox, &messages.RaftEnvelope{ClusterId: testCluster, From: 1, To: 2})
	// A MsgSnap whose database never came.
	snapMsg := raftMsg(1, 2, raftpb.MsgSnap, 3)
	snapMsg.Snapshot = &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(3), Term: proto.Uint64(1)}}
	root.Send(inbox, &messages.RaftEnvelope{ClusterId: testCluster, From: 1, To: 2, Msgs: []*raftpb.Message{snapMsg}})
	root.Send(inbox, &messages.RaftEnvelope{ClusterId: testCluster, From: 1, To: 2, Msgs: []*raftpb.Message{raftMsg(1, 2, raftpb.MsgApp, 4)}})
	if got := ms[1].nextRaft(t); got.GetIndex() != 4 {
		t.Fatalf("member 2 got %v, want only the envelope at index 4", got)
	}
}

// An envelope's messages reach raft as one StepRaft, in order; the ones
// raft must not step (for another member, nil, a MsgSnap whose database
// never came) are dropped alone, the others kept.
func TestInboxStepsEnvelopeInOrder(t *testing.T) {
	ms := localCluster(t, 2, nil)
	inbox, _ := memInbox(ms[0].system)(2, "mem://m2")
	snapMsg := raftMsg(1, 2, raftpb.MsgSnap, 3)
	snapMsg.Snapshot = &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(3), Term: proto.Uint64(1)}}
	ms[0].system.Root.Send(inbox, &messages.RaftEnvelope{ClusterId: testCluster, From: 1, To: 2, Msgs: []*raftpb.Message{
		raftMsg(1, 2, raftpb.MsgApp, 1), raftMsg(1, 3, raftpb.MsgApp, 2), nil, snapMsg,
		raftMsg(1, 2, raftpb.MsgHeartbeat, 5), raftMsg(1, 2, raftpb.MsgApp, 6),
	}})
	var got []string
	for _, m := range ms[1].nextStep(t).Msgs {
		got = append(got, fmt.Sprintf("%s %d", m.GetType(), m.GetIndex()))
	}
	if want := []string{"MsgApp 1", "MsgHeartbeat 5", "MsgApp 6"}; !slices.Equal(got, want) {
		t.Fatalf("member 2 stepped %v, want %v", got, want)
	}
}

// The messages a peer actor sends a member arrive in send order, and an
// envelope holds at most maxEnvelopeBytes of them unless one alone is
// larger.
func TestEnvelopesKeepOrderAndSize(t *testing.T) {
	ms := localCluster(t, 2, nil)
	const n = 40
	data := make([]byte, 300<<10) // three fit in an envelope, four do not
	for i := uint64(1); i <= n; i++ {
		m := raftMsg(1, 2, raftpb.MsgApp, i)
		if i%2 == 0 {
			m.Entries = []*raftpb.Entry{{Term: proto.Uint64(1), Index: proto.Uint64(i), Data: data}}
		}
		ms[0].system.Root.Send(ms[0].sup, &messages.SendRaft{Msg: m})
	}
	next := uint64(1)
	for next <= n {
		step := ms[1].nextStep(t)
		size := 0
		for _, m := range step.Msgs {
			if m.GetIndex() != next {
				t.Fatalf("member 2 got index %d, want %d", m.GetIndex(), next)
			}
			next++
			size += approxSize(m)
		}
		if len(step.Msgs) > 1 && size > maxEnvelopeBytes {
			t.Fatalf("an envelope of %d messages holds %d bytes, more than %d", len(step.Msgs), size, maxEnvelopeBytes)
		}
	}
}

func TestDownPeerDoesNotBlockLivePeers(t *testing.T) {
	system := newSystem()
	m1 := startLocal(t, system, 1, fastConfig(system))
	m2 := startLocal(t, system, 2, fastConfig(system))
	all := map[uint64][]string{1: memURL(1), 2: memURL(2), 3: memURL(3)} // 3 is down
	m1.setPeers(all)
	m2.setPeers(all)
	m1.waitStatus(t, 3, false)
	m1.waitStatus(t, 2, true)

	for i := uint64(1); i <= 100; i++ {
		m1.send(3, raftpb.MsgApp, i)
		m1.send(2, raftpb.MsgApp, i)
	}
	// Member 3 must be reported; a report for 2 may come first when a probe
	// of 2 ran late on a loaded machine (it is live again right after).
	for n := 0; ; n++ {
		u := actortest.Next[*messages.PeerUnreachable](t, m1.raft, waitFor)
		if u.ID == 3 {
			break
		}
		if n == 10 {
			t.Fatalf("ten unreachable reports, none for member 3 (last %d)", u.ID)
		}
	}
	for i := uint64(1); i <= 100; i++ {
		if got := m2.nextRaft(t); got.GetIndex() != i {
			t.Fatalf("member 2 got index %d, want %d", got.GetIndex(), i)
		}
	}

	// Member 3 comes up: member 1 sees it active and reaches it.
	m3 := startLocal(t, system, 3, fastConfig(system))
	m3.setPeers(all)
	m1.waitStatus(t, 3, true)
	m1.send(3, raftpb.MsgApp, 500)
	if got := m3.nextRaft(t); got.GetIndex() != 500 {
		t.Fatalf("member 3 got %v", got)
	}

	// And goes down again.
	m3.stop()
	m1.waitStatus(t, 3, false)
}

func TestConfigPeersAtStart(t *testing.T) {
	system := newSystem()
	all := map[uint64][]string{1: memURL(1), 2: memURL(2)}
	cfg := fastConfig(system)
	cfg.Member = &testMember{peers: all}
	m1 := startLocal(t, system, 1, cfg)
	m2 := startLocal(t, system, 2, cfg)
	m1.waitStatus(t, 2, true)
	m1.send(2, raftpb.MsgApp, 1)
	if got := m2.nextRaft(t); got.GetIndex() != 1 {
		t.Fatalf("member 2 got %v", got)
	}
}

func TestSetPeersAddsAndRemoves(t *testing.T) {
	ms := localCluster(t, 2, nil)
	ms[0].setPeers(map[uint64][]string{1: memURL(1)}) // 2 removed
	ms[0].send(2, raftpb.MsgApp, 1)                   // dropped
	delete(ms[0].latest, 2)                           // wait for the new peer actor's first probe
	ms[0].setPeers(map[uint64][]string{1: memURL(1), 2: memURL(2)})
	ms[0].waitStatus(t, 2, true)
	ms[0].send(2, raftpb.MsgApp, 2)
	if got := ms[1].nextRaft(t); got.GetIndex() != 2 {
		t.Fatalf("member 2 got %v, want index 2 only", got)
	}
}

func TestFilterDropsAndDelaysInOrder(t *testing.T) {
	const delay = 200 * time.Millisecond
	ms := localCluster(t, 3, func(id uint64, cfg *Config) {
		cfg.Filter = func(from, to uint64, m *raftpb.Message) (bool, time.Duration) {
			switch {
			case from == 1 && to == 3: // member 3 cut off from 1
				return true, 0
			case m.GetIndex() == 1:
				return false, delay
			}
			return false, 0
		}
	})
	start := time.Now()
	ms[0].send(2, raftpb.MsgApp, 1) // delayed
	ms[0].send(2, raftpb.MsgApp, 2) // held behind it
	ms[0].send(3, raftpb.MsgApp, 3) // dropped
	ms[1].send(1, raftpb.MsgApp, 4) // another member: not held back
	if got := ms[0].nextRaft(t); got.GetIndex() != 4 {
		t.Fatalf("member 1 got %v", got)
	}
	if d := time.Since(start); d >= delay {
		t.Errorf("member 1's message took %s, held back by another member's delay", d)
	}
	for _, want := range []uint64{1, 2} {
		if got := ms[1].nextRaft(t); got.GetIndex() != want {
			t.Fatalf("member 2 got index %d, want %d", got.GetIndex(), want)
		}
	}
	if d := time.Since(start); d < delay {
		t.Errorf("delayed message arrived after %s, want >= %s", d, delay)
	}
	ms[1].send(3, raftpb.MsgApp, 5) // 2 -> 3 is not cut
	if got := ms[2].nextRaft(t); got.GetIndex() != 5 {
		t.Fatalf("member 3 got %v, want only index 5", got)
	}
}

func snapshotMsg(from, to, index uint64) *raftpb.Message {
	m := raftMsg(from, to, raftpb.MsgSnap, 0)
	m.Snapshot = &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(index), Term: proto.Uint64(1)}}
	return m
}

func TestSnapshotDatabaseStreamedBeforeMsgSnap(t *testing.T) {
	db := &fixedDB{data: make([]byte, 3<<20+123)}
	_, _ = rand.Read(db.data)
	ms := localCluster(t, 2, func(id uint64, cfg *Config) {
		cfg.Member = &testMember{db: db}
		cfg.SnapshotChunkBytes = 64 << 10 // 49 chunks
	})
	ms[0].system.Root.Send(ms[0].sup, &messages.SendRaft{Msg: snapshotMsg(1, 2, 42)})

	got := ms[1].nextRaft(t)
	if got.GetType() != raftpb.MsgSnap || got.GetSnapshot().GetMetadata().GetIndex() != 42 {
		t.Fatalf("member 2 got %v", got)
	}
	// The MsgSnap is forwarded only once the file is in place.
	b, err := os.ReadFile(filepath.Join(ms[1].snap.Dir(), dbName(42)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, db.data) {
		t.Fatalf("received database differs: %d bytes, want %d", len(b), len(db.data))
	}
	rep := actortest.Next[*messages.SnapshotReported](t, ms[0].raft, waitFor)
	if rep.ID != 2 || rep.Failed {
		t.Fatalf("reported %+v", rep)
	}
	noTempFiles(t, ms[1].snap.Dir())
}

func TestSnapshotFailureLeavesNoFile(t *testing.T) {
	db := &fixedDB{data: make([]byte, 1<<20), err: errors.New("disk on fire"), at: 300 << 10}
	ms := localCluster(t, 2, func(id uint64, cfg *Config) {
		cfg.Member = &testMember{db: db}
		cfg.SnapshotChunkBytes = 64 << 10
	})
	ms[0].system.Root.Send(ms[0].sup, &messages.SendRaft{Msg: snapshotMsg(1, 2, 42)})
	rep := actortest.Next[*messages.SnapshotReported](t, ms[0].raft, waitFor)
	if rep.ID != 2 || !rep.Failed {
		t.Fatalf("reported %+v", rep)
	}
	// The receiver gives up on the transfer when the next one starts;
	// the retry carries the whole database and succeeds.
	db.mu.Lock()
	db.err = nil
	db.mu.Unlock()
	var rep2 *messages.SnapshotReported
	for range 5 {
		ms[0].system.Root.Send(ms[0].sup, &messages.SendRaft{Msg: snapshotMsg(1, 2, 43)})
		rep2 = actortest.Next[*messages.SnapshotReported](t, ms[0].raft, waitFor)
		if !rep2.Failed {
			break
		}
	}
	if rep2.Failed {
		t.Fatal("retried snapshot failed")
	}
	if got := ms[1].nextRaft(t); got.GetSnapshot().GetMetadata().GetIndex() != 43 {
		t.Fatalf("member 2 got %v", got)
	}
	if _, err := os.Stat(filepath.Join(ms[1].snap.Dir(), dbName(42))); !os.IsNotExist(err) {
		t.Fatalf("database of the failed transfer: %v", err)
	}
	noTempFiles(t, ms[1].snap.Dir())
}

func TestSnapshotToDownPeerReportedFailed(t *testing.T) {
	system := newSystem()
	cfg := fastConfig(system)
	cfg.Member = &testMember{db: &fixedDB{data: []byte("db")}}
	m1 := startLocal(t, system, 1, cfg)
	m1.setPeers(map[uint64][]string{1: memURL(1), 2: memURL(2)})
	m1.waitStatus(t, 2, false)
	system.Root.Send(m1.sup, &messages.SendRaft{Msg: snapshotMsg(1, 2, 5)})
	rep := actortest.Next[*messages.SnapshotReported](t, m1.raft, waitFor)
	if rep.ID != 2 || !rep.Failed {
		t.Fatalf("reported %+v", rep)
	}
}

func TestFilterDroppedSnapshotReportedFailed(t *testing.T) {
	var mu sync.Mutex
	ms := localCluster(t, 2, func(id uint64, cfg *Config) {
		cfg.Member = &testMember{db: &fixedDB{data: []byte("db")}}
		cfg.Filter = func(from, to uint64, m *raftpb.Message) (bool, time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			return m.GetType() == raftpb.MsgSnap, 0
		}
	})
	ms[0].system.Root.Send(ms[0].sup, &messages.SendRaft{Msg: snapshotMsg(1, 2, 5)})
	rep := actortest.Next[*messages.SnapshotReported](t, ms[0].raft, waitFor)
	if rep.ID != 2 || !rep.Failed {
		t.Fatalf("reported %+v", rep)
	}
}

func noTempFiles(t *testing.T, dir string) {
	t.Helper()
	tmps, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
	if len(tmps) > 0 {
		t.Fatalf("temporary files left: %v", tmps)
	}
}

func TestRemoteInboxPID(t *testing.T) {
	pid, err := RemoteInboxPID(1, "http://127.0.0.1:2380")
	if err != nil || pid.GetAddress() != "127.0.0.1:2380" || pid.GetId() != InboxID {
		t.Fatalf("got %v, %v", pid, err)
	}
	for _, bad := range []string{"http://127.0.0.1", "::nope", "unix:///x"} {
		if _, err := RemoteInboxPID(1, bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A peer actor that keeps failing is restarted maxRestarts times, then
// stopped, and the supervisor fails so that its own supervisor decides.
func TestPeerRestartBudgetEscalates(t *testing.T) {
	system := newSystem()
	escalated := make(chan any, 10)
	parentProps := actor.PropsFromFunc(func(ctx actor.Context) {
		if cfg, ok := ctx.Message().(Config); ok {
			ctx.Respond(ctx.SpawnPrefix(Props(cfg), "m1/peers-"))
		}
	}, actor.WithSupervisor(actor.NewOneForOneStrategy(0, time.Minute, func(reason any) actor.Directive {
		escalated <- reason
		return actor.StopDirective
	})))
	parent := system.Root.Spawn(parentProps)
	t.Cleanup(func() { _ = system.Root.StopFuture(parent).Wait() })
	cfg := fastConfig(system)
	cfg.Self, cfg.ClusterID, cfg.Logger = 1, testCluster, testLogger()
	cfg.Filter = func(from, to uint64, m *raftpb.Message) (bool, time.Duration) { panic("filter failed") }
	res, err := system.Root.RequestFuture(parent, cfg, waitFor).Result()
	if err != nil {
		t.Fatal(err)
	}
	sup := res.(*actor.PID)
	system.Root.Send(sup, &messages.SetPeers{Peers: map[uint64][]string{2: memURL(2)}})
	for i := uint64(0); i <= maxRestarts; i++ {
		system.Root.Send(sup, &messages.SendRaft{Msg: raftMsg(1, 2, raftpb.MsgApp, i)})
	}
	select {
	case reason := <-escalated:
		if !strings.Contains(fmt.Sprint(reason), "stopped after more than") {
			t.Fatalf("escalated %v", reason)
		}
	case <-time.After(waitFor):
		t.Fatal("supervisor did not fail")
	}
}

// A follower's forwarded proposals wait while the leader has not spoken
// since the last ones went, and then travel in one envelope; a message
// of any other kind takes them along at once.
func TestProposalsWaitForTheLeader(t *testing.T) {
	seen := make(chan uint64, 16)
	ms := localCluster(t, 2, func(id uint64, cfg *Config) {
		cfg.ProbeInterval = time.Hour // no probe answer releases them here
		if id == 1 {
			cfg.Filter = func(_, _ uint64, m *raftpb.Message) (bool, time.Duration) {
				seen <- m.GetIndex()
				return false, 0
			}
		}
	})
	// send hands m to member 1's peer actor and waits until it took it:
	// its flush was queued before the next message.
	send := func(typ raftpb.MessageType, index uint64) {
		t.Helper()
		ms[0].send(2, typ, index)
		select {
		case <-seen:
		case <-time.After(waitFor):
			t.Fatalf("member 1 did not take message %d within %s", index, waitFor)
		}
	}
	steps := func(want ...string) {
		t.Helper()
		var got []string
		for _, m := range ms[1].nextStep(t).Msgs {
			got = append(got, fmt.Sprintf("%s %d", m.GetType(), m.GetIndex()))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("member 2 stepped %v, want %v", got, want)
		}
	}
	send(raftpb.MsgProp, 1)
	steps("MsgProp 1")
	send(raftpb.MsgProp, 2)
	send(raftpb.MsgProp, 3)
	ms[1].send(1, raftpb.MsgApp, 4) // the leader speaks
	if got := ms[0].nextRaft(t); got.GetIndex() != 4 {
		t.Fatalf("member 1 got %v", got)
	}
	steps("MsgProp 2", "MsgProp 3")
	send(raftpb.MsgProp, 5)
	send(raftpb.MsgAppResp, 6)
	steps("MsgProp 5", "MsgAppResp 6")
}

// A probe answer releases held proposals too: a member that stopped
// leading holds them for at most ProbeInterval.
func TestProbeReleasesProposals(t *testing.T) {
	ms := localCluster(t, 2, nil)
	ms[0].send(2, raftpb.MsgProp, 1)
	ms[0].send(2, raftpb.MsgProp, 2)
	for _, want := range []uint64{1, 2} {
		if got := ms[1].nextRaft(t); got.GetIndex() != want {
			t.Fatalf("member 2 got %v, want MsgProp %d", got, want)
		}
	}
}
