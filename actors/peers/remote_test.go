//go:build !race

// These tests run several remotes in one process; Remote.Start writes
// gRPC's global logger while other remotes' gRPC goroutines read it, which
// the race detector reports (see DESIGN.md), so they do not run under -race.

package peers

import (
	"bytes"
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/actors/internal/actortest"
	"github.com/troupedb/troupe/messages"
)

// startRemoteMember starts an actor system with the peer remote on address
// and the peers supervisor spawned as the node spawns it.
func startRemoteMember(t testing.TB, id uint64, address string, cfg Config) *member {
	t.Helper()
	system := newSystem()
	r, err := StartRemote(system, address, nil, 0, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown(true) }) // after the member stops (LIFO)
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval, cfg.ProbeTimeout, cfg.MaxProbeBackoff = 200*time.Millisecond, 500*time.Millisecond, 500*time.Millisecond
	}
	m := startMember(t, system, id, "node/"+Name, cfg)
	if m.sup.GetId() != "node/"+Name {
		t.Fatalf("supervisor id %q", m.sup.GetId())
	}
	return m
}

func peerURL(m *member) string { return "http://" + m.system.Address() }

// freeAddress returns a loopback address nothing listens on.
func freeAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func remoteCluster(t *testing.T, n int, cfg Config) []*member {
	t.Helper()
	var ms []*member
	peers := map[uint64][]string{}
	for id := uint64(1); id <= uint64(n); id++ {
		m := startRemoteMember(t, id, "127.0.0.1:0", cfg)
		peers[id] = []string{peerURL(m)}
		ms = append(ms, m)
	}
	for _, m := range ms {
		m.setPeers(peers)
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

func TestRemoteDelivery(t *testing.T) {
	ms := remoteCluster(t, 3, Config{})
	for i := uint64(1); i <= 50; i++ {
		ms[0].send(2, raftpb.MsgApp, i)
		ms[0].send(3, raftpb.MsgApp, 100+i)
		ms[1].send(1, raftpb.MsgAppResp, 200+i)
	}
	for i := uint64(1); i <= 50; i++ {
		if got := ms[1].nextRaft(t); got.GetIndex() != i || got.GetFrom() != 1 {
			t.Fatalf("member 2 got %v, want index %d", got, i)
		}
		if got := ms[2].nextRaft(t); got.GetIndex() != 100+i || got.GetFrom() != 1 {
			t.Fatalf("member 3 got %v, want index %d", got, 100+i)
		}
		if got := ms[0].nextRaft(t); got.GetIndex() != 200+i || got.GetFrom() != 2 {
			t.Fatalf("member 1 got %v, want index %d", got, 200+i)
		}
	}
}

func TestRemoteInboxDropsForeignTraffic(t *testing.T) {
	ms := remoteCluster(t, 2, Config{})
	inbox := actor.NewPID(ms[1].system.Address(), InboxID)
	root := ms[0].system.Root
	root.Send(inbox, &messages.RaftEnvelope{ClusterId: 0xbad, From: 1, To: 2, Msgs: []*raftpb.Message{raftMsg(1, 2, raftpb.MsgApp, 1)}})
	root.Send(inbox, &messages.RaftEnvelope{ClusterId: testCluster, From: 1, To: 3, Msgs: []*raftpb.Message{raftMsg(1, 3, raftpb.MsgApp, 2)}})
	root.Send(inbox, &etcdserverpb.PutRequest{Key: []byte("k")}) // not an accepted type: the guard drops it
	root.Send(inbox, &messages.RaftEnvelope{ClusterId: testCluster, From: 1, To: 2, Msgs: []*raftpb.Message{raftMsg(1, 2, raftpb.MsgApp, 4)}})
	if got := ms[1].nextRaft(t); got.GetIndex() != 4 {
		t.Fatalf("member 2 got %v, want only the envelope at index 4", got)
	}
	// Still serving.
	ms[0].send(2, raftpb.MsgApp, 5)
	if got := ms[1].nextRaft(t); got.GetIndex() != 5 {
		t.Fatalf("member 2 got %v", got)
	}
}

// Over the remote too, an envelope's messages are stepped in order and
// those for another member, or a MsgSnap whose database never came, are
// dropped alone; the member goes on serving.
func TestRemoteEnvelopeDropsBadMessages(t *testing.T) {
	ms := remoteCluster(t, 2, Config{})
	inbox := actor.NewPID(ms[1].system.Address(), InboxID)
	snapMsg := raftMsg(1, 2, raftpb.MsgSnap, 3)
	snapMsg.Snapshot = &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(3), Term: proto.Uint64(1)}}
	ms[0].system.Root.Send(inbox, &messages.RaftEnvelope{ClusterId: testCluster, From: 1, To: 2, Msgs: []*raftpb.Message{
		raftMsg(1, 2, raftpb.MsgApp, 1), raftMsg(1, 3, raftpb.MsgApp, 2), snapMsg, raftMsg(1, 2, raftpb.MsgApp, 4),
	}})
	step := ms[1].nextStep(t)
	if len(step.Msgs) != 2 || step.Msgs[0].GetIndex() != 1 || step.Msgs[1].GetIndex() != 4 {
		t.Fatalf("member 2 stepped %v, want the messages at index 1 and 4", step.Msgs)
	}
	ms[0].send(2, raftpb.MsgApp, 5)
	if got := ms[1].nextRaft(t); got.GetIndex() != 5 {
		t.Fatalf("member 2 got %v", got)
	}
}

