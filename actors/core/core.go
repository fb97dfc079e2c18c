// Package core is the core supervisor of one member: everything that
// shares raft's in-memory state (raft with its ticker, wal, applier,
// snapshotter, lessor).
//
// Its Started handler is the start-up sequence, modelled on etcd's
// NewServer: check the directories, load the newest snapshot, open the
// backend and check it against the snapshot, open and replay the WAL,
// rebuild raft's storage, then spawn wal, applier, snapshotter, lessor and raft.
// With ForceNewCluster, once per node start, the recovered log is rewritten
// before raft's storage is (membership.ForceNewCluster) so that this member
// restarts as the only voter. The WAL is in Config.WALDir (--wal-dir) or
// <data-dir>/member/wal.
// Every step that fails ends the start-up with a StartupError that names
// the file and the fix.
//
// It publishes its raft, applier and lessor actors, its backend and its
// raft actor's read index (raftclient.LocalReadIndex, one per incarnation)
// through the member's raftclient.Client once started, and withdraws them
// (failing the requests in flight) before it stops or restarts.
//
// In (from its children): InstallBackend (the applier, for a snapshot from
// the leader: the core swaps the backend and answers BackendInstalled) and
// MembersChanged (the applier: the core updates the member view, tells the
// peers, and fails with ErrRemoved when the cluster removed this member).
// Out: CoreStarted to the node, SetPeers to the peers.
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
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/troupedb/troupe/actors/applier"
	"github.com/troupedb/troupe/actors/lessor"
	raftactor "github.com/troupedb/troupe/actors/raft"
	"github.com/troupedb/troupe/actors/snapshotter"
	walactor "github.com/troupedb/troupe/actors/wal"
	"github.com/troupedb/troupe/failpoint"
	"github.com/troupedb/troupe/internal/dispatch"
	"github.com/troupedb/troupe/internal/hublink"
	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/internal/metrics"
	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/auth"
	"github.com/troupedb/troupe/persistence/membership"
	"github.com/troupedb/troupe/persistence/mvcc"
	"github.com/troupedb/troupe/persistence/snap"
	"github.com/troupedb/troupe/persistence/wal"
)

// Config of the core.
type Config struct {
	DataDir string // the member's data dir (holds member/)
	// WALDir is the WAL's dir (--wal-dir); empty: WALDir(DataDir).
	WALDir string
	// ForceNewCluster rewrites the recovered log, once per node start, so
	// that this member restarts as the only voter (--force-new-cluster).
	ForceNewCluster   bool
	Peers             []raft.Peer
	SnapshotCount     uint64
	HeartbeatInterval time.Duration
	ElectionTicks     int
	WALSegmentBytes   int64
	QuotaBytes        int64 // --quota-backend-bytes in effect, <= 0: none
	// Knobs of etcd's flags; the zero values are troupe's defaults.
	DisablePreVote       bool          // --pre-vote=false
	CatchUpEntries       uint64        // --snapshot-catchup-entries; 0: the snapshotter's default
	MaxSnapshots         int           // snap.Options.Keep: 0 default, < 0 all
	MaxWALs              int           // wal.Options.MaxFiles: 0 only what is needed, < 0 all
	BackendBatchLimit    int           // mvcc.Options.BatchLimit; 0: its default
	BackendBatchInterval time.Duration // applier CommitInterval; 0: its default
	UnsafeNoFsync        bool          // --unsafe-no-fsync: WAL and backend skip fsync
	MaxLearners          int           // --max-learners; 0: membership.MaxLearners
	WarningApplyDuration time.Duration // --warning-apply-duration; 0: no warning
	CompactionBatchLimit int           // --compaction-batch-limit; 0: deletes go with the batch
	MemoryMlock          bool          // --memory-mlock: bbolt's Mlock
	FreelistType         string        // --backend-bbolt-freelist-type: "map", "array" or "" (bbolt's)
	// SkipElectionTickAdvance is --initial-election-tick-advance=false.
	SkipElectionTickAdvance bool
	// BootstrapDefragThresholdBytes defragments the backend at start-up
	// when at least this much of it is free (0: never).
	BootstrapDefragThresholdBytes int64
	// PeersPID is the peers supervisor raft messages for other members go
	// to, and SetPeers after a membership change; nil for a member with no
	// peer transport (tests).
	PeersPID *actor.PID
	// Client is where the core publishes its actors and backend; its Waits
	// are answered by the raft actor and the applier.
	Client *raftclient.Client
	// Hub is the watch hub (beside the core) the applier sends events to.
	Hub    *hublink.Link
	Logger *slog.Logger
	// Tokens hears the token side effects of applied auth requests (the
	// applier's Config.Tokens); nil: none.
	Tokens auth.TokenKeeper
}

