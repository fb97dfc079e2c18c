// Package peers is the peer transport: it carries raft messages, and the
// snapshot databases they refer to, to the other members of the cluster
// over protoactor remote.
//
// The actors, under the peers supervisor (spawned by the node as
// "node/peers", OneForOne):
//
//   - inbox (InboxID): receives RaftEnvelopes from other members and
//     hands the raft messages of each to the raft actor (Member.Raft) as
//     one StepRaft;
//     receives snapshot databases as SnapshotChunks and saves them with
//     snap.Snapshotter.SaveDBFrom; answers probes (GetPeerStatus) and
//     hands GetHashKV (another member's corruption check) to its hasher.
//   - one peer actor per other member: sends envelopes to that member's
//     inbox, one per flush (the raft messages that queued in its mailbox
//     meanwhile, in order), probes it, streams snapshot databases to it.
//     Once it sent a proposal (MsgProp: a follower forwards its clients'
//     to the leader), a flush of nothing but proposals waits until the
//     member speaks as a leader (the inbox tells, through the
//     supervisor, when an envelope from it holds a MsgApp, MsgHeartbeat
//     or MsgSnap) or answers a probe; any other message takes them along
//     at once. The leader holds forwarded proposals while its WAL is
//     busy anyway (actors/raft), and its next MsgApp follows that WAL
//     round, so a follower's proposals travel several rounds of its raft
//     actor to an envelope instead of one.
//
// In: *messages.SetPeers and *messages.SendRaft (to the supervisor).
// Out: *messages.StepRaft, *messages.PeerUnreachable and
// *messages.SnapshotReported to the raft actor; *messages.MemberRemoved to
// the supervisor's parent (the node) when another member says the cluster
// removed this one.
//
// Invariants:
//   - A member that is down costs only its own peer actor: nothing blocks
//     the raft actor or the supervisor. While a member is not known to be
//     up (its last probe failed, or none answered yet) its raft messages
//     are dropped and the raft actor is told it is unreachable; raft
//     retransmits.
//   - A MsgSnap is sent only after the receiver saved the whole database
//     as %016x.snap.db and synced it, and the receiving inbox forwards a
//     MsgSnap to raft only if that file exists; a broken transfer leaves
//     only a temporary file (removed by SaveDBFrom, or by snap.New at the
//     next start).
//   - Envelopes of another cluster, or for another member, are dropped.
//
// A restart of the supervisor re-spawns the inbox and the peer actors of
// Member.PeerURLs (the membership it last got by SetPeers is lost). A peer
// actor restarts alone; its snapshot transfer, if any, is reported failed.
package peers

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/troupedb/troupe/persistence/membership"
	"github.com/troupedb/troupe/persistence/snap"
)

// Name is the name the node spawns the supervisor under, and InboxName the
// name the supervisor spawns the inbox under: other members address the
// inbox as actor.NewPID(peerHostPort, InboxID).
const (
	Name      = "peers"
	InboxName = "inbox"
	InboxID   = "node/" + Name + "/" + InboxName
)

// Restart budget of the supervisor's children: a child failing more than
// maxRestarts times within restartWindow is stopped, and the supervisor
// then fails itself so that its own supervisor (the node) decides.
const (
	maxRestarts   = 10
	restartWindow = time.Minute
)

// Defaults of the tunable Config fields.
const (
	DefaultProbeInterval      = time.Second
	DefaultProbeTimeout       = time.Second
	DefaultMaxProbeBackoff    = 2 * time.Second
	DefaultSnapshotChunkBytes = 512 << 10
)

// Member is the member the transport carries raft traffic for. The node
// implements it with its raft client and member view; tests put an
// in-memory member there. Its methods are called on actor goroutines (and
// SnapshotDB on a transfer's own goroutine) and must not block.
type Member interface {
	// Raft returns the running raft actor, nil while the core restarts
	// (messages for it are then dropped).
	Raft() *actor.PID
	// SnapshotDB opens the backend database to ship with a MsgSnap.
	SnapshotDB() (io.ReadCloser, error)
	// Members returns the membership, for members that join and ask
	// (GetMembers).
	Members() []membership.Member
	// PeerURLs returns the other members' peer URLs, which the supervisor
	// starts with (first start and restarts); SetPeers replaces them.
	PeerURLs() map[uint64][]string
	// Removed reports whether the cluster removed member id; probes from
	// it are answered with PeerStatus.removed.
	Removed(id uint64) bool
	// SetPeerActive is told when a member becomes active (a probe was
	// answered) or inactive (a probe timed out).
	SetPeerActive(id uint64, active bool)
	// HashKV hashes the backend's key history up to rev (0: the current
	// revision), as mvcc.Store.HashKV, for another member's corruption
	// check (GetHashKV). It runs on the inbox's hasher, never the inbox.
	HashKV(rev int64) (hash uint32, current, compacted int64, err error)
}

