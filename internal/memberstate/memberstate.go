// Package memberstate is the state one member shares between its actors and
// the goroutines that serve clients: identities, the current raft PID and
// backend (both replaced when the core restarts), raft status figures, the
// wait registry and the applied index. Everything here is safe for
// concurrent use; actors write it, request goroutines read it, so reads
// never queue in a mailbox.
package memberstate

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupedb/troupe/internal/wait"
	"github.com/troupedb/troupe/persistence/alarm"
	"github.com/troupedb/troupe/persistence/membership"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// Member is one member of the cluster as etcd's MemberList shows it.
type Member = membership.Member

// State is shared by one member's actors and client listeners.
type State struct {
	MemberID  uint64
	ClusterID uint64
	Self      Member

	Waits   *wait.Registry
	Applied *wait.Index

	raftPID atomic.Pointer[actor.PID]
	hub     watchHub // see watchhub.go
	store   atomic.Pointer[mvcc.Store]
	members atomic.Pointer[[]Member]           // from the flags, until the core knows better
	cluster atomic.Pointer[membership.Cluster] // the applied membership, set by the core

	leader    atomic.Uint64
	term      atomic.Uint64
	raftIndex atomic.Uint64
	restarts  atomic.Uint64

	ids idGenerator

	progress atomic.Pointer[progress]
	learner  atomic.Bool
	alarms   atomic.Pointer[alarm.Set] // see alarms.go

	peerMu     sync.Mutex
	peerActive map[uint64]time.Time // since when each member answers; absent: inactive
}

// progress is the leader's view of its followers' logs.
type progress struct {
	match  map[uint64]uint64
	commit uint64
}

// New returns the state of member id in cluster cid.
func New(self Member, clusterID uint64) *State {
	s := &State{
		MemberID:  self.ID,
		ClusterID: clusterID,
		Self:      self,
		Waits:     wait.New(),
		Applied:   wait.NewIndex(0),
	}
	s.ids.init(uint16(self.ID), time.Now())
	s.members.Store(&[]Member{self})
	return s
}

// NextID returns a request id unique across members and restarts.
func (s *State) NextID() uint64 { return s.ids.next() }

// SetCore records the raft actor and backend of a (re)started core; nil
// values mark the core as down.
func (s *State) SetCore(raft *actor.PID, store *mvcc.Store) {
	s.raftPID.Store(raft)
	s.store.Store(store)
}

// Applier returns the current applier actor, or nil while the core is
// down: it is the raft actor's sibling "applier" under the core.
func (s *State) Applier() *actor.PID {
	r := s.raftPID.Load()
	if r == nil {
		return nil
	}
	return actor.NewPID(r.Address, strings.TrimSuffix(r.Id, "/raft")+"/applier")
}

// Raft returns the current raft actor, or nil while the core is down.
func (s *State) Raft() *actor.PID { return s.raftPID.Load() }

// Store returns the current backend, or nil while the core is down.
func (s *State) Store() *mvcc.Store { return s.store.Load() }

// SetRaftStatus records what the raft actor last saw.
func (s *State) SetRaftStatus(leader, term, commitIndex uint64) {
	s.leader.Store(leader)
	s.term.Store(term)
	s.raftIndex.Store(commitIndex)
}

// Leader returns the leader's member id, 0 when none is known.
func (s *State) Leader() uint64 { return s.leader.Load() }

// Term returns the raft term last seen.
func (s *State) Term() uint64 { return s.term.Load() }

// RaftIndex returns the committed raft index last seen, which etcd's
// Status reports as raftIndex.
func (s *State) RaftIndex() uint64 { return s.raftIndex.Load() }

// SetProgress records the leader's match index per member and its commit
// index; nil when this member does not lead.
func (s *State) SetProgress(match map[uint64]uint64, commit uint64) {
	if match == nil {
		s.progress.Store(nil)
		return
	}
	s.progress.Store(&progress{match: match, commit: commit})
}

// Progress returns member id's match index and the leader's commit index,
// ok only on the leader.
func (s *State) Progress(id uint64) (match, commit uint64, ok bool) {
	p := s.progress.Load()
	if p == nil {
		return 0, 0, false
	}
	m, ok := p.match[id]
	return m, p.commit, ok
}

// SetPeerActive records that member id became active (answering) or
// inactive, as the peer transport sees it.
func (s *State) SetPeerActive(id uint64, active bool) {
	s.peerMu.Lock()
	defer s.peerMu.Unlock()
	if s.peerActive == nil {
		s.peerActive = map[uint64]time.Time{}
	}
	if !active {
		delete(s.peerActive, id)
		return
	}
	if _, ok := s.peerActive[id]; !ok {
		s.peerActive[id] = time.Now()
	}
}

// PeerActiveSince returns since when member id answers, zero if it does
// not (this member itself counts as always active).
func (s *State) PeerActiveSince(id uint64) time.Time {
	if id == s.MemberID {
		return time.Unix(1, 0)
	}
	s.peerMu.Lock()
	defer s.peerMu.Unlock()
	return s.peerActive[id]
}

// IsLearner reports whether this member is a learner now.
func (s *State) IsLearner() bool { return s.learner.Load() }

// SetLearner records whether this member is a learner.
func (s *State) SetLearner(v bool) { s.learner.Store(v) }

// Members returns the cluster's members: the applied membership once the
// core has one, the flags' --initial-cluster before.
func (s *State) Members() []Member {
	if c := s.cluster.Load(); c != nil {
		if ms := c.Members(); len(ms) > 0 {
			return ms
		}
	}
	return *s.members.Load()
}

// PeerURLs maps every other member to its peer URLs, as the peer
// transport needs them.
func (s *State) PeerURLs() map[uint64][]string {
	out := map[uint64][]string{}
	for _, m := range s.Members() {
		if m.ID != s.MemberID {
			out[m.ID] = m.PeerURLs
		}
	}
	return out
}

// Cluster returns the applied membership, nil before the core started.
func (s *State) Cluster() *membership.Cluster { return s.cluster.Load() }

// SetCluster publishes the applied membership the core keeps.
func (s *State) SetCluster(c *membership.Cluster) { s.cluster.Store(c) }

// SetMembers replaces the member list.
func (s *State) SetMembers(ms []Member) { s.members.Store(&ms) }

// CountRestart records a restart of the core.
func (s *State) CountRestart() uint64 { return s.restarts.Add(1) }

// Restarts reports how often the core restarted.
func (s *State) Restarts() uint64 { return s.restarts.Load() }

// ErrRemoved stops a member that the cluster removed: it may not come
// back with the same id, as in etcd.
var ErrRemoved = errors.New("the member has been permanently removed from the cluster")

// Result is what a proposal's waiter receives once its entry is applied:
// the response, or the client-visible error.
type Result struct {
	Resp any
	Err  error
}