// ErrRemoved stops a member that the cluster removed: it may not come
// back with the same id, as in etcd.
var ErrRemoved = errors.New("the member has been permanently removed from the cluster")

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

// WALPath is walDir (--wal-dir) when given, else WALDir(dataDir).
func WALPath(dataDir, walDir string) string {
	if walDir != "" {
		return walDir
	}
	return WALDir(dataDir)
}

// CheckWALLayout refuses a dedicated WAL dir (--wal-dir) that holds no WAL
// while the data dir holds one: the member would start as a new one beside
// its old log. etcd does not check this and hangs.
func CheckWALLayout(dataDir, walDir string) error {
	def := WALDir(dataDir)
	if walDir == "" || filepath.Clean(walDir) == filepath.Clean(def) || wal.Exist(walDir) || !wal.Exist(def) {
		return nil
	}
	return fmt.Errorf("--wal-dir %s has no WAL but data dir %s has one in %s (fix: move the files of %s to %s, or start without --wal-dir)",
		walDir, dataDir, def, def, walDir)
}

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
	store       *mvcc.Store
	dispatchers []*dispatch.Pinned
	// forced: the log was rewritten for ForceNewCluster; an in-process
	// restart must not drop the single-member cluster's own tail again.
	forced bool
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
	// snap is this incarnation's snapshot dir, published is what it
	// published through the client.
	snap      *snap.Snapshotter
	published *raftclient.Core
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
		c.cfg.Client.SetCore(nil)
		// Requests in flight may be lost with the mailboxes; tell their
		// callers now (the outcome is unknown, as after etcd's timeouts)
		// rather than let them wait for the request timeout.
		if n := c.cfg.Client.Waits().FailAll(raftclient.ErrStopped); n > 0 {
			c.logger().Warn("failed requests in flight", "count", n)
		}
	case *actor.Stopped:
		c.res.close(c.logger())
	case *actor.Terminated:
	case *messages.InstallBackend:
		c.handleInstallBackend(ctx, msg)
	case *messages.MembersChanged:
		c.handleMembersChanged(ctx, msg)
	default:
		c.logger().Warn("unexpected message", "type", fmt.Sprintf("%T", msg))
	}
}

func (c *core) logger() *slog.Logger {
	if c.log == nil {
		c.log = c.cfg.Logger.With("actor", "core", "member", c.view().MemberID)
	}
	return c.log
}

func (c *core) view() *memberview.View { return c.cfg.Client.View() }

