package etcdapi

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/troupedb/troupe/internal/etcdversion"
)

// defaultQuotaBytes is the quota etcd reports in Status.DbSizeQuota when
// none is configured (--quota-backend-bytes=0).
const defaultQuotaBytes = 2 << 30

// Maintenance serves etcd's Maintenance service: Status, Alarm (alarm.go),
// Hash and Defragment (defrag.go), HashKV, Snapshot and MoveLeader.
// Downgrade answers Unimplemented: troupe has no older version to go to.
type Maintenance struct {
	pb.UnimplementedMaintenanceServer
	KV *KV // proposes and reads through raft
}

// admin lets only root-role users through, as etcd's
// authMaintenanceServer does for every call but Alarm (which the
// applier decides on).
func (m *Maintenance) admin(ctx context.Context) error { return m.KV.cfg.Auth.admin(ctx) }

// Downgrade is admin-only, as etcd's; past that check it answers
// Unimplemented.
func (m *Maintenance) Downgrade(ctx context.Context, r *pb.DowngradeRequest) (*pb.DowngradeResponse, error) {
	if err := m.admin(ctx); err != nil {
		return nil, err
	}
	return m.UnimplementedMaintenanceServer.Downgrade(ctx, r)
}

// Status reports this member's view, with etcd 3.6's fields (the quota in
// effect, negative when disabled, the storage version, no downgrade in
// progress); errors says "etcdserver: no leader" without a leader and
// lists the active alarms, as etcd's.
func (m *Maintenance) Status(ctx context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	if err := m.admin(ctx); err != nil {
		return nil, err
	}
	rc := m.KV.cfg.Raft
	st := rc.View()
	resp := &pb.StatusResponse{
		Header:           newHeader(st, 0),
		Version:          etcdversion.Server,
		Leader:           st.Leader(),
		RaftIndex:        st.RaftIndex(),
		RaftTerm:         st.Term(),
		RaftAppliedIndex: rc.AppliedIndex(),
		IsLearner:        st.IsLearner(),
		DbSizeQuota:      m.KV.cfg.QuotaBytes,
		StorageVersion:   etcdversion.Storage,
		DowngradeInfo:    &pb.DowngradeInfo{},
	}
	if resp.DbSizeQuota == 0 {
		resp.DbSizeQuota = defaultQuotaBytes
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
