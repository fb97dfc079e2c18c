package core

import (
	"slices"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/raft/v3"

	"github.com/troupedb/troupe/actors/applier"
	"github.com/troupedb/troupe/actors/internal/actortest"
	raftactor "github.com/troupedb/troupe/actors/raft"
	walactor "github.com/troupedb/troupe/actors/wal"
	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/membership"
	"github.com/troupedb/troupe/persistence/mvcc"
	"github.com/troupedb/troupe/persistence/snap"
	"github.com/troupedb/troupe/persistence/wal"
)

// wired is a member whose raft, wal and applier actors talk through a
// gate. It is created as the core's start-up creates a new member.
type wired struct {
	gate                  *gate
	gatePID               *actor.PID
	raft, wal, applier    *actor.PID
	applierParent         *actor.PID
	store                 *mvcc.Store
	holdAppend, holdApply bool
}

func (e *env) startWired() {
	if e.w != nil || e.nodePID != nil {
		e.t.Fatal("a member runs: crash it first")
	}
	t, dd, sys := e.t, e.dir, e.sys
	mkdirs(t, WALDir(dd), SnapDir(dd))
	ss, err := snap.New(SnapDir(dd), snap.Options{Logger: actortest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	st, err := mvcc.Open(DBPath(dd), mvcc.Options{Logger: actortest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	lw, err := wal.Create(WALDir(dd), walMeta(1, 1), wal.Options{SegmentSizeBytes: 1 << 20, Logger: actortest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	cl := membership.NewCluster(nil, nil)
	e.view.SetCluster(cl)
	e.client.Waits().Applied.Reset(st.ConsistentIndex())
	w := &wired{gate: &gate{}, store: st}
	w.gatePID = sys.Root.Spawn(actor.PropsFromFunc(w.gate.receive))
	w.wal = sys.Root.Spawn(walactor.Props(walactor.Config{Dir: WALDir(dd), WAL: lw, Snap: ss, Raft: w.gatePID, Logger: actortest.Logger()}))
	w.applierParent, w.applier = e.core.SpawnChild(sys.Root, applier.Props(applier.Config{
		Store: st, Client: e.client, Cluster: cl, Logger: actortest.Logger(),
	}))
	w.raft = sys.Root.Spawn(raftactor.Props(raftactor.Config{
		ID: 1, Storage: raft.NewMemoryStorage(), Bootstrap: e.bootstrap(), ElectionTick: 10, HeartbeatTick: 1,
		WAL: w.gatePID, Applier: w.gatePID, Peers: w.gatePID,
		Waits: e.client.Waits(), View: e.view, Logger: actortest.Logger(),
	}))
	e.w = w
	e.client.SetCore(&raftclient.Core{Raft: w.raft, Applier: w.applier, Store: st})
}

// held reports whether the gate keeps m for now.
func (w *wired) held(m any) bool {
	switch m.(type) {
	case *messages.Append:
		return w.holdAppend
	case *messages.Apply:
		return w.holdApply
	}
	return false
}

// deliverNext delivers the first message the gate may deliver, and
// reports whether there was one.
func (w *wired) deliverNext(e *env) bool {
	env := w.gate.take(func(m any) bool { return !w.held(m) })
	if env == nil {
		return false
	}
	w.deliver(e, env)
	return true
}

// deliver sends a gated message where it was going: the wal and applier
// answer the gate, which passes the answers on to raft.
func (w *wired) deliver(e *env, env *envelope) {
	root := e.sys.Root
	switch m := env.msg.(type) {
	case *messages.Append:
		root.Send(w.wal, m)
	case *messages.Apply, *messages.InstallSnapshot:
		root.RequestWithCustomSender(w.applier, m, w.gatePID)
	case *messages.Appended, *messages.Applied, *messages.SnapshotInstalled:
		root.Send(w.raft, m)
	case *messages.SendRaft:
		// no other member runs: raft retransmits what is lost
	default:
		e.t.Fatalf("the gate got %T", m)
	}
}

// stop stops the actors (raft first, so nothing new reaches the others)
// and closes the backend; the wal actor closes the WAL.
func (w *wired) stop(e *env) {
	for _, pid := range []*actor.PID{w.raft, w.wal, w.applierParent, w.gatePID} {
		if err := e.sys.Root.StopFuture(pid).Wait(); err != nil {
			e.t.Errorf("stop %s: %v", pid.Id, err)
		}
	}
	if err := w.store.Close(); err != nil {
		e.t.Errorf("close backend: %v", err)
	}
}

// gate is the actor between the wired member's actors: it queues what
// they send each other, in arrival order (one actor is active at a time,
// so that is the order they were sent in).
type gate struct {
	mu    sync.Mutex
	queue []*envelope
}

type envelope struct {
	msg   any
	shown bool // printed already
}

func (g *gate) receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case actor.SystemMessage, actor.AutoReceiveMessage:
	default:
		g.mu.Lock()
		g.queue = append(g.queue, &envelope{msg: m})
		g.mu.Unlock()
	}
}

// takeNew returns the messages not shown yet, and marks them shown.
func (g *gate) takeNew() []*envelope {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []*envelope
	for _, env := range g.queue {
		if !env.shown {
			env.shown = true
			out = append(out, env)
		}
	}
	return out
}

// take removes and returns the first message ok accepts, nil if none.
func (g *gate) take(ok func(any) bool) *envelope {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, env := range g.queue {
		if ok(env.msg) {
			g.queue = slices.Delete(g.queue, i, i+1)
			return env
		}
	}
	return nil
}

func (g *gate) takeAll() []*envelope {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := g.queue
	g.queue = nil
	return out
}
