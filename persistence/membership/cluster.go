package membership

import (
	"cmp"
	"fmt"
	"slices"
	"sync"

	"go.etcd.io/raft/v3/raftpb"
)

// MaxLearners is how many learners a cluster may have at once by default
// (etcd's --max-learners).
const MaxLearners = 1

// Change is what applying a conf change did, for the backend to record in
// the same transaction as the entry's index: members to store (whole
// records) and ids removed.
type Change struct {
	Put     []Member
	Removed []uint64
}

// Cluster is the member list and the removed ids. Readers (any goroutine)
// get copies; one writer (the applier) changes it with the conf changes
// raft committed, in log order.
type Cluster struct {
	mu      sync.RWMutex
	members map[uint64]*Member
	removed map[uint64]bool
	// maxLearners is etcd's --max-learners; 0 means MaxLearners.
	maxLearners int
}

// SetMaxLearners sets how many learners a conf change may leave in the
// cluster (etcd's --max-learners, checked by each member as the change
// applies); n <= 0 means MaxLearners.
func (c *Cluster) SetMaxLearners(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.maxLearners = n
}

// NewCluster returns a view holding members and the removed ids, as
// loaded from the backend or made from --initial-cluster.
func NewCluster(members []Member, removed []uint64) *Cluster {
	c := &Cluster{members: make(map[uint64]*Member, len(members)), removed: make(map[uint64]bool, len(removed))}
	for _, m := range members {
		m := m.Clone()
		c.members[m.ID] = &m
	}
	for _, id := range removed {
		c.removed[id] = true
	}
	return c
}

// Members returns copies of the members, sorted by id (etcd's order).
func (c *Cluster) Members() []Member {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.sortedLocked(false)
}

// VotingMembers returns copies of the members that are not learners,
// sorted by id.
func (c *Cluster) VotingMembers() []Member {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.sortedLocked(true)
}

func (c *Cluster) sortedLocked(votingOnly bool) []Member {
	ms := make([]Member, 0, len(c.members))
	for _, m := range c.members {
		if !votingOnly || !m.IsLearner {
			ms = append(ms, m.Clone())
		}
	}
	slices.SortFunc(ms, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	return ms
}

// Member returns a copy of member id, false if there is none.
func (c *Cluster) Member(id uint64) (Member, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	m, ok := c.members[id]
	if !ok {
		return Member{}, false
	}
	return m.Clone(), true
}

// Removed reports whether id was removed from the cluster (it cannot be
// reused).
func (c *Cluster) Removed(id uint64) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.removed[id]
}

// RemovedIDs returns the removed ids, sorted.
func (c *Cluster) RemovedIDs() []uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ids := make([]uint64, 0, len(c.removed))
	for id := range c.removed {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// ValidateConfChange checks a committed conf change against the view as
// etcd's ValidateConfigurationChange does, in its order: a removed id
// (ErrIDRemoved); for an add, an existing id (ErrIDExists), a peer URL
// another member has (ErrPeerURLExists), a learner past MaxLearners
// (ErrTooManyLearners); for a promote, an unknown id (ErrIDNotFound) or a
// voting member (ErrMemberNotLearner); for a remove, an unknown id; for an
// update, an unknown id or a peer URL another member has. A change that
// fails is applied to raft with node id 0 (no change), as etcd does, and
// its error goes to the proposer.
func (c *Cluster) ValidateConfChange(cc *raftpb.ConfChange) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	id := cc.GetNodeId()
	if c.removed[id] {
		return ErrIDRemoved
	}
	switch cc.GetType() {
	case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
		ctx, err := ParseContext(cc)
		if err != nil {
			return err
		}
		if ctx.IsPromote {
			m := c.members[id]
			if m == nil {
				return ErrIDNotFound
			}
			if !m.IsLearner {
				return ErrMemberNotLearner
			}
			return nil
		}
		if c.members[id] != nil {
			return ErrIDExists
		}
		if c.peerURLTakenLocked(ctx.PeerURLs, 0) {
			return ErrPeerURLExists
		}
		if ctx.IsLearner && c.learnersLocked()+1 > c.maxLearnersLocked() {
			return ErrTooManyLearners
		}
	case raftpb.ConfChangeRemoveNode:
		if c.members[id] == nil {
			return ErrIDNotFound
		}
	case raftpb.ConfChangeUpdateNode:
		if c.members[id] == nil {
			return ErrIDNotFound
		}
		ctx, err := ParseContext(cc)
		if err != nil {
			return err
		}
		if c.peerURLTakenLocked(ctx.PeerURLs, id) {
			return ErrPeerURLExists
		}
	default:
		return fmt.Errorf("%w: conf change type %s", ErrBadContext, cc.GetType())
	}
	return nil
}