func TestRemoteDownPeerThenBack(t *testing.T) {
	m1 := startRemoteMember(t, 1, "127.0.0.1:0", Config{})
	m2 := startRemoteMember(t, 2, "127.0.0.1:0", Config{})
	addr3 := freeAddress(t)
	peers := map[uint64][]string{1: {peerURL(m1)}, 2: {peerURL(m2)}, 3: {"http://" + addr3}}
	m1.setPeers(peers)
	m2.setPeers(peers)
	m1.waitStatus(t, 3, false)
	m1.waitStatus(t, 2, true)

	start := time.Now()
	for i := uint64(1); i <= 200; i++ {
		m1.send(3, raftpb.MsgApp, i)
		m1.send(2, raftpb.MsgApp, i)
	}
	for i := uint64(1); i <= 200; i++ {
		if got := m2.nextRaft(t); got.GetIndex() != i {
			t.Fatalf("member 2 got index %d, want %d", got.GetIndex(), i)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("messages to a live member took %s while another is down", d)
	}
	if u := actortest.Next[*messages.PeerUnreachable](t, m1.raft, waitFor); u.ID != 3 {
		t.Fatalf("unreachable %d, want 3", u.ID)
	}

	// Member 3 comes up at its address: member 1 finds it (protoactor's
	// endpoint writer retries a failed connection every 2 s, 5 times).
	m3 := startRemoteMember(t, 3, addr3, Config{})
	m3.setPeers(peers)
	deadline := time.Now().Add(30 * time.Second)
	for m1.latest[3] != true && time.Now().Before(deadline) {
		select {
		case s := <-m1.status:
			m1.latest[s.id] = s.active
		case <-time.After(time.Until(deadline)):
		}
	}
	if !m1.latest[3] {
		t.Fatal("member 3 not active within 30s of starting")
	}
	m1.send(3, raftpb.MsgApp, 500)
	if got := m3.nextRaft(t); got.GetIndex() != 500 {
		t.Fatalf("member 3 got %v", got)
	}
}

func TestRemoteSnapshot(t *testing.T) {
	db := &fixedDB{data: make([]byte, 5<<20+321)}
	_, _ = rand.Read(db.data)
	ms := remoteCluster(t, 2, Config{Member: &testMember{db: db}}) // 512 KiB chunks
	// Raft traffic keeps flowing around the transfer.
	ms[0].send(2, raftpb.MsgHeartbeat, 0)
	ms[0].system.Root.Send(ms[0].sup, &messages.SendRaft{Msg: snapshotMsg(1, 2, 77)})
	ms[0].send(2, raftpb.MsgHeartbeat, 0)

	var snapMsg *raftpb.Message
	for snapMsg == nil {
		if got := ms[1].nextRaft(t); got.GetType() == raftpb.MsgSnap {
			snapMsg = got
		}
	}
	if snapMsg.GetSnapshot().GetMetadata().GetIndex() != 77 {
		t.Fatalf("member 2 got %v", snapMsg)
	}
	b, err := os.ReadFile(filepath.Join(ms[1].snap.Dir(), dbName(77)))
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
