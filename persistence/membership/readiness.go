package membership

import "time"

// HealthInterval is how long a peer must have been connected to count as
// active for a reconfiguration (etcd's HealthInterval).
const HealthInterval = 5 * time.Second

// LearnerReadyPercent is how far a learner's log must have caught up with
// the leader's for a promotion: its match index at least this fraction of
// the leader's (etcd's readyPercent).
const LearnerReadyPercent = 0.9

// Health is what the caller knows about its peers for the
// --strict-reconfig-check checks.
type Health struct {
	// Self is this member's id; it always counts as connected.
	Self uint64
	// Now is the current time.
	Now time.Time
	// ActiveSince returns since when the peer transport to id has been
	// connected, the zero time if it is not.
	ActiveSince func(id uint64) time.Time
}

// connected reports whether id counts as connected for HealthInterval.
func (h Health) connected(id uint64) bool {
	if id == h.Self {
		return true
	}
	t := h.ActiveSince(id)
	return !t.IsZero() && t.Before(h.Now.Add(-HealthInterval))
}

func (h Health) numConnected(ms []Member) int {
	n := 0
	for i := range ms {
		if h.connected(ms[i].ID) {
			n++
		}
	}
	return n
}

// CheckAdd runs etcd's checks before proposing to add m: a voting member
// needs enough started voting members for a quorum of the grown cluster
// (ErrNotEnoughStarted; a one-member cluster may always add one), and any
// member needs this member connected to every voting member for
// HealthInterval (ErrUnhealthy).
func (c *Cluster) CheckAdd(m Member, h Health) error {
	voting := c.VotingMembers()
	if !m.IsLearner {
		members, started := 1+len(voting), countStarted(voting)
		if !(started == 1 && members == 2) && started < members/2+1 {
			return ErrNotEnoughStarted
		}
	}
	if h.numConnected(voting) != len(voting) {
		return ErrUnhealthy
	}
	return nil
}

// CheckRemove runs etcd's checks before proposing to remove id: nothing
// for a learner; for a voting member, enough started voting members must
// remain for their quorum (ErrNotEnoughStarted); a peer that is not
// connected can go; else the connected voting members less the removed
// one must still be a quorum of the remaining ones (ErrUnhealthy).
func (c *Cluster) CheckRemove(id uint64, h Health) error {
	if m, ok := c.Member(id); ok && m.IsLearner {
		return nil
	}
	voting := c.VotingMembers()
	members, started := 0, 0
	for i := range voting {
		if voting[i].ID == id {
			continue
		}
		members++
		if voting[i].IsStarted() {
			started++
		}
	}
	if started < members/2+1 {
		return ErrNotEnoughStarted
	}
	if id != h.Self && h.ActiveSince(id).IsZero() {
		return nil // a member that is down is not part of the active quorum
	}
	if h.numConnected(voting)-1 < 1+(len(voting)-1)/2 {
		return ErrUnhealthy
	}
	return nil
}

// CheckPromote runs etcd's checks on the leader before proposing to
// promote id. found, match and leaderMatch come from the leader's raft
// progress: if id has progress, its match index must be at least
// LearnerReadyPercent of the leader's own (ErrLearnerNotReady); then the
// started voting members must be a quorum of the grown cluster
// (ErrNotEnoughStarted). Whether id is a learner at all is checked when
// the change applies (ValidateConfChange).
func (c *Cluster) CheckPromote(id uint64, found bool, match, leaderMatch uint64) error {
	if err := CheckLearnerReady(found, match, leaderMatch); err != nil {
		return err
	}
	voting := c.VotingMembers()
	if countStarted(voting) < (1+len(voting))/2+1 {
		return ErrNotEnoughStarted
	}
	return nil
}

func countStarted(ms []Member) int {
	n := 0
	for i := range ms {
		if ms[i].IsStarted() {
			n++
		}
	}
	return n
}

// CheckLearnerReady is the part of CheckPromote etcd runs even without
// --strict-reconfig-check: a learner whose progress raft knows must have
// caught up to LearnerReadyPercent of the leader's match index.
func CheckLearnerReady(found bool, match, leaderMatch uint64) error {
	if found && float64(match) < float64(leaderMatch)*LearnerReadyPercent {
		return ErrLearnerNotReady
	}
	return nil
}
