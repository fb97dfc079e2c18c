// Package core is the core supervisor of one member: everything that
// shares raft's in-memory state (raft with its ticker, wal, applier,
// snapshotter, lessor).
//
// Its Started handler is the start-up sequence, modelled on etcd's
// NewServer: check the directories, load the newest snapshot, open the
// backend and check it against the snapshot, open and replay the WAL,
// rebuild raft's storage, then spawn wal, applier, snapshotter, lessor and raft.
// Every step that fails ends the start-up with a StartupError that names
// the file and the fix.
//
// Any failure of a child escalates: the node restarts the core as a whole,
// which stops the children, releases the files, and runs Started again:
// an in-process recovery is the same code path as a process restart.
package core

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/troupedb/troupe/actors/applier"
	"github.com/troupedb/troupe/actors/lessor"
	raftactor "github.com/troupedb/troupe/actors/raft"
	"github.com/troupedb/troupe/actors/snapshotter"
	walactor "github.com/troupedb/troupe/actors/wal"
	"github.com/troupedb/troupe/failpoint"
	"github.com/troupedb/troupe/internal/dispatch"
	"github.com/troupedb/troupe/internal/memberstate"
	"github.com/troupedb/troupe/internal/metrics"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/membership"
	"github.com/troupedb/troupe/persistence/mvcc"
	"github.com/troupedb/troupe/persistence/snap"
	"github.com/troupedb/troupe/persistence/wal"
)

// Config of the core.
type Config struct {
	DataDir           string // the member's data dir (holds member/)
	Peers             []raft.Peer
	SnapshotCount     uint64
	HeartbeatInterval time.Duration
	ElectionTicks     int
	WALSegmentBytes   int64
	QuotaBytes        int64 // --quota-backend-bytes in effect, <= 0: none
	// PeersPID is the peers supervisor raft messages for other members go to.
	PeersPID *actor.PID
	State    *memberstate.State
	Logger   *slog.Logger
}

// StartupError is a start-up step that failed: restarting will not help.
// The node stops the process with it.
type StartupError struct {
	Step string
	Err  error
}

func (e *StartupError) Error() string { return fmt.Sprintf("start-up: %s: %v", e.Step, e.Err) }
func (e *StartupError) Unwrap() error { return e.Err }

// Paths of a member's files under its data dir, as etcd lays them out.
func WALDir(dataDir string) string  { return filepath.Join(dataDir, "member", "wal") }
func SnapDir(dataDir string) string { return filepath.Join(dataDir, "member", "snap") }
func DBPath(dataDir string) string  { return filepath.Join(SnapDir(dataDir), "db") }

// Props returns the core's props. Child failures escalate to the node.
func Props(cfg Config) *actor.Props {
	res := &resources{}
	return actor.PropsFromProducer(
		func() actor.Actor { return &core{cfg: cfg, res: res} },
		actor.WithSupervisor(actor.NewOneForOneStrategy(0, 0, func(any) actor.Directive {
			return actor.EscalateDirective
		})),
	)
}

// resources outlive one incarnation of the core: a new incarnation closes
// what the previous one left open before it opens the files again.
type resources struct {
	mu          sync.Mutex // store is swapped by the applier on a snapshot install
	store       *mvcc.Store
	dispatchers []*dispatch.Pinned
}

// pinned returns a new dispatcher owned by r, for one hot actor.
func (r *resources) pinned() actor.PropsOption {
	d := dispatch.NewPinned(hotThroughput)
	r.dispatchers = append(r.dispatchers, d)
	return actor.WithDispatcher(d)
}

// hotThroughput is how many messages a hot actor handles per mailbox run
// before it yields (protoactor's default).
const hotThroughput = 300

func (r *resources) close(log *slog.Logger) {
	for _, d := range r.dispatchers {
		d.Stop()
	}
	r.dispatchers = nil
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.store != nil {
		if err := r.store.Close(); err != nil {
			log.Error("close backend", "err", err)
		}
		r.store = nil
	}
}

type core struct {
	cfg Config
	res *resources
	log *slog.Logger
	// changes collects each Apply batch's events for the watch hub; every
	// store this incarnation opens feeds it.
	changes *applier.Changes
}

// Receive dispatches on the message type.
func (c *core) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		c.handleStarted(ctx)
	case *actor.Restarting, *actor.Stopping:
		c.cfg.State.SetCore(nil, nil)
		// Requests in flight may be lost with the mailboxes; tell their
		// callers now (the outcome is unknown, as after etcd's timeouts)
		// rather than let them wait for the request timeout.
		if n := c.cfg.State.Waits.TriggerAll(rpctypes.ErrGRPCStopped); n > 0 {
			c.logger().Warn("failed requests in flight", "count", n)
		}
	case *actor.Stopped:
		c.res.close(c.logger())
	case *actor.Terminated:
	default:
		c.logger().Warn("unexpected message", "type", fmt.Sprintf("%T", msg))
	}
}

