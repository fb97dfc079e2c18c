package applier

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/actors/internal/actortest"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/alarm"
	"github.com/troupedb/troupe/persistence/auth"
	"github.com/troupedb/troupe/persistence/membership"
	"github.com/troupedb/troupe/persistence/mvcc"
)

func confChangeEntry(t *testing.T, index uint64, cc *raftpb.ConfChange) *raftpb.Entry {
	t.Helper()
	data, err := proto.Marshal(cc)
	if err != nil {
		t.Fatal(err)
	}
	return &raftpb.Entry{Index: new(index), Term: new(uint64(1)), Type: raftpb.EntryConfChange.Enum(), Data: data}
}

func memberIDs(ms []membership.Member) []uint64 {
	var ids []uint64
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	return ids
}

// TestConfChangeTellsTheParent: an applied membership change reaches the
// backend, its waiter, raft (in Applied) and the parent (MembersChanged);
// one the membership refuses fails its waiter, reaches raft as a change of
// node 0, and tells the parent nothing.
func TestConfChangeTellsTheParent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := openStore(t)
		sys := newSystem(t)
		client := newClient(sys, 1)
		self := membership.Member{ID: 1, Name: "m", PeerURLs: []string{"http://m1"}}
		f := start(t, sys, Config{Store: store, Client: client, Cluster: membership.NewCluster([]membership.Member{self}, nil)})

		add := membership.AddChange(membership.Member{ID: 2, PeerURLs: []string{"http://m2"}})
		add.Id = proto.Uint64(21)
		w := client.Waits().ConfChanges.Register(21)
		applied := f.apply(confChangeEntry(t, 1, add))
		if len(applied.ConfChanges) != 1 || applied.ConfChanges[0].GetNodeId() != 2 {
			t.Fatalf("Applied carries %v, want the change of node 2", applied.ConfChanges)
		}
		if res := <-w; res.Err != nil || !slices.Equal(memberIDs(res.Members), []uint64{1, 2}) {
			t.Fatalf("waiter got %+v, want members 1 and 2", res)
		}
		mc := actortest.Next[*messages.MembersChanged](t, f.core, wait)
		if !slices.Equal(memberIDs(mc.Members), []uint64{1, 2}) {
			t.Fatalf("MembersChanged %v, want members 1 and 2", mc.Members)
		}
		// The backend records the change (member 1 came from the
		// Config's cluster, not from this backend).
		if ms, _, err := store.LoadMembers(); err != nil || !slices.Equal(memberIDs(ms), []uint64{2}) {
			t.Fatalf("backend members %v %v, want the added member 2", ms, err)
		}

		// The same member again: refused.
		again := membership.AddChange(membership.Member{ID: 2, PeerURLs: []string{"http://m2"}})
		again.Id = proto.Uint64(22)
		w = client.Waits().ConfChanges.Register(22)
		applied = f.apply(confChangeEntry(t, 2, again))
		if len(applied.ConfChanges) != 1 || applied.ConfChanges[0].GetNodeId() != 0 {
			t.Fatalf("Applied carries %v for a refused change, want node 0", applied.ConfChanges)
		}
		if res := <-w; res.Err == nil {
			t.Fatalf("refused change answered %+v, want an error", res)
		}
		synctest.Wait()
		for len(f.core.C) > 0 {
			if m := <-f.core.C; m != nil {
				t.Fatalf("the parent got %T after a refused change", m)
			}
		}
		if store.ConsistentIndex() != 2 {
			t.Fatalf("consistent index %d after a refused change, want 2", store.ConsistentIndex())
		}
	})
}