// walDir is where this member's WAL lives.
func (c *core) walDir() string { return WALPath(c.cfg.DataDir, c.cfg.WALDir) }

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
	if err := CheckWALLayout(dd, c.walDir()); err != nil {
		return &StartupError{"check wal dir", err}
	}
	for _, d := range []string{c.walDir(), SnapDir(dd)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			flag := "--data-dir"
			if d == c.walDir() && d != WALDir(dd) {
				flag = "--wal-dir"
			}
			return &StartupError{"check data dir", fmt.Errorf("create %s: %w (fix: make %s writable)", d, err, flag)}
		}
	}
	ss, err := snap.New(SnapDir(dd), snap.Options{Logger: c.cfg.Logger, Keep: c.cfg.MaxSnapshots})
	if err != nil {
		return &StartupError{"open snapshot dir", fmt.Errorf("%w (fix: make %s and its files writable, or remove what is left in it by hand)", err, SnapDir(dd))}
	}
	c.snap = ss
	c.changes = &applier.Changes{}
	store, err := mvcc.Open(DBPath(dd), c.storeOptions())
	if err != nil {
		return &StartupError{"open backend", err}
	}
	c.res.store = store
	if _, err := store.DefragIfFreeable(c.cfg.BootstrapDefragThresholdBytes); err != nil {
		return &StartupError{"defragment backend", fmt.Errorf("%w (fix: free disk space, or start without --bootstrap-defrag-threshold-megabytes)", err)}
	}
	rec, err := c.replayWAL(snapshotsNewestFirst(SnapDir(dd), c.logger()), store.ConsistentIndex())
	if err != nil {
		return err
	}
	sn := rec.snapshot
	if sn != nil && store.ConsistentIndex() < sn.GetMetadata().GetIndex() {
		// A snapshot from the leader became durable but the crash came
		// before its database replaced the backend: finish the install.
		if st, err := c.installSnapshotDB(sn.GetMetadata().GetIndex()); err == nil {
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
	if c.cfg.ForceNewCluster && !c.res.forced && !rec.fresh {
		if err := c.forceNewCluster(rec, store); err != nil {
			_ = rec.wal.Close()
			return err
		}
		c.res.forced = true
	}
	ms, err := restoreStorage(sn, rec)
	if err != nil {
		_ = rec.wal.Close()
		return &StartupError{"restore raft storage", fmt.Errorf("%s: %w (%s)", c.walDir(), err, restoreFix)}
	}
	members, removed, err := store.LoadMembers()
	if err != nil {
		_ = rec.wal.Close()
		return &StartupError{"load members", fmt.Errorf("%s: %w (%s)", DBPath(dd), err, restoreFix)}
	}
	cl := membership.NewCluster(members, removed)
	cl.SetMaxLearners(c.cfg.MaxLearners)
	c.view().SetCluster(cl)
	c.cfg.Client.Waits().Applied.Reset(store.ConsistentIndex())
	c.published = c.spawnChildren(ctx, ms, store, cl, rec)
	c.published.Store = store
	c.cfg.Client.SetCore(c.published)
	return nil
}

// restoreFix is the operator's fix for a data dir whose files cannot be
// used together.
const restoreFix = "fix: restore the data dir from a snapshot, or remove it and re-add the member"

// restoreStorage rebuilds raft's storage from the snapshot and the WAL.
func restoreStorage(sn *raftpb.Snapshot, rec *recovered) (*raft.MemoryStorage, error) {
	ms := raft.NewMemoryStorage()
	if sn != nil {
		if err := ms.ApplySnapshot(sn); err != nil {
			return nil, err
		}
	}
	if err := ms.SetHardState(rec.hs); err != nil {
		return nil, err
	}
	if err := ms.Append(rec.ents); err != nil {
		return nil, fmt.Errorf("entries do not follow the snapshot: %w", err)
	}
	return ms, nil
}

// storeOptions are the options of every backend the core opens.
func (c *core) storeOptions() mvcc.Options {
	return mvcc.Options{
		Logger: c.cfg.Logger, CommitObserved: metrics.ObserveBackendCommit, Changed: c.changes.Add, BatchLimit: c.cfg.BackendBatchLimit,
		NoSync: c.cfg.UnsafeNoFsync, Mlock: c.cfg.MemoryMlock, FreelistType: c.cfg.FreelistType,
		CompactionBatchLimit: c.cfg.CompactionBatchLimit,
	}
}

// installSnapshotDB replaces the backend with the snapshot database for
// index from the snapshot dir: close the backend, rename the file over it,
// open it. Clients see the core as down meanwhile.
func (c *core) installSnapshotDB(index uint64) (*mvcc.Store, error) {
	path, err := c.snap.DBFilePath(index)
	if err != nil {
		return nil, fmt.Errorf("find snapshot database %d in %s: %w", index, c.snap.Dir(), err)
	}
	c.cfg.Client.SetCore(nil)
	if c.res.store != nil {
		if err := c.res.store.CloseForReplace(); err != nil {
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
	return st, nil
}

// handleInstallBackend installs the snapshot database the applier asks
// for, publishes the new backend and membership, and answers the applier,
// which waits for it.
func (c *core) handleInstallBackend(ctx actor.Context, msg *messages.InstallBackend) {
	defer func() {
		// A crash mid-install is the applier's failure, as if it had
		// installed itself: it gets the error and fails, and the restart
		// that follows finishes the install from the snapshot dir. The
		// core must answer: the applier waits for it.
		if r := recover(); r != nil {
			ctx.Respond(&messages.BackendInstalled{Err: fmt.Errorf("install snapshot database %d: panic: %v", msg.Index, r)})
		}
	}()
	st, err := c.installSnapshotDB(msg.Index)
	if err != nil {
		ctx.Respond(&messages.BackendInstalled{Err: err})
		return
	}
	members, removed, err := st.LoadMembers()
	if err != nil {
		ctx.Respond(&messages.BackendInstalled{Err: fmt.Errorf("load members of %s: %w", st.Path(), err)})
		return
	}
	cl := membership.NewCluster(members, removed)
	cl.SetMaxLearners(c.cfg.MaxLearners)
	c.view().SetCluster(cl)
	pub := *c.published
	pub.Store = st
	c.published = &pub
	c.cfg.Client.SetCore(c.published)
	ctx.Respond(&messages.BackendInstalled{Store: st, Cluster: cl})
}

// handleMembersChanged publishes a membership change to the member view
// and the peers, and stops the member for good if it was removed.
func (c *core) handleMembersChanged(ctx actor.Context, msg *messages.MembersChanged) {
	v := c.view()
	self := false
	for _, m := range msg.Members {
		if m.ID == v.MemberID {
			self = true
			v.SetLearner(m.IsLearner)
		}
	}
	if v.Removed(v.MemberID) && !self {
		panic(ErrRemoved)
	}
	if c.cfg.PeersPID != nil {
		// The applier published the members through the view's cluster.
		ctx.Send(c.cfg.PeersPID, &messages.SetPeers{Peers: v.PeerURLs()})
	}
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
func (c *core) replayWAL(snaps []*raftpb.Snapshot, appliedIndex uint64) (*recovered, error) {
	dir := c.walDir()
	opts := wal.Options{SegmentSizeBytes: c.cfg.WALSegmentBytes, Logger: c.cfg.Logger, MaxFiles: c.cfg.MaxWALs, UnsafeNoFsync: c.cfg.UnsafeNoFsync}
	meta := wal.Metadata{MemberID: c.view().MemberID, ClusterID: c.view().ClusterID}
	if !wal.Exist(dir) {
		if len(snaps) > 0 {
			return nil, &StartupError{"open wal", fmt.Errorf("%s has snapshots but %s has no WAL (fix: restore the data dir, or remove it and re-add the member, or give the --wal-dir it was made with)", SnapDir(c.cfg.DataDir), dir)}
		}
		if appliedIndex > 0 {
			// A WAL dir other than the one the data dir was made with
			// (a forgotten or changed --wal-dir): a new log under applied
			// data would never catch up with it (etcd hangs there).
			return nil, &StartupError{"open wal", fmt.Errorf("backend %s has applied up to index %d but %s has no WAL (fix: give the --wal-dir the data dir was made with, or restore the data dir, or remove it and re-add the member)", DBPath(c.cfg.DataDir), appliedIndex, dir)}
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
		if errors.Is(err, wal.ErrLocked) {
			return nil, &StartupError{"open wal", fmt.Errorf("%w (fix: stop the other process that uses this data dir, or use another --data-dir)", err)}
		}
		if err != nil {
			return nil, &StartupError{"open wal", fmt.Errorf("%w (fix: make %s readable and writable)", err, dir)}
		}
		got, hs, ents, err := w.ReadAll(from)
		if errors.Is(err, wal.ErrSnapshotNotFound) && i < len(snaps) {
			_ = w.Close()
			c.logger().Warn("snapshot has no marker in the WAL, trying an older one", "index", from.Index, "term", from.Term)
			continue
		}
		if err != nil {
			_ = w.Close()
			if !errors.Is(err, wal.ErrCorrupt) { // ErrCorrupt names its fix
				err = fmt.Errorf("%w (%s)", err, restoreFix)
			}
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
	if mid != c.view().MemberID || cid != c.view().ClusterID {
		return &StartupError{"check wal", fmt.Errorf(
			"%s belongs to member %x of cluster %x, but the flags make member %x of cluster %x (fix: start with the flags the data dir was made with, or use another --data-dir)",
			dir, mid, cid, c.view().MemberID, c.view().ClusterID)}
	}
	return nil
}

// spawnChildren spawns the core's actors in start-up order and returns
// what the core publishes of them (the backend is added by the caller).
func (c *core) spawnChildren(ctx actor.Context, ms *raft.MemoryStorage, store *mvcc.Store, cl *membership.Cluster, rec *recovered) *raftclient.Core {
	id, log := c.view().MemberID, c.cfg.Logger
	// The raft actor is spawned last but the others answer it: its PID is
	// fixed by its name under this core.
	raftPID := actor.NewPID(ctx.Self().Address, ctx.Self().Id+"/raft")
	walPID, err := ctx.SpawnNamed(walactor.Props(walactor.Config{
		Dir: c.walDir(), WAL: rec.wal, Snap: c.snap, Raft: raftPID, Logger: log,
	}, c.res.pinned(), metrics.Mailbox("wal")), "wal")
	must(err)
	snapPID, err := ctx.SpawnNamed(snapshotter.Props(snapshotter.Config{
		Snap: c.snap, Storage: ms, WAL: walPID, MemberID: id, Logger: log, CatchUpEntries: c.cfg.CatchUpEntries,
	}).Configure(metrics.Mailbox("snapshotter")), "snapshotter")
	must(err)
	var snapIndex uint64
	if rec.snapshot != nil {
		snapIndex = rec.snapshot.GetMetadata().GetIndex()
	}
	applierPID, err := ctx.SpawnNamed(applier.Props(applier.Config{
		Store: store, Client: c.cfg.Client, Hub: c.cfg.Hub, Snapshotter: snapPID, SnapshotCount: c.cfg.SnapshotCount,
		SnapshotIndex: snapIndex, Logger: log, QuotaBytes: c.cfg.QuotaBytes, CommitInterval: c.cfg.BackendBatchInterval,
		WarningApplyDuration: c.cfg.WarningApplyDuration,
		Cluster:              cl, Changes: c.changes, Tokens: c.cfg.Tokens,
	}, c.res.pinned(), metrics.Mailbox("applier")), "applier")
	must(err)
	lessorPID, err := ctx.SpawnNamed(lessor.Props(lessor.Config{
		Client: c.cfg.Client, Raft: raftPID, Logger: log,
		Extension: time.Duration(c.cfg.ElectionTicks) * c.cfg.HeartbeatInterval,
	}).Configure(metrics.Mailbox("lessor")), "lessor")
	must(err)
	var peers []raft.Peer
	if rec.fresh {
		peers = c.cfg.Peers
	}
	// Each incarnation's own: a read index of a stopped raft actor must
	// never serve the next core's reads.
	localReads := &raftclient.LocalReadIndex{}
	pid, err := ctx.SpawnNamed(raftactor.Props(raftactor.Config{
		ID: id, Storage: ms, Bootstrap: peers,
		ElectionTick: c.cfg.ElectionTicks, HeartbeatTick: 1, TickInterval: c.cfg.HeartbeatInterval,
		RequestTimeoutTicks: raftactor.Ticks(c.cfg.Client.RequestTimeout(), c.cfg.HeartbeatInterval),
		ReadRetryTicks:      raftactor.Ticks(raftactor.ReadRetryInterval, c.cfg.HeartbeatInterval),
		DisablePreVote:      c.cfg.DisablePreVote,
		WAL:                 walPID, Applier: applierPID, Lessor: lessorPID, Peers: c.cfg.PeersPID,
		SkipElectionTickAdvance: c.cfg.SkipElectionTickAdvance,
		Waits:                   c.cfg.Client.Waits(), LocalReads: localReads, View: c.view(), Logger: log,
	}, c.res.pinned(), metrics.Mailbox("raft")), "raft")
	must(err)
	if !pid.Equal(raftPID) {
		panic(fmt.Sprintf("core: raft actor spawned as %s, want %s", pid, raftPID))
	}
	return &raftclient.Core{Raft: raftPID, Applier: applierPID, Lessor: lessorPID, LocalReads: localReads}
}

// must panics on a spawn error: names are fixed and the previous
// incarnation's children are gone, so a clash is a broken invariant.
func must(err error) {
	if err != nil {
		panic(err)
	}
}
