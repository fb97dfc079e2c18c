// Package memberview is the read model of one member: its identity, what
// raft last reported (leader, term, commit index, the leader's view of its
// followers), the applied membership, which peers answer, the applied
// alarms and auth state, and how often the core restarted.
//
// Contract: every field has one writer, named on its setter (the raft
// actor, the core, the applier, the peers, the node); any goroutine reads,
// so client requests never queue in a mailbox to learn the leader. The view
// holds figures only: no actor PIDs, no backend, nothing to call into. To
// propose or read, use a raftclient.Client.
package memberview

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/troupedb/troupe/persistence/alarm"
	"github.com/troupedb/troupe/persistence/auth"
	"github.com/troupedb/troupe/persistence/membership"
)

// Member is one member of the cluster as etcd's MemberList shows it.
type Member = membership.Member

// View is one member's read model.
type View struct {
	MemberID  uint64
	ClusterID uint64
	Self      Member

	members atomic.Pointer[[]Member]           // from the flags, until the core knows better
	cluster atomic.Pointer[membership.Cluster] // the applied membership, set by the core

	leader    atomic.Uint64
	term      atomic.Uint64
	raftIndex atomic.Uint64
	progress  atomic.Pointer[progress]
	learner   atomic.Bool
	alarms    atomic.Pointer[alarm.Set]
	auth      atomic.Pointer[auth.State]
	restarts  atomic.Uint64

	peerMu     sync.Mutex
	peerActive map[uint64]time.Time // since when each member answers; absent: inactive
}

// progress is the leader's view of its followers' logs.
type progress struct {
	match  map[uint64]uint64
	commit uint64
}

// New returns the view of member self in cluster clusterID.
func New(self Member, clusterID uint64) *View {
	v := &View{MemberID: self.ID, ClusterID: clusterID, Self: self}
	v.members.Store(&[]Member{self})
	return v
}

// SetRaftStatus records what the raft actor last saw. Writer: raft actor.
func (v *View) SetRaftStatus(leader, term, commitIndex uint64) {
	v.leader.Store(leader)
	v.term.Store(term)
	v.raftIndex.Store(commitIndex)
}

// Leader returns the leader's member id, 0 when none is known.
func (v *View) Leader() uint64 { return v.leader.Load() }

// IsLeader reports whether this member leads now.
func (v *View) IsLeader() bool { return v.leader.Load() == v.MemberID }

// Term returns the raft term last seen.
func (v *View) Term() uint64 { return v.term.Load() }

// RaftIndex returns the committed raft index last seen, which etcd's
// Status reports as raftIndex.
func (v *View) RaftIndex() uint64 { return v.raftIndex.Load() }

// SetProgress records the leader's match index per member and its commit
// index; nil when this member does not lead. Writer: raft actor.
func (v *View) SetProgress(match map[uint64]uint64, commit uint64) {
	if match == nil {
		v.progress.Store(nil)
		return
	}
	v.progress.Store(&progress{match: match, commit: commit})
}

// Progress returns member id's match index and the leader's commit index,
// ok only on the leader.
func (v *View) Progress(id uint64) (match, commit uint64, ok bool) {
	p := v.progress.Load()
	if p == nil {
		return 0, 0, false
	}
	m, ok := p.match[id]
	return m, p.commit, ok
}

// SetPeerActive records that member id became active (answering) or
// inactive. Writer: the peers.
func (v *View) SetPeerActive(id uint64, active bool) {
	v.peerMu.Lock()
	defer v.peerMu.Unlock()
	if v.peerActive == nil {
		v.peerActive = map[uint64]time.Time{}
	}
	if !active {
		delete(v.peerActive, id)
		return
	}
	if _, ok := v.peerActive[id]; !ok {
		v.peerActive[id] = time.Now()
	}
}

// PeerActiveSince returns since when member id answers, zero if it does
// not (this member itself counts as always active).
func (v *View) PeerActiveSince(id uint64) time.Time {
	if id == v.MemberID {
		return time.Unix(1, 0)
	}
	v.peerMu.Lock()
	defer v.peerMu.Unlock()
	return v.peerActive[id]
}

