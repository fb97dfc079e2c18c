package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"go.etcd.io/raft/v3"

	"github.com/troupedb/troupe/actors/core"
	"github.com/troupedb/troupe/actors/listeners"
	"github.com/troupedb/troupe/actors/peers"
	"github.com/troupedb/troupe/actors/watchers"
	"github.com/troupedb/troupe/internal/authtoken"
	"github.com/troupedb/troupe/internal/dispatch"
	"github.com/troupedb/troupe/internal/hublink"
	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/internal/metrics"
	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/internal/transport"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/membership"
	"github.com/troupedb/troupe/persistence/snap"
	"github.com/troupedb/troupe/persistence/wal"
)

// Restart budget of the core: more than maxCoreRestarts failures within
// restartWindow stop the node rather than loop.
const (
	maxCoreRestarts = 10
	restartWindow   = time.Minute
	startTimeout    = 60 * time.Second
)

// Node is one running troupe member.
type Node struct {
	cfg    Config
	system *actor.ActorSystem
	remote *remote.Remote
	bound  *transport.Bound // client and metrics listeners until the listeners actor takes them
	root   *actor.PID
	view   *memberview.View
	raft   *raftclient.Client
	tokens authtoken.Provider // stopped after the tree

	done     chan error
	stopOnce sync.Once
	stopErr  error
}

// Start runs the start-up sequence and returns once the member serves
// clients, or with the error that stopped the start-up.
func Start(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	metrics.SetExtensive(cfg.Metrics == MetricsExtensive)
	if err := cfg.setUpTLS(); err != nil {
		return nil, err
	}
	system := actor.NewActorSystemWithConfig(actor.Configure(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
			return cfg.Logger.With("lib", "protoactor")
		}),
	))
	// Client, client HTTP and metrics ports are bound first, as etcd binds every
	// listener before it builds its server: a taken port fails the start
	// before anything has to be stopped again.
	bound, err := transport.BindAll(slices.Concat(cfg.ListenClientURLs, cfg.ListenClientHTTPURLs, cfg.ListenMetricsURLs), cfg.clientSecurity(), cfg.socketOpts())
	if err != nil {
		var be *transport.BindError
		errors.As(err, &be)
		return nil, &listeners.ListenError{URL: be.URL, Err: be.Err}
	}
	// The peer remote starts before any actor: actors spawned earlier
	// would carry an address other members cannot answer.
	rem, err := peers.StartRemote(system, cfg.ListenPeerURLs[0].Host, cfg.peerSecurity(), cfg.raftWriteTimeout(), cfg.Logger)
	if err != nil {
		bound.Close()
		return nil, fmt.Errorf("listen on peer url %s: %w (fix: free the port or change --listen-peer-urls)", cfg.ListenPeerURLs[0].String(), err)
	}
	initialized := wal.Exist(cfg.WALPath())
	view, boot, err := identify(cfg, system)
	if err != nil {
		bound.Close()
		rem.Shutdown(false)
		return nil, err
	}
	// The raft client and its registries outlive core restarts: the
	// listeners keep one client, the core publishes itself into it.
	rc := raftclient.New(raftclient.Config{
		Root: system.Root, View: view, Waits: raftclient.NewWaits(),
		RequestTimeout: cfg.requestTimeout(), MaxRequestBytes: int(cfg.MaxRequestBytes),
	})
	tokens, err := cfg.tokenProvider(rc)
	if err != nil {
		bound.Close()
		rem.Shutdown(false)
		return nil, err
	}
	n := &Node{cfg: cfg, system: system, remote: rem, bound: bound, view: view, raft: rc, tokens: tokens, done: make(chan error, 1)}
	ready := make(chan error, 1)
	props := actor.PropsFromProducer(func() actor.Actor {
		return &supervisor{cfg: cfg, view: view, raft: rc, hub: &hublink.Link{}, tokens: tokens, bound: bound, boot: boot, initialized: initialized, ready: ready, done: n.done}
	}, metrics.Mailbox("node"))
	n.root, err = system.Root.SpawnNamed(props, "node")
	if err != nil {
		bound.Close()
		return nil, fmt.Errorf("spawn node: %w", err)
	}
	select {
	case err := <-ready:
		if err != nil {
			n.shutdown()
			return nil, err
		}
	case <-time.After(startTimeout):
		n.shutdown()
		return nil, fmt.Errorf("start-up did not finish in %s", startTimeout)
	}
	return n, nil
}