// snapshotStore makes the database a leader's snapshot at index 10 would
// bring: user "u", key "s", members 1 and 2, and member 2's NOSPACE alarm.
func snapshotStore(t *testing.T) *mvcc.Store {
	t.Helper()
	st := openStore(t)
	_, _, ops, err := auth.Empty().Apply(&pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "u", Options: &authpb.UserAddOptions{NoPassword: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.ApplyAuth(7, ops); err != nil {
		t.Fatal(err)
	}
	ms := []membership.Member{{ID: 1, PeerURLs: []string{"http://m1"}}, {ID: 2, PeerURLs: []string{"http://m2"}}}
	if err := st.ApplyMembers(8, ms, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.ApplyAlarm(9, alarm.Key(alarm.Alarm{MemberID: 2, Type: pb.AlarmType_NOSPACE}), true); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(10, &pb.PutRequest{Key: []byte("s"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	return st
}

func snapshotMsg(index uint64) *raftpb.Message {
	return &raftpb.Message{Type: raftpb.MsgStorageAppend.Enum(), Snapshot: &raftpb.Snapshot{
		Data: []byte("x"),
		Metadata: &raftpb.SnapshotMetadata{Index: new(index), Term: new(uint64(2)),
			ConfState: &raftpb.ConfState{Voters: []uint64{1, 2}}},
	}}
}

// TestInstallSnapshotAsksTheParent: for a snapshot from the leader the
// applier asks its parent (the core) for the new backend, and answers raft
// only once it has it; it takes the new backend's membership, alarms, auth
// state and applied index, and applies the next entries to it.
func TestInstallSnapshotAsksTheParent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		old := openStore(t)
		sys := newSystem(t)
		client := newClient(sys, 1)
		self := membership.Member{ID: 1, PeerURLs: []string{"http://m1"}}
		f := start(t, sys, Config{Store: old, Client: client, Cluster: membership.NewCluster([]membership.Member{self}, nil)})
		st := snapshotStore(t)
		f.core.Reply = func(msg any) any {
			if _, ok := msg.(*messages.InstallBackend); !ok {
				return nil
			}
			ms, removed, err := st.LoadMembers()
			if err != nil {
				t.Error(err)
			}
			return &messages.BackendInstalled{Store: st, Cluster: membership.NewCluster(ms, removed)}
		}
		msg := snapshotMsg(10)
		f.sys.Root.Send(f.raftPID, &messages.InstallSnapshot{Msg: msg})
		if got := actortest.Next[*messages.SnapshotInstalled](t, f.raft, wait); got.Msg != msg {
			t.Fatal("SnapshotInstalled answers another message")
		}
		if ib := actortest.Next[*messages.InstallBackend](t, f.core, wait); ib.Index != 10 {
			t.Fatalf("InstallBackend for index %d, want 10", ib.Index)
		}
		if mc := actortest.Next[*messages.MembersChanged](t, f.core, wait); !slices.Equal(memberIDs(mc.Members), []uint64{1, 2}) {
			t.Fatalf("MembersChanged %v, want the snapshot's members 1 and 2", mc.Members)
		}
		if client.AppliedIndex() != 10 || !client.View().Alarms().Has(pb.AlarmType_NOSPACE) {
			t.Fatalf("after the install: applied index %d, alarms %v", client.AppliedIndex(), client.View().Alarms().Members())
		}
		if _, ok := client.View().Auth().User("u"); !ok || client.View().Auth().Revision() != 2 {
			t.Fatalf("after the install: auth revision %d, user u missing", client.View().Auth().Revision())
		}
		// The next entry goes to the new backend (member 2's NOSPACE alarm
		// refuses puts on every member, so a delete).
		res := f.applyAll(entry(t, 11, 31, &pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("s")}}))
		if res[0].Err != nil || st.ConsistentIndex() != 11 || old.ConsistentIndex() != 0 {
			t.Fatalf("entry 11: %+v; new backend at %d, old at %d", res[0], st.ConsistentIndex(), old.ConsistentIndex())
		}
	})
}

// TestInstallSnapshotFailureFailsTheApplier: when the core cannot install
// the database the applier fails (its supervisor restarts the core, which
// finishes the install from disk) and raft hears nothing.
func TestInstallSnapshotFailureFailsTheApplier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem(t)
		f := start(t, sys, Config{Store: openStore(t), Client: newClient(sys, 1)})
		f.core.Reply = func(msg any) any {
			if _, ok := msg.(*messages.InstallBackend); ok {
				return &messages.BackendInstalled{Err: fmt.Errorf("no database for index 10")}
			}
			return nil
		}
		f.sys.Root.Send(f.raftPID, &messages.InstallSnapshot{Msg: snapshotMsg(10)})
		fail := actortest.Next[actortest.Failure](t, f.core, wait)
		if !fail.Who.Equal(f.pid) || !strings.Contains(fmt.Sprint(fail.Reason), "install snapshot 10: no database for index 10") {
			t.Fatalf("failure %v of %v", fail.Reason, fail.Who)
		}
		synctest.Wait()
		if len(f.raft.C) != 0 {
			t.Fatalf("raft got %T from a failed install", <-f.raft.C)
		}
	})
}

// TestReplayedConfChangesOfARemovedMember: replaying (entries the backend
// holds) the bootstrap add of a member removed since hands raft the add,
// not a change of node 0: raft replays from an empty configuration, and a
// first change of node 0 would leave it without a voter.
func TestReplayedConfChangesOfARemovedMember(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := openStore(t)
		self := membership.Member{ID: 1, PeerURLs: []string{"http://m1"}}
		if err := store.ApplyMembers(3, []membership.Member{self}, []uint64{2}); err != nil {
			t.Fatal(err)
		}
		sys := newSystem(t)
		f := start(t, sys, Config{Store: store, Client: newClient(sys, 1), Cluster: membership.NewCluster([]membership.Member{self}, []uint64{2})})
		applied := f.apply(
			confChangeEntry(t, 1, membership.AddChange(membership.Member{ID: 2, PeerURLs: []string{"http://m2"}})),
			confChangeEntry(t, 2, membership.AddChange(self)),
			confChangeEntry(t, 3, membership.RemoveChange(2)),
		)
		var got []string
		for _, cc := range applied.ConfChanges {
			got = append(got, fmt.Sprintf("%s %d", cc.GetType(), cc.GetNodeId()))
		}
		want := []string{"ConfChangeAddNode 2", "ConfChangeAddNode 1", "ConfChangeRemoveNode 2"}
		if !slices.Equal(got, want) {
			t.Fatalf("raft gets %v, want %v", got, want)
		}
	})
}
