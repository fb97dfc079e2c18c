package membership

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// Ids and records real etcd 3.4.23 chose and stored for a 3-member
// cluster m1..m3 with peer URLs http://127.0.0.1:423{1,2,3}1 and the
// default token (taken from `etcdctl member list` and the "members" bucket
// of `etcdctl snapshot save`).
const (
	idM1 = 0xed8c37d1f56cc743
	idM2 = 0xabde6fb3fb46a68e
	idM3 = 0x52f73e2f401fc407
)

func TestIDsMatchEtcd(t *testing.T) {
	for url, want := range map[string]uint64{"http://127.0.0.1:42311": idM1, "http://127.0.0.1:42321": idM2, "http://127.0.0.1:42331": idM3} {
		if got := NewMemberID([]string{url}, "etcd-cluster", nil); got != want {
			t.Errorf("%s: id %x, etcd chose %x", url, got, want)
		}
	}
	if got := ClusterID([]uint64{idM3, idM1, idM2}); got != 17066543716584903986 {
		t.Errorf("cluster id %d, etcd chose 17066543716584903986", got)
	}
	// MemberAdd: empty token, then the Unix seconds.
	now := time.Unix(1700000000, 0)
	a := NewMemberID([]string{"http://b:1", "http://a:1"}, "", &now)
	if b := NewMemberID([]string{"http://a:1", "http://b:1"}, "1700000000", nil); a != b {
		t.Errorf("time suffix: %x != %x", a, b)
	}
}

func TestMemberJSONMatchesEtcd(t *testing.T) {
	for _, tc := range []struct {
		m    Member
		etcd string
	}{
		{Member{ID: 5613610896995847779, PeerURLs: []string{"http://127.0.0.1:42341"}, IsLearner: true, Name: "m4", ClientURLs: []string{"http://127.0.0.1:42340"}},
			`{"id":5613610896995847779,"peerURLs":["http://127.0.0.1:42341"],"isLearner":true,"name":"m4","clientURLs":["http://127.0.0.1:42340"]}`},
		{Member{ID: idM3, PeerURLs: []string{"http://127.0.0.1:42331"}, Name: "m3", ClientURLs: []string{"http://127.0.0.1:42330"}},
			`{"id":5978315403017831431,"peerURLs":["http://127.0.0.1:42331"],"name":"m3","clientURLs":["http://127.0.0.1:42330"]}`},
		{Member{ID: 2479844164716994618, PeerURLs: []string{"http://127.0.0.1:42396"}},
			`{"id":2479844164716994618,"peerURLs":["http://127.0.0.1:42396"]}`},
	} {
		if got := string(tc.m.Marshal()); got != tc.etcd {
			t.Errorf("troupe %s\netcd   %s", got, tc.etcd)
		}
		back, err := Unmarshal([]byte(tc.etcd))
		if err != nil || !reflect.DeepEqual(back, tc.m) {
			t.Errorf("unmarshal %s: %+v %v", tc.etcd, back, err)
		}
	}
	if string(Key(idM3)) != "52f73e2f401fc407" {
		t.Errorf("key %s", Key(idM3))
	}
	if id, err := ParseKey([]byte("52f73e2f401fc407")); err != nil || id != idM3 {
		t.Errorf("parse key: %x %v", id, err)
	}
}

func TestConfChangeContexts(t *testing.T) {
	var ctx map[string]any
	if err := json.Unmarshal(PromoteChange(7).Context, &ctx); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ctx, map[string]any{"id": 7.0, "peerURLs": nil, "isPromote": true}) {
		t.Errorf("promote context %v (etcd: id, peerURLs null, isPromote true)", ctx)
	}
	add := AddChange(Member{ID: 9, PeerURLs: []string{"http://x:1"}, IsLearner: true})
	if add.GetType() != raftpb.ConfChangeAddLearnerNode || add.GetNodeId() != 9 {
		t.Errorf("add learner change %v", add)
	}
	c, err := ParseContext(add)
	if err != nil || c.IsPromote || !c.IsLearner || c.PeerURLs[0] != "http://x:1" {
		t.Errorf("parsed %+v %v", c, err)
	}
	if _, err := ParseContext(&raftpb.ConfChange{Context: []byte("{")}); !errors.Is(err, ErrBadContext) {
		t.Errorf("bad context: %v", err)
	}
}

// TestParsePeerURLs: what etcd 3.4's MemberAdd accepted and refused
// ("given member URLs are invalid"), and how it stored what it accepted.
func TestParsePeerURLs(t *testing.T) {
	got, err := ParsePeerURLs([]string{" HTTP://127.0.0.1:42399", "http://127.0.0.1:42398"})
	if want := []string{"http://127.0.0.1:42398", "http://127.0.0.1:42399"}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("normalised %v %v, etcd stored %v", got, err, want)
	}
	if _, err := ParsePeerURLs([]string{"unix://x:1"}); err != nil {
		t.Errorf("unix://x:1 refused (etcd accepts it): %v", err)
	}
	for _, bad := range [][]string{nil, {"foo"}, {"http://127.0.0.1"}, {"http://127.0.0.1:1/path"}, {"127.0.0.1:5000"}, {"ftp://a:1"}} {
		if _, err := ParsePeerURLs(bad); !errors.Is(err, ErrBadURLs) {
			t.Errorf("%q: %v, want ErrBadURLs", bad, err)
		}
	}
}

