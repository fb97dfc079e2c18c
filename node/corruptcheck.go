package node

import (
	"context"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/troupedb/troupe/actors/corruptcheck"
	"github.com/troupedb/troupe/actors/peers"
	"github.com/troupedb/troupe/internal/metrics"
	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/messages"
)

// startCorruptCheck spawns the corruption checker when a check is on and
// asks for the initial check of a member that has data (etcd checks only
// a member whose WAL existed: a new one has nothing to compare). It
// reports whether the listeners must wait for CheckInitialHashResult.
func (s *supervisor) startCorruptCheck(ctx actor.Context) (wait bool, err error) {
	initial := s.cfg.InitialCorruptCheck && s.initialized
	var compactHash time.Duration
	if s.cfg.CompactHashCheck {
		compactHash = s.cfg.CompactHashCheckTime
	}
	if s.checker == nil && (initial || s.cfg.CorruptCheckTime > 0 || compactHash > 0) {
		pid, err := ctx.SpawnNamed(corruptcheck.Props(corruptcheck.Config{
			Self: s.view.MemberID, Interval: s.cfg.CorruptCheckTime, CompactHashInterval: compactHash,
			Member: checkMember{raft: s.raft, system: ctx.ActorSystem(), timeout: s.cfg.requestTimeout()},
			Logger: s.cfg.Logger,
		}).Configure(metrics.Mailbox("corruptcheck")), "corruptcheck")
		if err != nil {
			return false, fmt.Errorf("spawn corruption checker: %w", err)
		}
		s.checker = pid
	}
	if !initial {
		return false, nil
	}
	ctx.Request(s.checker, &messages.CheckInitialHash{})
	return true, nil
}

// handleInitialHashChecked serves clients once the initial check passed,
// and stops the member (Start returns the error, the process exits
// non-zero) when it found another member with different data, as etcd
// does; the other members keep serving and no alarm is raised.
func (s *supervisor) handleInitialHashChecked(ctx actor.Context, msg *messages.CheckInitialHashResult) {
	if msg.Err != nil {
		s.log.Error("checkInitialHashKV failed", "err", msg.Err)
		s.fail(msg.Err)
		for _, c := range ctx.Children() {
			ctx.Stop(c)
		}
		return
	}
	s.spawnListeners(ctx)
}

// checkMember is the member as the corruption checker sees it
// (corruptcheck.Member): its backend and raft through the raft client,
// the other members over the peer remote.
type checkMember struct {
	raft    *raftclient.Client
	system  *actor.ActorSystem
	timeout time.Duration
}

func (m checkMember) HashKV(rev int64) (uint32, int64, int64, error) {
	store := m.raft.Store()
	if store == nil {
		return 0, 0, 0, errBackendRestarting
	}
	return store.HashKV(rev)
}

func (m checkMember) PeerHashes(ctx context.Context, rev int64) []peers.PeerHash {
	v := m.raft.View()
	return peers.FetchHashKVs(ctx, m.system, nil, v.ClusterID, v.MemberID, v.PeerURLs(), rev, m.timeout)
}

func (m checkMember) IsLeader() bool { return m.raft.View().IsLeader() }

func (m checkMember) LinearizableRead(ctx context.Context) error { return m.raft.LinearizableRead(ctx) }

func (m checkMember) RaiseCorrupt(ctx context.Context, id uint64) error {
	_, err := raftclient.ProposeAs[*pb.AlarmResponse](ctx, m.raft, &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{
		Action: pb.AlarmRequest_ACTIVATE, MemberID: id, Alarm: pb.AlarmType_CORRUPT,
	}})
	return err
}

func (m checkMember) Timeout() time.Duration { return m.timeout }

func (m checkMember) CompactHashes() []corruptcheck.Hash {
	store := m.raft.Store()
	if store == nil {
		return nil
	}
	var out []corruptcheck.Hash
	for _, h := range store.CompactHashes() {
		out = append(out, corruptcheck.Hash{Hash: h.Hash, Revision: h.Revision, CompactRevision: h.CompactRevision})
	}
	return out
}
