package core

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/troupedb/troupe/actors/internal/actortest"
	"github.com/troupedb/troupe/internal/hublink"
	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/membership"
	"github.com/troupedb/troupe/persistence/snap"
	"github.com/troupedb/troupe/persistence/wal"
)

// The core's tests run in synctest bubbles: every wait below is on
// virtual time (it only fails a hung test), ticks are sent by hand
// (HeartbeatInterval 0: no ticker), and synctest.Wait stands for "the
// actors did all they could".

// wait bounds the waits for a message, on virtual time.
const wait = time.Minute

// self is member id's record, as --initial-cluster would make it.
func self(id uint64) membership.Member {
	return membership.Member{ID: id, Name: fmt.Sprintf("m%d", id), PeerURLs: []string{fmt.Sprintf("http://m%d", id)}}
}

// member is one member's core under a recorder parent that stands in for
// the node: it records CoreStarted and the core's failures (and stops the
// failed core, as the node does for a StartupError).
type member struct {
	t      *testing.T
	sys    *actor.ActorSystem
	cfg    Config
	client *raftclient.Client
	peers  *actortest.Recorder // SendRaft and SetPeers from the core's actors
	node   *actortest.Recorder
	parent *actor.PID // the node stand-in; nil while no core runs
}

// newMember returns member id of cluster clusterID with data in dir, a new
// cluster of the voters (bootstrapped if its data dir is new). Its actor
// system shuts down when the test ends.
func newMember(t *testing.T, dir string, id, clusterID uint64, voters ...uint64) *member {
	t.Helper()
	sys := actortest.NewSystem()
	m := &member{t: t, sys: sys, peers: actortest.NewRecorder(4096), node: actortest.NewRecorder(16)}
	view := memberview.New(self(id), clusterID)
	m.client = raftclient.New(raftclient.Config{
		Root: sys.Root, View: view, Waits: raftclient.NewWaits(), RequestTimeout: 5 * time.Second,
	})
	var boot []raft.Peer
	for _, v := range voters {
		boot = append(boot, raft.Peer{ID: v, Context: membership.AddChange(self(v)).Context})
	}
	m.cfg = Config{
		DataDir: dir, Peers: boot, ElectionTicks: 10, WALSegmentBytes: 1 << 20,
		PeersPID: sys.Root.Spawn(m.peers.Props()),
		Client:   m.client, Hub: &hublink.Link{}, Logger: actortest.Logger(),
	}
	t.Cleanup(func() {
		m.stop()
		actortest.Shutdown(sys)
	})
	return m
}

// start spawns the core and returns nil once it started, or the reason it
// failed.
func (m *member) start() error {
	m.t.Helper()
	m.parent, _ = m.node.SpawnChild(m.sys.Root, Props(m.cfg))
	switch r := actortest.Next[any](m.t, m.node, wait).(type) {
	case *messages.CoreStarted:
		return nil
	case actortest.Failure:
		m.stop()
		if err, ok := r.Reason.(error); ok {
			return err
		}
		return fmt.Errorf("panic: %v", r.Reason)
	default:
		m.t.Fatalf("the node got %T from the core", r)
		return nil
	}
}

// stop stops the core (as a crash of the process would end it: its actors
// stop, the files close; what the WAL did not sync is the OS's to keep).
func (m *member) stop() {
	if m.parent == nil {
		return
	}
	if err := m.sys.Root.StopFuture(m.parent).Wait(); err != nil {
		m.t.Errorf("stop core: %v", err)
	}
	m.parent = nil
}

// walMeta is the WAL metadata of member id of cluster clusterID.
func walMeta(id, clusterID uint64) wal.Metadata {
	return wal.Metadata{MemberID: id, ClusterID: clusterID}
}

// writeWAL makes the WAL of member 1 of cluster 1 in dataDir: a snapshot
// marker at index snapIndex (term 1) if not 0, then ents and a hard state
// committing the last index.
func writeWAL(t *testing.T, dataDir string, snapIndex uint64, ents ...*raftpb.Entry) {
	t.Helper()
	w, err := wal.Create(WALDir(dataDir), walMeta(1, 1), wal.Options{SegmentSizeBytes: 1 << 20, Logger: actortest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	last := snapIndex
	if snapIndex > 0 {
		if err := w.SaveSnapshot(wal.SnapshotMarker{Index: snapIndex, Term: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if len(ents) > 0 {
		last = ents[len(ents)-1].GetIndex()
	}
	hs := &raftpb.HardState{Term: new(uint64(1)), Vote: new(uint64(1)), Commit: new(last)}
	if err := w.Save(hs, ents, true); err != nil {
		t.Fatal(err)
	}
}

// writeSnapshot saves the raft snapshot of member 1 at index (term 1) in
// dataDir's snapshot dir.
func writeSnapshot(t *testing.T, dataDir string, index uint64) {
	t.Helper()
	ss, err := snap.New(SnapDir(dataDir), snap.Options{Logger: actortest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	err = ss.Save(&raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
		Index: new(index), Term: new(uint64(1)), ConfState: &raftpb.ConfState{Voters: []uint64{1}},
	}})
	if err != nil {
		t.Fatal(err)
	}
}

func mkdirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
}
