package raft

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/troupedb/troupe/internal/memberstate"
	"github.com/troupedb/troupe/messages"
)

// errTimeoutLeaderTransfer carries etcd's message for a transfer that did
// not finish in time.
var errTimeoutLeaderTransfer = status.Error(codes.Unavailable, "etcdserver: request timed out, leader transfer took too long")

// TransferLeadership asks the raft actor of st to hand leadership to
// member to and waits until to leads or ctx ends. It is for callers outside
// the actor tree (the Maintenance service, a graceful stop); the raft actor
// itself only starts the transfer. Errors are etcd's.
func TransferLeadership(ctx context.Context, root *actor.RootContext, st *memberstate.State, to uint64) error {
	if st.Leader() != st.MemberID {
		return rpctypes.ErrGRPCNotLeader
	}
	if !isVoter(st, to) {
		return rpctypes.ErrGRPCBadLeaderTransferee
	}
	pid := st.Raft()
	if pid == nil {
		return rpctypes.ErrGRPCStopped
	}
	root.Send(pid, &messages.TransferLeadership{To: to})
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for st.Leader() != to {
		select {
		case <-ctx.Done():
			return errTimeoutLeaderTransfer
		case <-t.C:
		}
	}
	return nil
}

func isVoter(st *memberstate.State, id uint64) bool {
	for _, m := range st.Members() {
		if m.ID == id {
			return !m.IsLearner
		}
	}
	return false
}

// BestTransferee returns the voting member (not this one) whose log is
// furthest along, by the leader's progress, or 0 when there is none.
func BestTransferee(st *memberstate.State) uint64 {
	var best, bestMatch uint64
	for _, m := range st.Members() {
		if m.ID == st.MemberID || m.IsLearner {
			continue
		}
		if match, _, ok := st.Progress(m.ID); ok && (best == 0 || match > bestMatch) {
			best, bestMatch = m.ID, match
		}
	}
	return best
}