// identify decides who this member is, as etcd's start-up does: a data
// dir that holds a WAL says so itself and the --initial-* flags are
// ignored; a new member of a new cluster derives ids from the flags; a new
// member joining an existing cluster asks the other members listed in
// --initial-cluster for the membership and finds itself by peer URLs.
// It returns raft's bootstrap configuration, empty unless the cluster is
// new.
func identify(cfg Config, system *actor.ActorSystem) (*memberview.View, []raft.Peer, error) {
	walDir := cfg.WALPath()
	if err := core.CheckWALLayout(cfg.DataDir, cfg.WALDir); err != nil {
		return nil, nil, &core.StartupError{Step: "check wal dir", Err: err}
	}
	if wal.Exist(walDir) {
		return restartedMember(cfg, walDir)
	}
	st, boot, err := memberState(cfg)
	if err != nil || cfg.InitialClusterState != ClusterStateExisting {
		return st, boot, err
	}
	return joiningMember(cfg, system)
}

// restartedMember reads the member and cluster ids from the WAL.
func restartedMember(cfg Config, walDir string) (*memberview.View, []raft.Peer, error) {
	md, err := wal.ReadMetadata(walDir)
	if err != nil {
		return nil, nil, &core.StartupError{Step: "read member id", Err: err}
	}
	self := memberview.Member{ID: md.MemberID, Name: cfg.Name, PeerURLs: urlStrings(cfg.InitialAdvertisePeerURLs), ClientURLs: urlStrings(cfg.AdvertiseClientURLs)}
	st := memberview.New(self, md.ClusterID)
	// Until the core loads the applied membership, the flags are the best
	// guess of where the others are.
	if flags, _, err := memberState(cfg); err == nil {
		st.SetMembers(flags.Members())
	}
	return st, nil, nil
}

// joiningMember asks the cluster for its membership (the member must have
// been added with MemberAdd first).
func joiningMember(cfg Config, system *actor.ActorSystem) (*memberview.View, []raft.Peer, error) {
	cluster, err := ParseInitialCluster(cfg.InitialCluster)
	if err != nil {
		return nil, nil, err
	}
	own := urlStrings(cfg.InitialAdvertisePeerURLs)
	var others []string
	for name, urls := range cluster {
		if name != cfg.Name {
			others = append(others, urlStrings(urls)...)
		}
	}
	// Members apply a MemberAdd one after the other: one that has not yet
	// may answer without this member, so ask each, for a few seconds.
	want, _ := membership.ParsePeerURLs(own)
	var lastErr error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		for _, u := range others {
			cid, members, err := peers.FetchMembers(system, []string{u}, time.Second)
			if err != nil {
				lastErr = err
				continue
			}
			for _, m := range members {
				if slices.Equal(m.PeerURLs, want) {
					self := m
					self.Name = cfg.Name
					self.ClientURLs = urlStrings(cfg.AdvertiseClientURLs)
					st := memberview.New(self, cid)
					st.SetMembers(members)
					return st, nil, nil
				}
			}
		}
	}
	if lastErr != nil {
		return nil, nil, fmt.Errorf("--initial-cluster-state=existing: ask the cluster for its members: %w (fix: start the existing members first, or check --initial-cluster)", lastErr)
	}
	return nil, nil, fmt.Errorf("--initial-cluster-state=existing: the cluster has no member with peer URLs %v (fix: add it first with 'etcdctl member add %s --peer-urls=%s')", own, cfg.Name, strings.Join(own, ","))
}

// memberState computes this member's identity from the flags, as etcd does.
func memberState(cfg Config) (*memberview.View, []raft.Peer, error) {
	cluster, err := ParseInitialCluster(cfg.InitialCluster)
	if err != nil {
		return nil, nil, err
	}
	names := make([]string, 0, len(cluster))
	for name := range cluster {
		names = append(names, name)
	}
	sort.Strings(names)
	var (
		self memberview.Member
		ids  []uint64
		boot []raft.Peer
		all  []memberview.Member
	)
	for _, name := range names {
		urls := urlStrings(cluster[name])
		id := membership.NewMemberID(urls, cfg.InitialClusterToken, nil)
		ids = append(ids, id)
		boot = append(boot, raft.Peer{ID: id, Context: membership.AddChange(membership.Member{ID: id, Name: name, PeerURLs: urls}).Context})
		m := memberview.Member{ID: id, Name: name, PeerURLs: urls}
		if name == cfg.Name {
			m.ClientURLs = urlStrings(cfg.AdvertiseClientURLs)
			self = m
		}
		all = append(all, m)
	}
	if self.ID == 0 {
		return nil, nil, fmt.Errorf("--initial-cluster has no member named %q (fix: add %s=<peer url> to it)", cfg.Name, cfg.Name)
	}
	st := memberview.New(self, membership.ClusterID(ids))
	st.SetMembers(all)
	return st, boot, nil
}