// peerURLTakenLocked reports whether a member other than except has one
// of urls.
func (c *Cluster) peerURLTakenLocked(urls []string, except uint64) bool {
	for _, m := range c.members {
		if m.ID == except {
			continue
		}
		for _, u := range m.PeerURLs {
			if slices.Contains(urls, u) {
				return true
			}
		}
	}
	return false
}

func (c *Cluster) maxLearnersLocked() int {
	if c.maxLearners <= 0 {
		return MaxLearners
	}
	return c.maxLearners
}

func (c *Cluster) learnersLocked() int {
	n := 0
	for _, m := range c.members {
		if m.IsLearner {
			n++
		}
	}
	return n
}

// ApplyConfChange validates a committed conf change (ValidateConfChange)
// and, if valid, applies it to the view and returns what to store. Writer
// only.
func (c *Cluster) ApplyConfChange(cc *raftpb.ConfChange) (Change, error) {
	if err := c.ValidateConfChange(cc); err != nil {
		return Change{}, err
	}
	id := cc.GetNodeId()
	switch cc.GetType() {
	case raftpb.ConfChangeRemoveNode:
		c.Remove(id)
		return Change{Removed: []uint64{id}}, nil
	case raftpb.ConfChangeUpdateNode:
		ctx, _ := ParseContext(cc) // validated
		m, _ := c.Update(id, ctx.PeerURLs)
		return Change{Put: []Member{m}}, nil
	}
	ctx, _ := ParseContext(cc) // an add or a promote, validated
	if ctx.IsPromote {
		m, _ := c.Promote(id)
		return Change{Put: []Member{m}}, nil
	}
	m := Member{ID: id, PeerURLs: ctx.PeerURLs, IsLearner: ctx.IsLearner, Name: ctx.Name, ClientURLs: ctx.ClientURLs}
	c.Add(m)
	return Change{Put: []Member{m.Clone()}}, nil
}

// Add adds m (replacing a member with its id). Writer only.
func (c *Cluster) Add(m Member) {
	m = m.Clone()
	c.mu.Lock()
	c.members[m.ID] = &m
	c.mu.Unlock()
}

// Remove removes member id and records the id as removed. Writer only.
func (c *Cluster) Remove(id uint64) {
	c.mu.Lock()
	delete(c.members, id)
	c.removed[id] = true
	c.mu.Unlock()
}

// Update sets member id's peer URLs and returns the member, false if there
// is none. The learner flag and the published attributes stay (etcd 3.4
// clears the learner flag of an updated learner while raft still treats it
// as one; troupe keeps the two consistent).
func (c *Cluster) Update(id uint64, peerURLs []string) (Member, bool) {
	return c.change(id, func(m *Member) { m.PeerURLs = slices.Clone(peerURLs) })
}

// Promote makes learner id a voting member and returns it, false if there
// is no member id. Writer only.
func (c *Cluster) Promote(id uint64) (Member, bool) {
	return c.change(id, func(m *Member) { m.IsLearner = false })
}

// SetAttributes records what member id published when it started (its
// name and client URLs) and returns the member, false if there is none (a
// removed member's late publish is ignored, as etcd does). Writer only.
func (c *Cluster) SetAttributes(id uint64, name string, clientURLs []string) (Member, bool) {
	return c.change(id, func(m *Member) { m.Name, m.ClientURLs = name, slices.Clone(clientURLs) })
}

func (c *Cluster) change(id uint64, f func(*Member)) (Member, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.members[id]
	if !ok {
		return Member{}, false
	}
	f(m)
	return m.Clone(), true
}
