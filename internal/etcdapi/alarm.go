package etcdapi

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/troupedb/troupe/persistence/alarm"
)

// Alarm lists, raises or disarms alarms through raft, as etcd's
// Maintenance.Alarm: every member applies the change. The answer has this
// member's header at its current revision, as etcd 3.6's (3.4's had
// none). Disarming "all" (member 0, type NONE) is done by clients
// (clientv3 lists the alarms and disarms each).
func (m *Maintenance) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	resp, err := proposeAs[*pb.AlarmResponse](ctx, m.KV, &pb.InternalRaftRequest{Alarm: r})
	if err != nil {
		return nil, err
	}
	if resp.Header == nil {
		resp.Header = &pb.ResponseHeader{}
	}
	m.KV.fill(resp.Header)
	if store := m.KV.cfg.Raft.Store(); store != nil && resp.Header.Revision == 0 {
		resp.Header.Revision = store.Rev()
	}
	return resp, nil
}

// raiseNoSpace proposes this member's NOSPACE alarm, as etcd's quota
// check does when a write would pass the quota, and waits for it to apply
// (bounded by ctx and the request timeout). Once it is active nothing is
// proposed again: the alarm is already everyone's.
func (s *KV) raiseNoSpace(ctx context.Context) {
	st := s.cfg.Raft.View()
	for _, a := range st.Alarms().Get(pb.AlarmType_NOSPACE) {
		if a.MemberID == st.MemberID {
			return
		}
	}
	_, _ = s.propose(ctx, &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{
		Action: pb.AlarmRequest_ACTIVATE, MemberID: st.MemberID, Alarm: pb.AlarmType_NOSPACE,
	}})
}

// alarmErrors are the Status errors of the active alarms, as etcd 3.4
// prints them ("memberID:<id> alarm:NOSPACE ").
func alarmErrors(set alarm.Set) []string {
	var out []string
	for _, a := range set.Get(pb.AlarmType_NONE) {
		out = append(out, a.String())
	}
	return out
}