func (c *core) logger() *slog.Logger {
	if c.log == nil {
		c.log = c.cfg.Logger.With("actor", "core", "member", c.cfg.State.MemberID)
	}
	return c.log
}

func (c *core) handleStarted(ctx actor.Context) {
	log := c.logger()
	c.res.close(log) // files of a previous incarnation, if any
	start := time.Now()
	if err := c.startup(ctx); err != nil {
		c.res.close(log)
		panic(err)
	}
	log.Info("core started", "took", time.Since(start).Round(time.Millisecond))
	ctx.Send(ctx.Parent(), &messages.CoreStarted{})
}

// recovered is what the start-up read from disk.
type recovered struct {
	snapshot *raftpb.Snapshot // nil when none
	hs       *raftpb.HardState
	ents     []*raftpb.Entry
	wal      *wal.WAL
	fresh    bool // a new member: bootstrap raft
}

func (c *core) startup(ctx actor.Context) error {
	dd := c.cfg.DataDir
	for _, d := range []string{WALDir(dd), SnapDir(dd)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return &StartupError{"check data dir", fmt.Errorf("create %s: %w (fix: make --data-dir writable)", d, err)}
		}
	}
	ss, err := snap.New(SnapDir(dd), snap.Options{Logger: c.cfg.Logger})
	if err != nil {
		return &StartupError{"open snapshot dir", err}
	}
	c.changes = &applier.Changes{}
	store, err := mvcc.Open(DBPath(dd), c.storeOptions())
	if err != nil {
		return &StartupError{"open backend", err}
	}
	c.res.mu.Lock()
	c.res.store = store
	c.res.mu.Unlock()
	rec, err := c.replayWAL(snapshotsNewestFirst(SnapDir(dd), c.logger()))
	if err != nil {
		return err
	}
	sn := rec.snapshot
	if sn != nil && store.ConsistentIndex() < sn.GetMetadata().GetIndex() {
		// A snapshot from the leader became durable but the crash came
		// before its database replaced the backend: finish the install.
		if st, err := c.installSnapshotDB(ss, sn.GetMetadata().GetIndex(), nil); err == nil {
			store = st
			c.logger().Warn("finished installing a snapshot database after a restart", "index", sn.GetMetadata().GetIndex())
		}
	}
	if sn != nil && store.ConsistentIndex() < sn.GetMetadata().GetIndex() {
		_ = rec.wal.Close()
		return &StartupError{"check backend", fmt.Errorf(
			"backend %s is at index %d, older than snapshot %d (fix: restore the data dir from a snapshot, or remove it and re-add the member)",
			DBPath(dd), store.ConsistentIndex(), sn.GetMetadata().GetIndex())}
	}

	// raft starts from the snapshot, not from the backend's index: it hands
	// the committed entries after the snapshot out again, so configuration
	// changes reach raft; the applier skips what the backend holds.
	if ci := store.ConsistentIndex(); ci > rec.hs.GetCommit() && len(rec.ents) > 0 && ci <= rec.ents[len(rec.ents)-1].GetIndex() {
		// The backend applied entries whose commit index had not reached
		// the disk yet (commit-only hard states are written unsynced):
		// they were committed, so the hard state may say so.
		rec.hs.Commit = &ci
	}
	ms := raft.NewMemoryStorage()
	if sn != nil {
		if err := ms.ApplySnapshot(sn); err != nil {
			return &StartupError{"restore raft storage", err}
		}
	}
	if err := ms.SetHardState(rec.hs); err != nil {
		return &StartupError{"restore raft storage", err}
	}
	if err := ms.Append(rec.ents); err != nil {
		return &StartupError{"restore raft storage", fmt.Errorf("entries of %s do not follow the snapshot: %w", WALDir(dd), err)}
	}
	members, removed, err := store.LoadMembers()
	if err != nil {
		return &StartupError{"load members", fmt.Errorf("%s: %w", DBPath(dd), err)}
	}
	cl := membership.NewCluster(members, removed)
	c.cfg.State.SetCluster(cl)
	c.cfg.State.Applied.Reset(store.ConsistentIndex())
	c.spawnChildren(ctx, ss, ms, store, cl, rec)
	c.cfg.State.SetCore(raftPID(ctx), store)
	return nil
}

// storeOptions are the options of every backend the core opens.
func (c *core) storeOptions() mvcc.Options {
	return mvcc.Options{Logger: c.cfg.Logger, CommitObserved: metrics.ObserveBackendCommit, Changed: c.changes.Add}
}