func urlStrings(us []url.URL) []string {
	out := make([]string, len(us))
	for i := range us {
		out[i] = us[i].String()
	}
	return out
}

// Stop stops the member gracefully: a leader first hands leadership to
// the most caught-up voter (so the cluster need not wait an election
// timeout), then the tree stops, listeners and core.
func (n *Node) Stop() error {
	n.stopOnce.Do(func() {
		n.transferLeadership()
		n.shutdown()
		select {
		case n.done <- nil:
		default:
		}
	})
	return n.stopErr
}

func (n *Node) transferLeadership() {
	if !n.view.IsLeader() {
		return
	}
	to := n.view.BestTransferee()
	if to == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*n.cfg.ElectionTimeout)
	defer cancel()
	if err := n.raft.TransferLeadership(ctx, to); err != nil {
		n.cfg.Logger.Warn("leadership transfer before stop failed", "to", fmt.Sprintf("%x", to), "err", err)
		return
	}
	n.cfg.Logger.Info("handed leadership over before stopping", "to", fmt.Sprintf("%x", to))
}

func (n *Node) shutdown() {
	if err := n.system.Root.StopFuture(n.root).Wait(); err != nil {
		n.stopErr = fmt.Errorf("stop node: %w", err)
	}
	n.bound.Close()
	n.tokens.Stop()
	transport.ShutdownRemote(n.remote, n.cfg.Logger)
	n.system.Shutdown()
}

// Done receives nil after Stop, or the error that ended the member.
func (n *Node) Done() <-chan error { return n.done }

// MemberID returns this member's id.
func (n *Node) MemberID() uint64 { return n.view.MemberID }

// supervisor is the node actor, the root of the tree: it runs the start-up
// sequence (core, the initial corruption check if on, then listeners) and
// decides what a failure means.
type supervisor struct {
	cfg  Config
	view *memberview.View
	raft *raftclient.Client
	hub  *hublink.Link
	// tokens is the node's token provider, told by the applier what
	// applied auth requests did and asked by the API services.
	tokens authtoken.Provider
	bound  *transport.Bound // listeners bound by Start, served by the first listeners actor
	boot   []raft.Peer      // raft's initial configuration, from --initial-cluster
	ready  chan error
	done   chan error
	log    *slog.Logger

	// initialized: the member had a WAL when it started (etcd's
	// memberInitialized); only such a member gets the initial corruption
	// check.
	initialized bool

	core, listeners, peersPID *actor.PID
	checker                   *actor.PID       // corruption checker, nil when no check is on
	checking                  bool             // the initial corruption check runs
	peersDispatcher           *dispatch.Pinned // stopped with the node
	hubDispatcher             *dispatch.Pinned // the watch hub's; stopped with the node
	started                   bool
	fatal                     error
}

// Receive dispatches on the message type.
func (s *supervisor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		s.handleStarted(ctx)
	case *messages.CoreStarted:
		s.handleCoreStarted(ctx)
	case *messages.ListenersStarted:
		s.handleListenersStarted()
	case *messages.CheckInitialHashResult:
		s.checking = false
		s.handleInitialHashChecked(ctx, msg)
	case *actor.Terminated:
		s.handleTerminated(msg)
	case *messages.MemberRemoved:
		// Another member says the cluster removed this one: stop for good.
		if s.fatal == nil {
			s.fail(core.ErrRemoved)
			for _, c := range ctx.Children() {
				ctx.Stop(c)
			}
		}
	case *actor.Stopped:
		if s.peersDispatcher != nil {
			s.peersDispatcher.Stop()
		}
		if s.hubDispatcher != nil {
			s.hubDispatcher.Stop()
		}
	case *actor.Stopping, *actor.Restarting:
	default:
		s.log.Warn("unexpected message", "type", fmt.Sprintf("%T", msg))
	}
}

