package lessor

import (
	"cmp"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// handleLeaderChanged promotes or demotes. A new term with this member
// still leading promotes again: another leader may have renewed leases
// in between.
func (l *lessor) handleLeaderChanged(leader, term uint64) {
	switch {
	case leader == l.cfg.Client.View().MemberID && (!l.leading || term != l.term):
		l.promote(term)
	case leader != l.cfg.Client.View().MemberID:
		if l.leading {
			l.log.Info("lessor demoted", "leader", leader, "term", term)
		}
		l.leading, l.promotePending, l.leases = false, false, map[int64]*leaseState{}
	}
}

// promote gives every lease its expiry from its record (see the package
// doc). Without a backend (core starting) the next check promotes.
func (l *lessor) promote(term uint64) {
	st := l.cfg.Client.Store()
	l.term = term
	if st == nil {
		l.promotePending = true
		return
	}
	now := time.Now()
	l.promotePending = false
	l.leading, l.leases = true, map[int64]*leaseState{}
	for _, rec := range st.Leases() {
		left := rec.TTL
		if rec.RemainingTTL > 0 {
			left = rec.RemainingTTL
		}
		ls := &leaseState{ttl: rec.TTL, expiry: now.Add(time.Duration(left)*time.Second + l.cfg.Extension)}
		ls.checkpointed = rec.RemainingTTL > 0
		l.scheduleCheckpoint(ls, now)
		l.leases[rec.ID] = ls
	}
	l.log.Info("lessor promoted", "term", term, "leases", len(l.leases))
}

// scheduleCheckpoint sets when ls is checkpointed next: once half of what
// it has left passed, at most CheckpointInterval from now.
func (l *lessor) scheduleCheckpoint(ls *leaseState, now time.Time) {
	half := ls.expiry.Sub(now) / 2
	if half < minCheckpointGap {
		ls.checkpointAt = time.Time{}
		return
	}
	ls.checkpointAt = now.Add(min(half, l.cfg.CheckpointInterval))
}

func (l *lessor) handleCheckDue(ctx actor.Context) {
	l.schedule(ctx)
	if l.promotePending {
		l.promote(l.term)
	}
	st := l.cfg.Client.Store()
	if !l.leading || st == nil {
		return
	}
	now := time.Now()
	l.sync(st.Leases(), now)
	l.revokeExpired(ctx, now)
	l.checkpoint(ctx, now)
}

// sync follows the store: leases granted since get now + TTL, revoked
// ones are forgotten.
func (l *lessor) sync(recs []mvcc.Lease, now time.Time) {
	seen := make(map[int64]bool, len(recs))
	for _, rec := range recs {
		seen[rec.ID] = true
		if _, ok := l.leases[rec.ID]; !ok {
			l.add(rec, now)
		}
	}
	for id := range l.leases {
		if !seen[id] {
			delete(l.leases, id)
		}
	}
}

func (l *lessor) add(rec mvcc.Lease, now time.Time) *leaseState {
	ls := &leaseState{ttl: rec.TTL, expiry: now.Add(time.Duration(rec.TTL) * time.Second)}
	ls.checkpointed = rec.RemainingTTL > 0
	l.scheduleCheckpoint(ls, now)
	l.leases[rec.ID] = ls
	return ls
}

// revokeExpired proposes a revoke for each expired lease, at most
// RevokeRate per second, again after RetryInterval if the lease is still
// there.
func (l *lessor) revokeExpired(ctx actor.Context, now time.Time) {
	budget := max(1, int(int64(l.cfg.RevokeRate)*int64(l.cfg.CheckInterval)/int64(time.Second)))
	for id, ls := range l.leases {
		if budget == 0 {
			return
		}
		if now.Before(ls.expiry) || (!ls.revokedAt.IsZero() && now.Sub(ls.revokedAt) < l.cfg.RetryInterval) {
			continue
		}
		ls.revokedAt = now
		budget--
		l.log.Debug("lease expired", "id", id)
		l.propose(ctx, &pb.InternalRaftRequest{Header: asRoot(l.cfg.Client.View().Auth()), LeaseRevoke: &pb.LeaseRevokeRequest{ID: id}})
	}
}

// checkpoint proposes the remaining TTL of every lease whose checkpoint is
// due, in batches, rounded up to the second so that it is never early.
func (l *lessor) checkpoint(ctx actor.Context, now time.Time) {
	var cps []*pb.LeaseCheckpoint
	for id, ls := range l.leases {
		if ls.checkpointAt.IsZero() || now.Before(ls.checkpointAt) || !now.Before(ls.expiry) {
			continue
		}
		left := ls.expiry.Sub(now)
		secs := int64((left + time.Second - 1) / time.Second)
		cps = append(cps, &pb.LeaseCheckpoint{ID: id, Remaining_TTL: secs})
		ls.checkpointed = true
		l.scheduleCheckpoint(ls, now)
		if len(cps) == maxCheckpointsPerProposal {
			l.propose(ctx, &pb.InternalRaftRequest{LeaseCheckpoint: &pb.LeaseCheckpointRequest{Checkpoints: cps}})
			cps = nil
		}
	}
	if len(cps) > 0 {
		l.propose(ctx, &pb.InternalRaftRequest{LeaseCheckpoint: &pb.LeaseCheckpointRequest{Checkpoints: cps}})
	}
}

// lookup returns the leader's state of lease id, adding a lease the store
// gained since the last check; nil when the store has no such lease.
func (l *lessor) lookup(id int64, now time.Time) *leaseState {
	st := l.cfg.Client.Store()
	if st == nil {
		return nil
	}
	rec, _, ok := st.Lease(id, false)
	if !ok {
		delete(l.leases, id)
		return nil
	}
	if ls := l.leases[id]; ls != nil {
		return ls
	}
	return l.add(rec, now)
}

// handleRenew renews a lease for its whole TTL. An expired lease is not
// renewed: its revoke is under way, and etcd answers such a keep-alive
// with TTL 0 once the revoke is done.
func (l *lessor) handleRenew(ctx actor.Context, msg *messages.RenewLease) *messages.RenewLeaseResult {
	if !l.leading {
		return &messages.RenewLeaseResult{Err: rpctypes.ErrGRPCNotLeader}
	}
	now := time.Now()
	ls := l.lookup(msg.ID, now)
	if ls == nil || !now.Before(ls.expiry) {
		return &messages.RenewLeaseResult{}
	}
	ls.expiry = now.Add(time.Duration(ls.ttl) * time.Second)
	l.scheduleCheckpoint(ls, now)
	if ls.checkpointed {
		ls.checkpointed = false
		// the whole TTL counts again, for a later leader too
		l.propose(ctx, &pb.InternalRaftRequest{LeaseCheckpoint: &pb.LeaseCheckpointRequest{
			Checkpoints: []*pb.LeaseCheckpoint{{ID: msg.ID, Remaining_TTL: 0}},
		}})
	}
	return &messages.RenewLeaseResult{TTL: ls.ttl}
}

func (l *lessor) handleGetTTL(msg *messages.GetLeaseTTL) *messages.LeaseTTL {
	if !l.leading {
		return &messages.LeaseTTL{Err: rpctypes.ErrGRPCNotLeader}
	}
	now := time.Now()
	ls := l.lookup(msg.ID, now)
	if ls == nil {
		return &messages.LeaseTTL{}
	}
	return &messages.LeaseTTL{Found: true, Remaining: max(0, ls.expiry.Sub(now)), GrantedTTL: ls.ttl}
}

// handleGetLeases lists the leases soonest expiry first (ties by id).
func (l *lessor) handleGetLeases() *messages.Leases {
	st := l.cfg.Client.Store()
	if !l.leading || st == nil {
		return &messages.Leases{Err: rpctypes.ErrGRPCNotLeader}
	}
	l.sync(st.Leases(), time.Now())
	ids := make([]int64, 0, len(l.leases))
	for id := range l.leases {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b int64) int {
		if c := l.leases[a].expiry.Compare(l.leases[b].expiry); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return &messages.Leases{IDs: ids}
}