// noMember is the Member of a transport that serves none.
type noMember struct{}

func (noMember) Raft() *actor.PID                   { return nil }
func (noMember) SnapshotDB() (io.ReadCloser, error) { return nil, errors.New("peers: no backend") }
func (noMember) Members() []membership.Member       { return nil }
func (noMember) PeerURLs() map[uint64][]string      { return nil }
func (noMember) Removed(uint64) bool                { return false }
func (noMember) SetPeerActive(uint64, bool)         {}
func (noMember) HashKV(int64) (uint32, int64, int64, error) {
	return 0, 0, 0, errors.New("peers: no backend")
}

// Config of the peers supervisor.
type Config struct {
	// Self is this member's id, ClusterID the cluster's; envelopes carry
	// both and the inbox drops those that do not match.
	Self      uint64
	ClusterID uint64
	// Member is the member this transport serves (see Member); nil
	// serves none: no raft actor, no members, no snapshots.
	Member Member
	// Snap saves received snapshot databases (SaveDBFrom) and tells
	// whether one exists (DBFilePath); nil refuses incoming snapshots.
	// It is used from the inbox and its receiving goroutine, concurrently
	// with the member's other users of it, on different files.
	Snap *snap.Snapshotter
	// Filter is a test hook applied to every raft message before it is
	// sent: drop it, or deliver it after delay (messages to one member
	// keep their order, so a delayed message holds back those after it).
	// Nil sends everything at once.
	Filter func(from, to uint64, m *raftpb.Message) (drop bool, delay time.Duration)
	// InboxPID maps one of a member's peer URLs to the PID of its inbox.
	// Nil means actor.NewPID(host:port of the URL, InboxID); an in-process
	// test network can resolve to local PIDs instead (then messages are
	// shared, not copied, between members).
	InboxPID func(id uint64, peerURL string) (*actor.PID, error)

	// ProbeInterval is the pause between probes of an active member,
	// ProbeTimeout how long a probe may take before the member counts as
	// inactive, and MaxProbeBackoff the longest pause between probes of an
	// inactive one (it doubles from 100 ms). Zero means the defaults.
	ProbeInterval   time.Duration
	ProbeTimeout    time.Duration
	MaxProbeBackoff time.Duration
	// SnapshotChunkBytes is the size of one SnapshotChunk; zero means
	// DefaultSnapshotChunkBytes.
	SnapshotChunkBytes int

	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.ProbeTimeout <= 0 {
		c.ProbeTimeout = DefaultProbeTimeout
	}
	if c.MaxProbeBackoff <= 0 {
		c.MaxProbeBackoff = DefaultMaxProbeBackoff
	}
	if c.SnapshotChunkBytes <= 0 {
		c.SnapshotChunkBytes = DefaultSnapshotChunkBytes
	}
	if c.Member == nil {
		c.Member = noMember{}
	}
	if c.InboxPID == nil {
		c.InboxPID = RemoteInboxPID
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// RemoteInboxPID is the default Config.InboxPID: the inbox at the host:port
// of peerURL ("http://10.0.0.1:2380").
func RemoteInboxPID(_ uint64, peerURL string) (*actor.PID, error) {
	u, err := url.Parse(peerURL)
	if err != nil {
		return nil, fmt.Errorf("peers: peer url %q: %w", peerURL, err)
	}
	if u.Host == "" || u.Port() == "" {
		return nil, fmt.Errorf("peers: peer url %q: %w", peerURL, errNoHostPort)
	}
	return actor.NewPID(u.Host, InboxID), nil
}

var errNoHostPort = errors.New("no host:port")

// Props returns the props of the peers supervisor; opts can add a
// dispatcher (every raft message to another member passes through it).
func Props(cfg Config, opts ...actor.PropsOption) *actor.Props {
	cfg = cfg.withDefaults()
	opts = append([]actor.PropsOption{
		actor.WithSupervisor(actor.NewOneForOneStrategy(maxRestarts, restartWindow, actor.DefaultDecider)),
	}, opts...)
	return actor.PropsFromProducer(func() actor.Actor { return &supervisor{cfg: cfg} }, opts...)
}
