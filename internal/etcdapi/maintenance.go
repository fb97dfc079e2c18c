package etcdapi

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// ServerVersion is the etcd version troupe answers as: clients (Kubernetes
// among them) check it, and troupe speaks etcd 3.4's API.
const ServerVersion = "3.4.23"

// Maintenance serves etcd 3.4's Maintenance service: Status, Alarm
// (alarm.go), Hash and Defragment (defrag.go), HashKV, Snapshot and
// MoveLeader. What etcd 3.4 does not have answers Unimplemented.
type Maintenance struct {
	pb.UnimplementedMaintenanceServer
	KV *KV // proposes and reads through raft
}

// Status reports this member's view, with etcd 3.4's fields; errors says
// "etcdserver: no leader" without a leader and lists the active alarms,
// as etcd 3.4's.
func (m *Maintenance) Status(ctx context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	rc := m.KV.cfg.Raft
	st := rc.View()
	resp := &pb.StatusResponse{
		Header:           newHeader(st, 0),
		Version:          ServerVersion,
		Leader:           st.Leader(),
		RaftIndex:        st.RaftIndex(),
		RaftTerm:         st.Term(),
		RaftAppliedIndex: rc.AppliedIndex(),
		IsLearner:        st.IsLearner(),
	}
	if store := rc.Store(); store != nil {
		resp.DbSize, resp.DbSizeInUse = store.DBSize()
		resp.Header.Revision = store.Rev()
	} else {
		resp.Errors = append(resp.Errors, "core is restarting")
	}
	if resp.Leader == 0 {
		resp.Errors = append(resp.Errors, rpctypes.ErrNoLeader.Error())
	}
	resp.Errors = append(resp.Errors, alarmErrors(st.Alarms())...)
	return resp, nil
}
