package peers

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/actors/internal/actortest"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/membership"
	"github.com/troupedb/troupe/persistence/snap"
)

const (
	testCluster = 0xc1
	waitFor     = 10 * time.Second
)

// member is one member's peers subtree with a recorder standing in for its
// raft actor.
type member struct {
	id      uint64
	system  *actor.ActorSystem
	sup     *actor.PID
	raft    *actortest.Recorder
	raftPID *actor.PID
	snap    *snap.Snapshotter
	status  chan statusChange
	latest  map[uint64]bool   // peer status as last seen by waitStatus
	stepped []*raftpb.Message // of the last StepRaft, not yet taken by nextRaft
}

type statusChange struct {
	id     uint64
	active bool
}

// testLogger logs at debug level to stderr when PEERS_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("PEERS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testMember is the in-memory Member of a test: a recorder for its raft
// actor, peer status changes on a channel, the peers it starts with and
// the snapshot database it ships.
type testMember struct {
	raft   *actor.PID
	status chan statusChange
	peers  map[uint64][]string
	db     *fixedDB
	hash   func(rev int64) (uint32, int64, int64, error) // nil: no backend
}

func (m *testMember) Raft() *actor.PID { return m.raft }

func (m *testMember) SnapshotDB() (io.ReadCloser, error) {
	if m.db == nil {
		return nil, errors.New("test member has no snapshot database")
	}
	return m.db.open()
}

func (m *testMember) Members() []membership.Member         { return nil }
func (m *testMember) PeerURLs() map[uint64][]string        { return m.peers }
func (m *testMember) Removed(uint64) bool                  { return false }
func (m *testMember) SetPeerActive(id uint64, active bool) { m.status <- statusChange{id, active} }

func (m *testMember) HashKV(rev int64) (uint32, int64, int64, error) {
	if m.hash == nil {
		return 0, 0, 0, errors.New("test member has no backend")
	}
	return m.hash(rev)
}

// startMember spawns the peers supervisor of member id in system under
// name; cfg's Self, ClusterID (unless set), Snap and Member (a copy of
// cfg's *testMember, if any, with its raft recorder and status channel)
// are filled in.
func startMember(t testing.TB, system *actor.ActorSystem, id uint64, name string, cfg Config) *member {
	t.Helper()
	m := &member{id: id, system: system, raft: actortest.NewRecorder(1000), status: make(chan statusChange, 1000), latest: map[uint64]bool{}}
	m.raftPID = system.Root.Spawn(m.raft.Props())
	s, err := snap.New(t.TempDir(), snap.Options{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	m.snap = s
	cfg.Self = id
	if cfg.ClusterID == 0 {
		cfg.ClusterID = testCluster
	}
	tm := &testMember{}
	if given, ok := cfg.Member.(*testMember); ok {
		*tm = *given // cfg is shared by the members of a test
	}
	tm.raft, tm.status = m.raftPID, m.status
	cfg.Member = tm
	cfg.Snap = s
	if cfg.Logger == nil {
		cfg.Logger = testLogger().With("test_member", id)
	}
	m.sup, err = system.Root.SpawnNamed(Props(cfg), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.stop)
	return m
}

func (m *member) stop() {
	_ = m.system.Root.StopFuture(m.sup).Wait()
	_ = m.system.Root.StopFuture(m.raftPID).Wait()
}

func (m *member) setPeers(peers map[uint64][]string) {
	m.system.Root.Send(m.sup, &messages.SetPeers{Peers: peers})
}

func (m *member) send(to uint64, typ raftpb.MessageType, index uint64) {
	m.system.Root.Send(m.sup, &messages.SendRaft{Msg: raftMsg(m.id, to, typ, index)})
}

func raftMsg(from, to uint64, typ raftpb.MessageType, index uint64) *raftpb.Message {
	return &raftpb.Message{Type: typ.Enum(), From: proto.Uint64(from), To: proto.Uint64(to), Term: proto.Uint64(1), Index: proto.Uint64(index)}
}

// nextRaft returns the next raft message member m's raft recorder got,
// in the order of the StepRafts and of the messages in each.
func (m *member) nextRaft(t *testing.T) *raftpb.Message {
	t.Helper()
	for len(m.stepped) == 0 {
		m.stepped = m.nextStep(t).Msgs
	}
	next := m.stepped[0]
	m.stepped = m.stepped[1:]
	return next
}

// nextStep returns the next StepRaft member m's raft recorder got (one
// envelope's messages); nextRaft must have taken all of the last one.
func (m *member) nextStep(t *testing.T) *messages.StepRaft {
	t.Helper()
	if len(m.stepped) > 0 {
		t.Fatalf("member %d: %d messages of the last StepRaft not taken", m.id, len(m.stepped))
	}
	return actortest.Next[*messages.StepRaft](t, m.raft, waitFor)
}

// waitStatus waits until member m's latest report on peer id is active
// (or not).
func (m *member) waitStatus(t testing.TB, id uint64, active bool) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		if v, ok := m.latest[id]; ok && v == active {
			return
		}
		select {
		case s := <-m.status:
			m.latest[s.id] = s.active
		case <-deadline:
			t.Fatalf("member %d: peer %d not active=%v within %s", m.id, id, active, waitFor)
		}
	}
}

// newSystem is an actor system logging to testLogger.
func newSystem() *actor.ActorSystem {
	return actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return testLogger() }))
}

// expectNoRaft fails if m's raft recorder holds a message of type T.
func expectNoRaft[T any](t *testing.T, m *member) {
	t.Helper()
	for {
		select {
		case msg := <-m.raft.C:
			if _, ok := msg.(T); ok {
				t.Fatalf("member %d: unexpected %T %v", m.id, msg, msg)
			}
		default:
			return
		}
	}
}

// fixedDB is a SnapshotDB serving data, counting opens.
type fixedDB struct {
	mu    sync.Mutex
	data  []byte
	err   error // returned by Read after failAt bytes, if set
	at    int
	opens int
}

func (f *fixedDB) open() (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opens++
	if f.err != nil {
		return io.NopCloser(&failingReader{data: f.data[:f.at], err: f.err}), nil
	}
	return io.NopCloser(&sliceReader{data: f.data}), nil
}

type sliceReader struct{ data []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func dbName(index uint64) string { return fmt.Sprintf("%016x.snap.db", index) }