func started(id uint64, url string) Member {
	return Member{ID: id, Name: "n", PeerURLs: []string{url}}
}

func threeMembers() *Cluster {
	return NewCluster([]Member{started(1, "http://a:1"), started(2, "http://b:1"), started(3, "http://c:1")}, []uint64{9})
}

func TestValidateConfChange(t *testing.T) {
	learner := Member{ID: 4, PeerURLs: []string{"http://d:1"}, IsLearner: true}
	withLearner := threeMembers()
	withLearner.Add(learner)
	for _, tc := range []struct {
		name string
		c    *Cluster
		cc   *raftpb.ConfChange
		want error
	}{
		{"add", threeMembers(), AddChange(Member{ID: 5, PeerURLs: []string{"http://e:1"}}), nil},
		{"add removed id", threeMembers(), AddChange(Member{ID: 9, PeerURLs: []string{"http://e:1"}}), ErrIDRemoved},
		{"add existing id", threeMembers(), AddChange(Member{ID: 2, PeerURLs: []string{"http://e:1"}}), ErrIDExists},
		{"add taken peer url", threeMembers(), AddChange(Member{ID: 5, PeerURLs: []string{"http://e:1", "http://b:1"}}), ErrPeerURLExists},
		{"add learner taken url", threeMembers(), AddChange(Member{ID: 5, PeerURLs: []string{"http://b:1"}, IsLearner: true}), ErrPeerURLExists},
		{"second learner", withLearner, AddChange(Member{ID: 5, PeerURLs: []string{"http://e:1"}, IsLearner: true}), ErrTooManyLearners},
		{"voter with a learner", withLearner, AddChange(Member{ID: 5, PeerURLs: []string{"http://e:1"}}), nil},
		{"remove", threeMembers(), RemoveChange(3), nil},
		{"remove unknown", threeMembers(), RemoveChange(7), ErrIDNotFound},
		{"remove removed", threeMembers(), RemoveChange(9), ErrIDRemoved},
		{"update own url", threeMembers(), UpdateChange(2, []string{"http://b:1"}), nil},
		{"update taken url", threeMembers(), UpdateChange(2, []string{"http://c:1"}), ErrPeerURLExists},
		{"update unknown", threeMembers(), UpdateChange(7, []string{"http://x:1"}), ErrIDNotFound},
		{"update removed", threeMembers(), UpdateChange(9, []string{"http://x:1"}), ErrIDRemoved},
		{"promote learner", withLearner, PromoteChange(4), nil},
		{"promote voter", withLearner, PromoteChange(2), ErrMemberNotLearner},
		{"promote unknown", withLearner, PromoteChange(7), ErrIDNotFound},
		{"promote removed", withLearner, PromoteChange(9), ErrIDRemoved},
	} {
		if err := tc.c.ValidateConfChange(tc.cc); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestMaxLearners: etcd's --max-learners raises the one-learner limit.
func TestMaxLearners(t *testing.T) {
	c := threeMembers()
	c.SetMaxLearners(2)
	for _, tc := range []struct {
		id   uint64
		want error
	}{{4, nil}, {5, nil}, {6, ErrTooManyLearners}} {
		_, err := c.ApplyConfChange(AddChange(Member{ID: tc.id, PeerURLs: []string{fmt.Sprintf("http://l%d:1", tc.id)}, IsLearner: true}))
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("learner %d: %v, want %v", tc.id, err, tc.want)
		}
	}
}

func TestApplyConfChange(t *testing.T) {
	c := threeMembers()
	ch, err := c.ApplyConfChange(AddChange(Member{ID: 4, PeerURLs: []string{"http://d:1"}, IsLearner: true}))
	if err != nil || len(ch.Put) != 1 || !ch.Put[0].IsLearner {
		t.Fatalf("add learner: %+v %v", ch, err)
	}
	if _, ok := c.SetAttributes(4, "m4", []string{"http://d:2"}); !ok {
		t.Fatal("publish")
	}
	ch, err = c.ApplyConfChange(UpdateChange(4, []string{"http://d:3"}))
	if err != nil || ch.Put[0].Name != "m4" || !ch.Put[0].IsLearner || ch.Put[0].PeerURLs[0] != "http://d:3" {
		t.Fatalf("update keeps name and learner flag: %+v %v", ch, err)
	}
	ch, err = c.ApplyConfChange(PromoteChange(4))
	if err != nil || ch.Put[0].IsLearner {
		t.Fatalf("promote: %+v %v", ch, err)
	}
	ch, err = c.ApplyConfChange(RemoveChange(2))
	if err != nil || !reflect.DeepEqual(ch.Removed, []uint64{2}) || !c.Removed(2) {
		t.Fatalf("remove: %+v %v", ch, err)
	}
	if _, err := c.ApplyConfChange(RemoveChange(2)); !errors.Is(err, ErrIDRemoved) {
		t.Fatalf("remove twice: %v", err)
	}
	ids := []uint64{}
	for _, m := range c.Members() {
		ids = append(ids, m.ID)
	}
	if !reflect.DeepEqual(ids, []uint64{1, 3, 4}) || !reflect.DeepEqual(c.RemovedIDs(), []uint64{2, 9}) {
		t.Fatalf("members %v removed %v", ids, c.RemovedIDs())
	}
}

var now = time.Unix(1700000000, 0)

// health: self is 1; ids in up connected for a minute, others down.
func health(up ...uint64) Health {
	return Health{Self: 1, Now: now, ActiveSince: func(id uint64) time.Time {
		for _, u := range up {
			if u == id {
				return now.Add(-time.Minute)
			}
		}
		return time.Time{}
	}}
}

func TestStrictReconfigChecks(t *testing.T) {
	one := NewCluster([]Member{started(1, "http://a:1")}, nil)
	// etcd 3.4, 1 member: adding a second voter is allowed (restoring a
	// cluster), then a third is refused while the second has not started.
	if err := one.CheckAdd(Member{ID: 2}, health()); err != nil {
		t.Fatalf("1 member, add voter: %v", err)
	}
	one.Add(Member{ID: 2, PeerURLs: []string{"http://b:1"}})
	if err := one.CheckAdd(Member{ID: 3}, health(2)); !errors.Is(err, ErrNotEnoughStarted) {
		t.Fatalf("2 members 1 started, add voter: %v", err)
	}
	if err := one.CheckAdd(Member{ID: 3, IsLearner: true}, health()); !errors.Is(err, ErrUnhealthy) {
		t.Fatalf("2 members 1 connected, add learner: %v (etcd: unhealthy cluster)", err)
	}
	if err := one.CheckRemove(1, health()); !errors.Is(err, ErrNotEnoughStarted) {
		t.Fatalf("remove the only started member: %v", err)
	}
	if err := one.CheckRemove(2, health()); err != nil {
		t.Fatalf("remove a member that is down: %v", err)
	}

	three := threeMembers()
	if err := three.CheckAdd(Member{ID: 5}, health(2, 3)); err != nil {
		t.Fatalf("healthy add: %v", err)
	}
	if err := three.CheckAdd(Member{ID: 5}, health(2)); !errors.Is(err, ErrUnhealthy) {
		t.Fatalf("add with a peer down: %v", err)
	}
	young := health(2, 3)
	young.ActiveSince = func(uint64) time.Time { return now.Add(-time.Second) }
	if err := three.CheckAdd(Member{ID: 5}, young); !errors.Is(err, ErrUnhealthy) {
		t.Fatalf("add with peers connected for less than HealthInterval: %v", err)
	}
	if err := three.CheckRemove(2, health(2)); !errors.Is(err, ErrUnhealthy) {
		t.Fatalf("remove an active peer while another is down: %v", err)
	}
	if err := three.CheckRemove(3, health(2)); err != nil {
		t.Fatalf("remove the peer that is down: %v", err)
	}
	if err := three.CheckRemove(2, health(2, 3)); err != nil {
		t.Fatalf("healthy remove: %v", err)
	}
	three.Add(Member{ID: 4, PeerURLs: []string{"http://d:1"}, IsLearner: true})
	if err := three.CheckRemove(4, health()); err != nil {
		t.Fatalf("removing a learner is never checked: %v", err)
	}
	if err := three.CheckPromote(4, true, 89, 100); !errors.Is(err, ErrLearnerNotReady) {
		t.Fatalf("learner at 89%%: %v", err)
	}
	if err := three.CheckPromote(4, true, 90, 100); err != nil {
		t.Fatalf("learner at 90%%: %v", err)
	}
	if err := three.CheckPromote(4, false, 0, 100); err != nil {
		t.Fatalf("no progress (checked at apply): %v", err)
	}
	unstarted := NewCluster([]Member{started(1, "http://a:1"), {ID: 2}, {ID: 3, IsLearner: true}}, nil)
	if err := unstarted.CheckPromote(3, true, 100, 100); !errors.Is(err, ErrNotEnoughStarted) {
		t.Fatalf("promote with 1 of 2 voters started: %v", err)
	}
}

// TestClusterConcurrentReaders runs readers against the writer (-race).
func TestClusterConcurrentReaders(t *testing.T) {
	c := threeMembers()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint64(10); i < 200; i++ {
			if _, err := c.ApplyConfChange(AddChange(Member{ID: i, PeerURLs: []string{fmt.Sprintf("http://x:%d", i)}})); err != nil {
				t.Error(err)
			}
		}
	}()
	for i := 0; i < 1000; i++ {
		for _, m := range c.Members() {
			_ = m.PeerURLs
		}
		_, _ = c.Member(1)
	}
	<-done
}