func (s *supervisor) handleStarted(ctx actor.Context) {
	s.log = s.cfg.Logger.With("actor", "node", "member", fmt.Sprintf("%x", s.view.MemberID))
	if err := s.spawnPeers(ctx); err != nil {
		s.fail(err)
		return
	}
	// The watch hub before the core, beside it: a core restart keeps
	// the client watches.
	s.hubDispatcher = dispatch.NewPinned(300) // a hot actor: every batch passes it
	if _, err := ctx.SpawnNamed(watchers.Props(watchers.Config{
		MemberID: s.view.MemberID, Link: s.hub, Backend: s.raft, Logger: s.cfg.Logger,
	}, actor.WithDispatcher(s.hubDispatcher), metrics.Mailbox("watchers")), "watchers"); err != nil {
		s.fail(fmt.Errorf("spawn watchers: %w", err))
		return
	}
	electionTicks := int(s.cfg.ElectionTimeout / s.cfg.HeartbeatInterval)
	pid, err := ctx.SpawnNamed(core.Props(core.Config{
		DataDir: s.cfg.DataDir, WALDir: s.cfg.WALPath(), ForceNewCluster: s.cfg.ForceNewCluster,
		Peers: s.boot, SnapshotCount: s.cfg.SnapshotCount,
		HeartbeatInterval: s.cfg.HeartbeatInterval, ElectionTicks: electionTicks, QuotaBytes: s.cfg.BackendQuotaBytes(),
		WALSegmentBytes: s.cfg.WALSegmentBytes,
		Client:          s.raft, Hub: s.hub, Logger: s.cfg.Logger, PeersPID: s.peersPID,
		DisablePreVote: !s.cfg.PreVote, SkipElectionTickAdvance: !s.cfg.InitialElectionTickAdvance, CatchUpEntries: s.cfg.SnapshotCatchUpEntries,
		MaxSnapshots: keepFiles(s.cfg.MaxSnapshots), MaxWALs: keepFiles(s.cfg.MaxWALs),
		BackendBatchLimit: s.cfg.BackendBatchLimit, BackendBatchInterval: s.cfg.BackendBatchInterval,
		UnsafeNoFsync: s.cfg.UnsafeNoFsync, MaxLearners: s.cfg.MaxLearners, WarningApplyDuration: s.cfg.WarningApplyDuration,
		CompactionBatchLimit: s.cfg.CompactionBatchLimit, MemoryMlock: s.cfg.MemoryMlock, FreelistType: s.cfg.freelistType(),
		BootstrapDefragThresholdBytes: int64(s.cfg.BootstrapDefragThresholdMegabytes) << 20,
		Tokens:                        s.tokens,
	}).Configure(metrics.Mailbox("core")), "core")
	if err != nil {
		s.fail(fmt.Errorf("spawn core: %w", err))
		return
	}
	s.core = pid
}

// keepFiles turns etcd's --max-snapshots/--max-wals (0: unlimited) into
// the persistence packages' "keep" (negative: all).
func keepFiles(n uint) int {
	if n == 0 {
		return -1
	}
	return int(min(n, math.MaxInt32))
}

// spawnPeers starts the peer transport and tells it the other members.
func (s *supervisor) spawnPeers(ctx actor.Context) error {
	ss, err := snap.New(core.SnapDir(s.cfg.DataDir), snap.Options{Logger: s.cfg.Logger})
	if err != nil {
		return &core.StartupError{Step: "open snapshot dir", Err: err}
	}
	s.peersDispatcher = dispatch.NewPinned(300)
	pid, err := ctx.SpawnNamed(peers.Props(peers.Config{
		Self: s.view.MemberID, ClusterID: s.view.ClusterID, Snap: ss,
		Member: peerMember{View: s.view, raft: s.raft},
		Filter: s.cfg.PeerFilter,
		Logger: s.cfg.Logger,
	}, actor.WithDispatcher(s.peersDispatcher), metrics.Mailbox("peers")), peers.Name)
	if err != nil {
		return fmt.Errorf("spawn peers: %w", err)
	}
	s.peersPID = pid
	return nil
}

