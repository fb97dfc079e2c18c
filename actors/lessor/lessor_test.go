package lessor

import (
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/actors/internal/actortest"
	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/auth"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// fixture is one lessor in a synctest bubble with a real store and a
// channel that receives the proposals it sends to raft.
type fixture struct {
	t       *testing.T
	sys     *actor.ActorSystem
	store   *mvcc.Store
	index   uint64
	lessor  *actor.PID
	props   chan *pb.InternalRaftRequest
	view    *memberview.View
	started time.Time
}

func newFixture(t *testing.T) *fixture {
	store, err := mvcc.Open(filepath.Join(t.TempDir(), "db"), mvcc.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, sys: actortest.NewSystem(), store: store, props: make(chan *pb.InternalRaftRequest, 100), started: time.Now()}
	raft := f.sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if m, ok := ctx.Message().(*messages.Propose); ok {
			var req pb.InternalRaftRequest
			if err := proto.Unmarshal(m.Data, &req); err != nil {
				t.Error(err)
			}
			f.props <- &req
		}
	}))
	f.view = memberview.New(memberview.Member{ID: 1, Name: "m"}, 1)
	client := raftclient.New(raftclient.Config{
		Root: f.sys.Root, View: f.view,
		Waits: raftclient.NewWaits(), RequestTimeout: 5 * time.Second,
	})
	client.SetCore(&raftclient.Core{Raft: raft, Store: store})
	f.lessor = f.sys.Root.Spawn(Props(Config{
		Client: client, Raft: raft, Extension: time.Second, Logger: slog.New(slog.DiscardHandler),
	}))
	return f
}

func (f *fixture) close() {
	_ = f.sys.Root.StopFuture(f.lessor).Wait()
	actortest.Shutdown(f.sys)
	_ = f.store.Close()
}

func (f *fixture) apply(req *pb.InternalRaftRequest) {
	f.t.Helper()
	f.index++
	var err error
	switch {
	case req.LeaseGrant != nil:
		_, err = f.store.LeaseGrant(f.index, req.LeaseGrant)
	case req.LeaseRevoke != nil:
		_, err = f.store.LeaseRevoke(f.index, req.LeaseRevoke)
	case req.LeaseCheckpoint != nil:
		_, err = f.store.LeaseCheckpoint(f.index, req.LeaseCheckpoint)
	}
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) ask(msg any) any {
	f.t.Helper()
	res, err := f.sys.Root.RequestFuture(f.lessor, msg, time.Second).Result()
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

// proposals returns what was proposed so far.
func (f *fixture) proposals() []*pb.InternalRaftRequest {
	synctest.Wait()
	var out []*pb.InternalRaftRequest
	for {
		select {
		case p := <-f.props:
			out = append(out, p)
		default:
			return out
		}
	}
}

func (f *fixture) at() time.Duration { return time.Since(f.started) }

// TestLessorExpiresOnlyAsLeaderNeverEarly: a follower expires nothing; a
// new leader counts TTL (or the checkpointed remaining TTL) plus the
// extension from its promotion, and proposes the revoke then, not before.
func TestLessorExpiresOnlyAsLeaderNeverEarly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		defer f.close()
		f.apply(&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 1, TTL: 10}})
		f.apply(&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 2, TTL: 100}})
		f.apply(&pb.InternalRaftRequest{LeaseCheckpoint: &pb.LeaseCheckpointRequest{Checkpoints: []*pb.LeaseCheckpoint{{ID: 2, Remaining_TTL: 4}}}})

		time.Sleep(20 * time.Second) // a follower: nothing happens
		if ps := f.proposals(); len(ps) != 0 {
			t.Fatalf("a follower proposed %v", ps)
		}
		if r := f.ask(&messages.RenewLease{ID: 1}).(*messages.RenewLeaseResult); !errors.Is(r.Err, rpctypes.ErrGRPCNotLeader) {
			t.Fatalf("renew on a follower: %+v", r)
		}

		f.sys.Root.Send(f.lessor, &messages.LeaderChanged{Leader: 1, Term: 2})
		promoted := f.at()
		ttl := f.ask(&messages.GetLeaseTTL{ID: 2}).(*messages.LeaseTTL)
		if !ttl.Found || ttl.Remaining != 5*time.Second || ttl.GrantedTTL != 100 {
			t.Fatalf("checkpointed lease after promotion: %+v, want 4 s + 1 s extension left", ttl)
		}
		// lease 2 expires 5 s after the promotion, lease 1 11 s after
		revoked := map[int64]time.Duration{}
		for f.at() < promoted+12*time.Second {
			time.Sleep(100 * time.Millisecond)
			for _, p := range f.proposals() {
				if p.LeaseRevoke != nil {
					revoked[p.LeaseRevoke.ID] = f.at() - promoted
					f.apply(p)
				}
			}
		}
		for id, want := range map[int64]time.Duration{2: 5 * time.Second, 1: 11 * time.Second} {
			got, ok := revoked[id]
			if !ok || got < want || got > want+DefaultCheckInterval+100*time.Millisecond {
				t.Fatalf("lease %d revoked %v after promotion (seen %v), want just after %v", id, got, ok, want)
			}
		}
		if got := f.store.Leases(); len(got) != 0 {
			t.Fatalf("leases left: %v", got)
		}
	})
}

