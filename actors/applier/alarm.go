package applier

import (
	"errors"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/troupedb/troupe/persistence/alarm"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// Alarms, as etcd's applier keeps them: the applier holds the applied set,
// refuses what an active alarm caps (alarm.Check, at apply time on every
// member, so all members refuse the same entries), records changes in the
// backend's "alarm" bucket in the entry's batch (a replayed entry is
// skipped with the rest of it), and publishes the set to the member state
// for the listeners. A restart, or a snapshot from the leader, loads the
// set from the backend again.

// loadAlarms reads the alarms of the current backend and publishes them.
func (a *applier) loadAlarms() {
	keys, err := a.cfg.Store.LoadAlarmKeys()
	if err != nil {
		panic(fmt.Sprintf("applier: load alarms: %v", err))
	}
	as := make([]alarm.Alarm, 0, len(keys))
	for _, k := range keys {
		al, err := alarm.ParseKey(k)
		if err != nil {
			panic(fmt.Sprintf("applier: %s: %v", a.cfg.Store.Path(), err))
		}
		as = append(as, al)
	}
	a.alarms = alarm.NewSet(as)
	a.cfg.Client.View().SetAlarms(a.alarms)
	if a.alarms.Len() > 0 {
		a.log.Warn("alarms active", "alarms", fmt.Sprint(a.alarms.Get(pb.AlarmType_NONE)))
	}
}

// checkAlarms refuses req at index while an alarm caps it; the entry is
// still applied (the index moves).
func (a *applier) checkAlarms(idx uint64, req *pb.InternalRaftRequest) error {
	err := alarm.Check(a.alarms, req)
	if err != nil {
		a.cfg.Store.SetConsistentIndex(idx)
	}
	return err
}

// applyAlarm applies an AlarmRequest (etcd's applierV3backend.Alarm).
func (a *applier) applyAlarm(idx uint64, req *pb.AlarmRequest) (any, error) {
	res := alarm.Apply(a.alarms, req)
	var key []byte
	switch {
	case res.Activated != nil:
		key = alarm.Key(*res.Activated)
		a.log.Warn("alarm raised", "alarm", res.Activated.Type.String(), "alarm-member", fmt.Sprintf("%x", res.Activated.MemberID), "index", idx)
	case res.Deactivated != nil:
		key = alarm.Key(*res.Deactivated)
		a.log.Info("alarm disarmed", "alarm", res.Deactivated.Type.String(), "alarm-member", fmt.Sprintf("%x", res.Deactivated.MemberID), "index", idx)
	}
	if err := a.cfg.Store.ApplyAlarm(idx, key, res.Activated != nil); err != nil && !errors.Is(err, mvcc.ErrAlreadyApplied) {
		panic(fmt.Sprintf("applier: store alarm %d: %v", idx, err))
	}
	if res.Changed {
		a.alarms = res.Set
		a.cfg.Client.View().SetAlarms(a.alarms)
		// The alarm the quota check proposed is in (or was disarmed): a
		// later excess may propose again.
		a.quota.raised = false
	}
	return res.Resp, nil
}