func (s *supervisor) handleCoreStarted(ctx actor.Context) {
	// The core loaded the applied membership: the peers follow it from now
	// on (the flags were only a first guess for a restarted member).
	if c := s.view.Cluster(); c != nil && len(c.Members()) > 0 && s.peersPID != nil {
		ctx.Send(s.peersPID, &messages.SetPeers{Peers: s.view.PeerURLs()})
	}
	if s.listeners != nil {
		s.log.Info("core restarted from disk", "restarts", s.view.Restarts())
		return
	}
	if s.checking {
		return // the core restarted during the initial corruption check
	}
	wait, err := s.startCorruptCheck(ctx)
	if err != nil {
		s.fail(err)
		return
	}
	if wait {
		s.checking = true
		return
	}
	s.spawnListeners(ctx)
}

// spawnListeners starts serving clients, and the auto compactor.
func (s *supervisor) spawnListeners(ctx actor.Context) {
	pid, err := ctx.SpawnNamed(listeners.Props(listeners.Config{
		ClientURLs: s.cfg.ListenClientURLs, ClientHTTPURLs: s.cfg.ListenClientHTTPURLs, Bound: s.bound, Security: s.cfg.clientSecurity(), Socket: s.cfg.socketOpts(), Raft: s.raft, Hub: s.hub,
		MaxRequestBytes: int(s.cfg.MaxRequestBytes), MaxTxnOps: int(s.cfg.MaxTxnOps),
		ActorAddress: s.actorAddress(),
		Name:         s.cfg.Name, AdvertiseClientURLs: urlStrings(s.cfg.AdvertiseClientURLs),
		QuotaBytes: s.cfg.BackendQuotaBytes(), MetricsURLs: s.cfg.ListenMetricsURLs,
		MinLeaseTTL:           s.cfg.minLeaseTTL(),
		WatchProgressInterval: s.cfg.WatchProgressNotifyInterval, ElectionTimeout: s.cfg.ElectionTimeout,
		GRPC: s.cfg.grpcLimits(), HTTP: s.cfg.httpOptions(), NoStrictReconfigCheck: !s.cfg.StrictReconfigCheck,
		WarningUnaryRequestDuration: s.cfg.WarningUnaryRequestDuration,
		Logger:                      s.cfg.Logger,
		Tokens:                      s.tokens, BcryptCost: int(min(s.cfg.BcryptCost, 1<<16)), ClientCertAuth: s.cfg.clientCertAuth(),
	}).Configure(metrics.Mailbox("listeners")), "listeners")
	if err != nil {
		s.fail(fmt.Errorf("spawn listeners: %w", err))
		return
	}
	s.listeners = pid
	if err := s.spawnCompactor(ctx); err != nil {
		s.fail(err)
	}
}

func (s *supervisor) handleListenersStarted() {
	if s.started {
		return
	}
	s.started = true
	s.ready <- nil
}

func (s *supervisor) handleTerminated(msg *actor.Terminated) {
	if s.fatal == nil {
		return // a stop we asked for
	}
	who := msg.Who.Id
	s.log.Error("member stopped", "actor", who, "err", s.fatal)
}

// HandleFailure is the node's supervision: a start-up error stops the
// member; any other failure restarts the failed child (the core as a whole)
// within the restart budget.
func (s *supervisor) HandleFailure(_ *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, rs *actor.RestartStatistics, reason any, _ any) {
	err := asError(reason)
	var se *core.StartupError
	var le *listeners.ListenError
	if errors.As(err, &se) || errors.As(err, &le) || errors.Is(err, core.ErrRemoved) {
		s.fail(err)
		sup.StopChildren(sup.Children()...)
		return
	}
	rs.Fail()
	if n := rs.NumberOfFailures(restartWindow); n > maxCoreRestarts {
		s.fail(fmt.Errorf("restart budget exhausted: %d failures of %s within %s, last: %w", n, child.Id, restartWindow, err))
		sup.StopChildren(sup.Children()...)
		return
	}
	s.view.CountRestart()
	s.log.Warn("restarting after failure", "actor", child.Id, "reason", err, "failures", rs.NumberOfFailures(restartWindow))
	sup.RestartChildren(child)
}

func (s *supervisor) fail(err error) {
	if s.fatal != nil {
		return
	}
	s.fatal = err
	s.log.Error("stopping member", "err", err)
	if !s.started {
		s.ready <- err
		return
	}
	select {
	case s.done <- err:
	default:
	}
}

func asError(reason any) error {
	if err, ok := reason.(error); ok {
		return err
	}
	return fmt.Errorf("panic: %v", reason)
}

// actorAddress is where the actor API listens ("" when off); Validate
// checked that it can be derived.
func (s *supervisor) actorAddress() string {
	addr, _ := s.cfg.ActorAddress()
	return addr
}