// IsLearner reports whether this member is a learner now.
func (v *View) IsLearner() bool { return v.learner.Load() }

// SetLearner records whether this member is a learner. Writer: core.
func (v *View) SetLearner(learner bool) { v.learner.Store(learner) }

// Members returns the cluster's members: the applied membership once the
// core has one, the flags' --initial-cluster before.
func (v *View) Members() []Member {
	if c := v.cluster.Load(); c != nil {
		if ms := c.Members(); len(ms) > 0 {
			return ms
		}
	}
	return *v.members.Load()
}

// PeerURLs maps every other member to its peer URLs.
func (v *View) PeerURLs() map[uint64][]string {
	out := map[uint64][]string{}
	for _, m := range v.Members() {
		if m.ID != v.MemberID {
			out[m.ID] = m.PeerURLs
		}
	}
	return out
}

// Cluster returns the applied membership, nil before the core started.
// The applier changes it in place (it is safe for concurrent use).
func (v *View) Cluster() *membership.Cluster { return v.cluster.Load() }

// Removed reports whether the applied membership removed member id.
func (v *View) Removed(id uint64) bool {
	c := v.cluster.Load()
	return c != nil && c.Removed(id)
}

// SetCluster publishes the applied membership. Writer: core.
func (v *View) SetCluster(c *membership.Cluster) { v.cluster.Store(c) }

// SetMembers replaces the members known before the core loads the applied
// membership. Writer: the node, at start.
func (v *View) SetMembers(ms []Member) { v.members.Store(&ms) }

// SetAlarms publishes the applied alarms. Writer: applier.
func (v *View) SetAlarms(set alarm.Set) { v.alarms.Store(&set) }

// Alarms returns the alarms the applier last applied (empty before the
// first core start). Listeners refuse writes with them before proposing,
// Status and /health report them.
func (v *View) Alarms() alarm.Set {
	if p := v.alarms.Load(); p != nil {
		return *p
	}
	return alarm.Set{}
}

// SetAuth publishes the applied auth state. Writer: applier.
func (v *View) SetAuth(s *auth.State) { v.auth.Store(s) }

// Auth returns the auth state the applier last applied, auth.Empty()
// before it loaded one; never nil. Listeners check reads and stamp
// proposals with it.
func (v *View) Auth() *auth.State {
	if s := v.auth.Load(); s != nil {
		return s
	}
	return emptyAuth
}

var emptyAuth = auth.Empty()

// CountRestart records a restart of the core. Writer: node.
func (v *View) CountRestart() uint64 { return v.restarts.Add(1) }

// Restarts reports how often the core restarted.
func (v *View) Restarts() uint64 { return v.restarts.Load() }

// IsVoter reports whether member id is a voting member.
func (v *View) IsVoter(id uint64) bool {
	for _, m := range v.Members() {
		if m.ID == id {
			return !m.IsLearner
		}
	}
	return false
}

// BestTransferee returns the voting member (not this one, and one that
// answers: handing over to a member that is down only delays the stop)
// whose log is furthest along, by the leader's progress. A leader that has
// not published its progress yet (elected less than a tick ago) picks the
// voter connected longest, as etcd's longestConnected does, rather than
// stopping without a hand-over. 0 when there is none.
func (v *View) BestTransferee() uint64 {
	var best, bestMatch, longest uint64
	var since time.Time
	for _, m := range v.Members() {
		if m.ID == v.MemberID || m.IsLearner {
			continue
		}
		t := v.PeerActiveSince(m.ID)
		if t.IsZero() {
			continue
		}
		if match, _, ok := v.Progress(m.ID); ok && (best == 0 || match > bestMatch) {
			best, bestMatch = m.ID, match
		}
		if longest == 0 || t.Before(since) {
			longest, since = m.ID, t
		}
	}
	if best != 0 {
		return best
	}
	return longest
}
