package applier

import (
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/alarm"
)

// The quota at apply time, etcd's quotaApplierV3: a write whose cost would
// take this member's backend past QuotaBytes still applies (every member
// applies the same entries), but its caller gets ErrGRPCNoSpace and the
// member proposes its NOSPACE alarm. The listeners refuse such writes
// before they reach raft; this catches what passed them: writes admitted
// together by a size read a moment ago, or through a member whose backend
// is smaller than this one's.

// dbSizeMaxAge bounds how stale the size the check uses may be: reading
// it opens a bbolt transaction, too dear for every entry.
const dbSizeMaxAge = 10 * time.Millisecond

// quotaState is the applier's view of its backend size.
type quotaState struct {
	root   *actor.RootContext
	size   int64
	sizeAt time.Time
	// raised is set once this incarnation proposed the NOSPACE alarm, so
	// a batch past the quota proposes it once.
	raised bool
}

// applyQuota applies req as applyRequest does and, when it passed the
// quota, answers alarm.ErrNoSpace and raises the alarm.
// now is the entry's apply start: one clock read less per entry.
func (a *applier) applyQuota(idx uint64, req *pb.InternalRaftRequest, now time.Time) (any, error) {
	over := a.overQuota(req, now)
	resp, err := a.applyRequest(idx, req)
	if err != nil || !over {
		return resp, err
	}
	a.raiseNoSpace()
	return resp, alarm.ErrNoSpace
}

func (a *applier) overQuota(req *pb.InternalRaftRequest, now time.Time) bool {
	if a.cfg.QuotaBytes <= 0 {
		return false
	}
	cost := alarm.Cost(req)
	if cost == 0 {
		return false
	}
	if now.Sub(a.quota.sizeAt) > dbSizeMaxAge {
		a.quota.size, _ = a.cfg.Store.DBSize()
		a.quota.sizeAt = now
	}
	return a.quota.size+int64(cost) >= a.cfg.QuotaBytes
}

// raiseNoSpace proposes this member's NOSPACE alarm unless it is active or
// already proposed; nobody waits for it (etcd's applier does not either).
func (a *applier) raiseNoSpace() {
	c := a.cfg.Client
	self := c.View().MemberID
	for _, al := range a.alarms.Get(pb.AlarmType_NOSPACE) {
		if al.MemberID == self {
			return
		}
	}
	core := c.Core()
	if a.quota.raised || core == nil || a.quota.root == nil {
		return
	}
	id := c.NextID()
	data, err := proto.Marshal(&pb.InternalRaftRequest{
		Header: &pb.RequestHeader{ID: id},
		Alarm:  &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: self, Alarm: pb.AlarmType_NOSPACE},
	})
	if err != nil {
		panic(fmt.Sprintf("applier: marshal alarm request: %v", err))
	}
	a.quota.raised = true
	a.log.Warn("applying raft message exceeded backend quota; raising the NOSPACE alarm", "quota-bytes", a.cfg.QuotaBytes, "db-size", a.quota.size)
	a.quota.root.Send(core.Raft, &messages.Propose{ID: id, Data: data})
}