// installSnapshotDB replaces the backend with the snapshot database for
// index from the snapshot dir: close the backend, rename the file over it,
// open it. Clients see the core as down meanwhile. raft, when not nil, is
// the raft actor to publish again with the new backend.
func (c *core) installSnapshotDB(ss *snap.Snapshotter, index uint64, raft *actor.PID) (*mvcc.Store, error) {
	path, err := ss.DBFilePath(index)
	if err != nil {
		return nil, fmt.Errorf("find snapshot database %d in %s: %w", index, ss.Dir(), err)
	}
	c.res.mu.Lock()
	defer c.res.mu.Unlock()
	c.cfg.State.SetCore(nil, nil)
	if c.res.store != nil {
		if err := c.res.store.Close(); err != nil {
			return nil, fmt.Errorf("close backend for snapshot install: %w", err)
		}
		c.res.store = nil
	}
	// Chaos tests crash the install here: the backend is closed, the
	// snapshot durable, the database not yet in place.
	_ = failpoint.Inject("snapshotInstallPanic")
	db := DBPath(c.cfg.DataDir)
	if err := os.Rename(path, db); err != nil {
		return nil, fmt.Errorf("install snapshot database %s as %s: %w", path, db, err)
	}
	if d, err := os.Open(filepath.Dir(db)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	st, err := mvcc.Open(db, c.storeOptions())
	if err != nil {
		return nil, err
	}
	c.res.store = st
	if raft != nil {
		c.cfg.State.SetCore(raft, st)
	}
	return st, nil
}

// membersChanged returns what the applier calls after a membership
// change: publish it to the peers and to the member's own state, and stop
// the member for good if it was removed.
func (c *core) membersChanged(ctx actor.Context) func([]membership.Member) {
	root, peers, st := ctx.ActorSystem().Root, c.cfg.PeersPID, c.cfg.State
	return func(members []membership.Member) {
		self := false
		for _, m := range members {
			if m.ID == st.MemberID {
				self = true
				st.SetLearner(m.IsLearner)
			}
		}
		if cl := st.Cluster(); cl != nil && cl.Removed(st.MemberID) && !self {
			panic(memberstate.ErrRemoved)
		}
		if peers != nil {
			// The applier published members through st's cluster already.
			root.Send(peers, &messages.SetPeers{Peers: st.PeerURLs()})
		}
	}
}

// sendPeer returns the raft actor's way to other members: a message to the
// peers supervisor, which never blocks the sender.
func (c *core) sendPeer(ctx actor.Context) func(*raftpb.Message) {
	if c.cfg.PeersPID == nil {
		return nil
	}
	root, pid := ctx.ActorSystem().Root, c.cfg.PeersPID
	return func(m *raftpb.Message) { root.Send(pid, &messages.SendRaft{Msg: m}) }
}

func raftPID(ctx actor.Context) *actor.PID {
	return actor.NewPID(ctx.Self().Address, ctx.Self().Id+"/raft")
}

// snapshotsNewestFirst reads the snapshot files of dir, newest first;
// unreadable ones are logged and skipped.
func snapshotsNewestFirst(dir string, log *slog.Logger) []*raftpb.Snapshot {
	paths, _ := filepath.Glob(filepath.Join(dir, "*.snap"))
	sort.Sort(sort.Reverse(sort.StringSlice(paths))) // names are term-index in hex
	var out []*raftpb.Snapshot
	for _, p := range paths {
		sn, err := snap.Read(p)
		if err != nil {
			log.Warn("skipping unreadable snapshot", "file", p, "err", err)
			continue
		}
		out = append(out, sn)
	}
	return out
}

// replayWAL opens the WAL (creating it for a new member) and reads it from
// the newest snapshot whose marker it holds. The snapshot file is written
// before its marker, so a crash in between leaves a newest snapshot the WAL
// does not know: the one before it is used, whose entries the WAL still has.
func (c *core) replayWAL(snaps []*raftpb.Snapshot) (*recovered, error) {
	dir := WALDir(c.cfg.DataDir)
	opts := wal.Options{SegmentSizeBytes: c.cfg.WALSegmentBytes, Logger: c.cfg.Logger}
	meta := wal.Metadata{MemberID: c.cfg.State.MemberID, ClusterID: c.cfg.State.ClusterID}
	if !wal.Exist(dir) {
		if len(snaps) > 0 {
			return nil, &StartupError{"open wal", fmt.Errorf("%s has snapshots but %s has no WAL (fix: restore the data dir, or remove it and re-add the member)", SnapDir(c.cfg.DataDir), dir)}
		}
		w, err := wal.Create(dir, meta, opts)
		if err != nil {
			return nil, &StartupError{"create wal", err}
		}
		return &recovered{hs: &raftpb.HardState{}, wal: w, fresh: true}, nil
	}
	for i := 0; ; i++ {
		var sn *raftpb.Snapshot
		var from wal.SnapshotMarker
		if i < len(snaps) {
			sn = snaps[i]
			from = wal.SnapshotMarker{Index: sn.GetMetadata().GetIndex(), Term: sn.GetMetadata().GetTerm()}
		}
		w, err := wal.Open(dir, opts)
		if err != nil {
			return nil, &StartupError{"open wal", err}
		}
		got, hs, ents, err := w.ReadAll(from)
		if errors.Is(err, wal.ErrSnapshotNotFound) && i < len(snaps) {
			_ = w.Close()
			c.logger().Warn("snapshot has no marker in the WAL, trying an older one", "index", from.Index, "term", from.Term)
			continue
		}
		if err != nil {
			_ = w.Close()
			return nil, &StartupError{"replay wal", err}
		}
		if err := c.checkMetadata(dir, got); err != nil {
			_ = w.Close()
			return nil, err
		}
		// A WAL that holds nothing durable yet (the first start stopped
		// before raft's bootstrap entries were written) is still new.
		fresh := sn == nil && len(ents) == 0 && raft.IsEmptyHardState(hs)
		return &recovered{snapshot: sn, hs: hs, ents: ents, wal: w, fresh: fresh}, nil
	}
}

func (c *core) checkMetadata(dir string, got wal.Metadata) error {
	mid, cid := got.MemberID, got.ClusterID
	if mid != c.cfg.State.MemberID || cid != c.cfg.State.ClusterID {
		return &StartupError{"check wal", fmt.Errorf(
			"%s belongs to member %x of cluster %x, but the flags make member %x of cluster %x (fix: start with the flags the data dir was made with, or use another --data-dir)",
			dir, mid, cid, c.cfg.State.MemberID, c.cfg.State.ClusterID)}
	}
	return nil
}

func (c *core) spawnChildren(ctx actor.Context, ss *snap.Snapshotter, ms *raft.MemoryStorage, store *mvcc.Store, cl *membership.Cluster, rec *recovered) {
	st, log := c.cfg.State, c.cfg.Logger
	raftPID := raftPID(ctx)
	walPID, err := ctx.SpawnNamed(walactor.Props(walactor.Config{
		Dir: WALDir(c.cfg.DataDir), WAL: rec.wal, Snap: ss, Raft: raftPID, Logger: log,
	}, c.res.pinned(), metrics.Mailbox("wal")), "wal")
	must(err)
	snapPID, err := ctx.SpawnNamed(snapshotter.Props(snapshotter.Config{
		Snap: ss, Storage: ms, WAL: walPID, MemberID: st.MemberID, Logger: log,
	}).Configure(metrics.Mailbox("snapshotter")), "snapshotter")
	must(err)
	var snapIndex uint64
	if rec.snapshot != nil {
		snapIndex = rec.snapshot.GetMetadata().GetIndex()
	}
	applierPID, err := ctx.SpawnNamed(applier.Props(applier.Config{
		Store: store, State: st, Snapshotter: snapPID, SnapshotCount: c.cfg.SnapshotCount,
		SnapshotIndex: snapIndex, Logger: log, QuotaBytes: c.cfg.QuotaBytes,
		InstallSnapshot: func(index uint64) (*mvcc.Store, *membership.Cluster, error) {
			st, err := c.installSnapshotDB(ss, index, raftPID)
			if err != nil {
				return nil, nil, err
			}
			members, removed, err := st.LoadMembers()
			if err != nil {
				return nil, nil, err
			}
			cl := membership.NewCluster(members, removed)
			c.cfg.State.SetCluster(cl)
			return st, cl, nil
		},
		Cluster:        cl,
		MembersChanged: c.membersChanged(ctx),
		Changes:        c.changes,
	}, c.res.pinned(), metrics.Mailbox("applier")), "applier")
	must(err)
	lessorPID, err := ctx.SpawnNamed(lessor.Props(lessor.Config{
		State: st, Raft: raftPID, Logger: log,
		Extension: time.Duration(c.cfg.ElectionTicks) * c.cfg.HeartbeatInterval,
	}).Configure(metrics.Mailbox("lessor")), "lessor")
	must(err)
	var peers []raft.Peer
	if rec.fresh {
		peers = c.cfg.Peers
	}
	_, err = ctx.SpawnNamed(raftactor.Props(raftactor.Config{
		ID: st.MemberID, Storage: ms, Bootstrap: peers,
		ElectionTick: c.cfg.ElectionTicks, HeartbeatTick: 1, TickInterval: c.cfg.HeartbeatInterval,
		WAL: walPID, Applier: applierPID, Lessor: lessorPID, State: st, Logger: log,
		SendPeer: c.sendPeer(ctx),
	}, c.res.pinned(), metrics.Mailbox("raft")), "raft")
	must(err)
}

// must panics on a spawn error: names are fixed and the previous
// incarnation's children are gone, so a clash is a broken invariant.
func must(err error) {
	if err != nil {
		panic(err)
	}
}