// TestLessorCheckpointsAndRenewals: an unrenewed lease is checkpointed
// once half of what it had left passed; a renewal of a checkpointed lease
// proposes a checkpoint of 0 and renews for the whole TTL; unknown leases
// get TTL 0; a lost revoke is proposed again after the retry interval.
func TestLessorCheckpointsAndRenewals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		defer f.close()
		f.sys.Root.Send(f.lessor, &messages.LeaderChanged{Leader: 1, Term: 2})
		f.apply(&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 7, TTL: 20}})
		if r := f.ask(&messages.RenewLease{ID: 7}).(*messages.RenewLeaseResult); r.TTL != 20 || r.Err != nil {
			t.Fatalf("renew: %+v", r)
		}
		if r := f.ask(&messages.RenewLease{ID: 8}).(*messages.RenewLeaseResult); r.TTL != 0 || r.Err != nil {
			t.Fatalf("renew of an unknown lease: %+v", r)
		}
		if r := f.ask(&messages.GetLeaseTTL{ID: 8}).(*messages.LeaseTTL); r.Found {
			t.Fatalf("ttl of an unknown lease: %+v", r)
		}
		time.Sleep(10*time.Second + DefaultCheckInterval)
		ps := f.proposals()
		if len(ps) != 1 || ps[0].LeaseCheckpoint == nil {
			t.Fatalf("proposals at half the TTL: %v", ps)
		}
		cp := ps[0].LeaseCheckpoint.Checkpoints
		if len(cp) != 1 || cp[0].ID != 7 || cp[0].Remaining_TTL < 10 || cp[0].Remaining_TTL > 11 {
			t.Fatalf("checkpoint %v, want ~10 s left for lease 7", cp)
		}
		f.apply(ps[0])
		if r := f.ask(&messages.RenewLease{ID: 7}).(*messages.RenewLeaseResult); r.TTL != 20 {
			t.Fatalf("renew after checkpoint: %+v", r)
		}
		ps = f.proposals()
		if len(ps) != 1 || ps[0].LeaseCheckpoint == nil || ps[0].LeaseCheckpoint.Checkpoints[0].Remaining_TTL != 0 {
			t.Fatalf("renewal of a checkpointed lease proposed %v, want a checkpoint of 0", ps)
		}
		f.apply(ps[0])
		if l, _, _ := f.store.Lease(7, false); l.RemainingTTL != 0 {
			t.Fatalf("remaining TTL after the renewal: %d", l.RemainingTTL)
		}
		// let it expire, lose the revoke, and see it proposed again
		time.Sleep(20*time.Second + DefaultCheckInterval)
		var revokes int
		for _, p := range f.proposals() {
			if p.LeaseRevoke != nil {
				revokes++
			}
		}
		if revokes != 1 {
			t.Fatalf("%d revokes at expiry, want 1", revokes)
		}
		if r := f.ask(&messages.RenewLease{ID: 7}).(*messages.RenewLeaseResult); r.TTL != 0 {
			t.Fatalf("renew of an expired lease: %+v", r)
		}
		time.Sleep(DefaultRetryInterval)
		revokes = 0
		for _, p := range f.proposals() {
			if p.LeaseRevoke != nil {
				revokes++
			}
		}
		if revokes != 1 {
			t.Fatalf("%d revokes after the retry interval, want 1", revokes)
		}
		// demoted: answers ErrNotLeader, proposes nothing
		f.sys.Root.Send(f.lessor, &messages.LeaderChanged{Leader: 2, Term: 3})
		if r := f.ask(&messages.GetLeaseTTL{ID: 7}).(*messages.LeaseTTL); !errors.Is(r.Err, rpctypes.ErrGRPCNotLeader) {
			t.Fatalf("ttl on a follower: %+v", r)
		}
		time.Sleep(10 * time.Second)
		if ps := f.proposals(); len(ps) != 0 {
			t.Fatalf("a demoted lessor proposed %v", ps)
		}
	})
}

// TestLessorRevokesAsRoot: the revoke of an expired lease is sent by the
// root user at the auth revision the member applied (etcd's WithRoot), so
// it passes the apply-time check of the lease's keys with auth on.
func TestLessorRevokesAsRoot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		defer f.close()
		st, err := auth.Load([]auth.Op{{Bucket: auth.BucketAuth, Key: auth.KeyRevision, Value: []byte{0, 0, 0, 0, 0, 0, 0, 7}}})
		if err != nil {
			t.Fatal(err)
		}
		f.view.SetAuth(st)
		f.apply(&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 1, TTL: 5}})
		f.sys.Root.Send(f.lessor, &messages.LeaderChanged{Leader: 1, Term: 2})
		time.Sleep(7 * time.Second)
		var revokes []*pb.InternalRaftRequest
		for _, p := range f.proposals() {
			if p.LeaseRevoke != nil {
				revokes = append(revokes, p)
			}
		}
		if len(revokes) != 1 {
			t.Fatalf("%d revokes, want 1", len(revokes))
		}
		if h := revokes[0].Header; h.GetUsername() != "root" || h.GetAuthRevision() != 7 || h.GetID() == 0 {
			t.Fatalf("revoke header %v, want root at auth revision 7 with a request id", h)
		}
	})
}
