package applier

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/persistence/auth"
)

// tokens records the token side effects the applier reports.
type tokens struct {
	mu    sync.Mutex
	calls []string
}

func (k *tokens) add(s string) { k.mu.Lock(); k.calls = append(k.calls, s); k.mu.Unlock() }
func (k *tokens) Assign(token, user string, rev uint64) {
	k.add(fmt.Sprintf("assign %s %s %d", token, user, rev))
}
func (k *tokens) InvalidateUser(user string) { k.add("invalidate " + user) }
func (k *tokens) Enable()                    { k.add("enable") }
func (k *tokens) Disable()                   { k.add("disable") }
func (k *tokens) take() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := k.calls
	k.calls = nil
	return out
}

// asUser is a normal entry at index holding req sent by user at auth
// revision rev.
func asUser(t *testing.T, index, id uint64, user string, rev uint64, req *pb.InternalRaftRequest) *raftpb.Entry {
	t.Helper()
	e := entry(t, index, id, req)
	req.Header.Username, req.Header.AuthRevision = user, rev
	data, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	e.Data = data
	return e
}

func hashedPassword(t *testing.T, pw string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(h)
}

// authSetup is the entries (indexes 1-7) that add root, enable auth, and
// give alice readwrite on "a" and read on "r".
func authSetup(t *testing.T) []*raftpb.Entry {
	const root, rev = "root", 1 << 40 // admin checks ignore the revision
	return []*raftpb.Entry{
		entry(t, 1, 1, &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "root", HashedPassword: hashedPassword(t, "rootpw")}}),
		entry(t, 2, 2, &pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"}}),
		entry(t, 3, 3, &pb.InternalRaftRequest{AuthEnable: &pb.AuthEnableRequest{}}),
		asUser(t, 4, 4, root, rev, &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "alice", HashedPassword: hashedPassword(t, "pw")}}),
		asUser(t, 5, 5, root, rev, &pb.InternalRaftRequest{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "r"}}),
		asUser(t, 6, 6, root, rev, &pb.InternalRaftRequest{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "r", Perm: &authpb.Permission{PermType: authpb.Permission_READWRITE, Key: []byte("a")}}}),
		asUser(t, 7, 7, root, rev, &pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: "alice", Role: "r"}}),
	}
}

// TestApplyAuth: auth requests apply through the log, publish the state,
// report token side effects, and writes are checked at apply time with
// the entry's sender; refused entries move the index; a restarted applier
// loads the same state; replayed entries change nothing.
func TestApplyAuth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := openStore(t)
		sys := newSystem(t)
		client := newClient(sys, 1)
		keeper := &tokens{}
		f := start(t, sys, Config{Store: store, Client: client, Tokens: keeper})
		synctest.Wait()
		if got := keeper.take(); !slices.Equal(got, []string{"disable"}) {
			t.Fatalf("tokens at start: %q", got)
		}
		if v := client.View().Auth(); v.Enabled() || v.Revision() != 1 {
			t.Fatalf("view at start: enabled %v revision %d", v.Enabled(), v.Revision())
		}
		setup := authSetup(t)
		for i, r := range f.applyAll(setup...) {
			if r.Err != nil {
				t.Fatalf("setup entry %d: %v", i+1, r.Err)
			}
		}
		st := client.View().Auth()
		if !st.Enabled() || !st.HasRole("alice", "r") || st.Revision() != 7 {
			t.Fatalf("view after setup: enabled %v revision %d", st.Enabled(), st.Revision())
		}
		if got := keeper.take(); !slices.Equal(got, []string{"enable"}) {
			t.Fatalf("tokens after setup: %q", got)
		}
		rev := st.Revision()
		put := func(k string, lease int64) *pb.InternalRaftRequest {
			return &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(k), Value: []byte("v"), Lease: lease}}
		}
		res := f.applyAll(
			asUser(t, 8, 8, "alice", rev, put("a", 0)),
			asUser(t, 9, 9, "alice", rev, put("b", 0)),
			entry(t, 10, 10, put("a", 0)),
			asUser(t, 11, 11, "alice", rev-1, put("a", 0)),
			asUser(t, 12, 12, "alice", rev, &pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a"), PrevKv: true}}),
			asUser(t, 13, 13, "alice", rev, &pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte("c")}}),
			asUser(t, 14, 14, "alice", rev, &pb.InternalRaftRequest{Txn: &pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("b")}}}}),
			asUser(t, 15, 15, "alice", rev, &pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("a")}}}}}}),
			asUser(t, 16, 16, "alice", rev, &pb.InternalRaftRequest{AuthUserList: &pb.AuthUserListRequest{}}),
			asUser(t, 17, 17, "alice", rev, &pb.InternalRaftRequest{AuthUserGet: &pb.AuthUserGetRequest{Name: "alice"}}),
		)
		want := []error{nil, auth.ErrPermissionDenied, auth.ErrUserEmpty, auth.ErrAuthOldRevision, nil, auth.ErrPermissionDenied,
			auth.ErrPermissionDenied, nil, auth.ErrPermissionDenied, nil}
		for i, r := range res {
			if !errors.Is(r.Err, want[i]) && (r.Err != nil || want[i] != nil) {
				t.Errorf("entry %d: %v, want %v", i+8, r.Err, want[i])
			}
		}
		if store.ConsistentIndex() != 17 || store.Rev() != 4 {
			t.Fatalf("index %d revision %d, want 17 and 4 (refused entries move the index only)", store.ConsistentIndex(), store.Rev())
		}
		if ug := res[9].Resp.(*pb.AuthUserGetResponse); !slices.Equal(ug.Roles, []string{"r"}) || ug.Header.GetRevision() != 4 {
			t.Fatalf("user get: %v", ug)
		}

		// Token side effects: a simple token from the entry's index, a
		// changed password, auth off.
		res = f.applyAll(
			entry(t, 18, 18, &pb.InternalRaftRequest{Authenticate: &pb.InternalAuthenticateRequest{Name: "alice", SimpleToken: "prefix"}}),
			entry(t, 19, 19, &pb.InternalRaftRequest{Authenticate: &pb.InternalAuthenticateRequest{Name: "alice"}}),
			asUser(t, 20, 20, "root", rev, &pb.InternalRaftRequest{AuthUserChangePassword: &pb.AuthUserChangePasswordRequest{Name: "alice", HashedPassword: hashedPassword(t, "new")}}),
			asUser(t, 21, 21, "root", rev, &pb.InternalRaftRequest{AuthDisable: &pb.AuthDisableRequest{}}),
		)
		for i, r := range res {
			if r.Err != nil {
				t.Fatalf("entry %d: %v", i+18, r.Err)
			}
		}
		if tok := res[0].Resp.(*pb.AuthenticateResponse).Token; tok != "prefix.18" {
			t.Fatalf("simple token %q", tok)
		}
		if tok := res[1].Resp.(*pb.AuthenticateResponse).Token; tok != "" {
			t.Fatalf("token without a prefix (JWT: signed by the API) %q", tok)
		}
		if got, want := keeper.take(), []string{"assign prefix.18 alice 7", "invalidate alice", "disable"}; !slices.Equal(got, want) {
			t.Fatalf("tokens: %q, want %q", got, want)
		}
		final := client.View().Auth()
		if final.Enabled() || final.Revision() != 9 {
			t.Fatalf("after disable: enabled %v revision %d", final.Enabled(), final.Revision())
		}

		// A restart loads the same state; the replayed log changes nothing
		// (its entries are at or below the backend's index).
		if err := sys.Root.StopFuture(f.pid).Wait(); err != nil {
			t.Fatal(err)
		}
		client2 := newClient(sys, 1)
		f2 := start(t, sys, Config{Store: store, Client: client2, Tokens: keeper})
		f2.apply(setup...)
		if st := client2.View().Auth(); st.Enabled() || st.Revision() != 9 || !st.HasRole("alice", "r") {
			t.Fatalf("after restart and replay: enabled %v revision %d", st.Enabled(), st.Revision())
		}
		if got := keeper.take(); !slices.Equal(got, []string{"disable"}) {
			t.Fatalf("tokens after restart and replay: %q", got)
		}
		if store.ConsistentIndex() != 21 {
			t.Fatalf("index %d after replay", store.ConsistentIndex())
		}
	})
}

// TestApplyAuthLeases: a lease with a key the sender may not write can be
// neither revoked nor given more keys by it (by a put or a txn's put); an
// admin (the lessor's root) passes whatever its revision.
func TestApplyAuthLeases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := openStore(t)
		sys := newSystem(t)
		client := newClient(sys, 1)
		f := start(t, sys, Config{Store: store, Client: client})
		f.applyAll(authSetup(t)...)
		rev := client.View().Auth().Revision()
		res := f.applyAll(
			asUser(t, 8, 8, "root", rev, &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 100, TTL: 60}}),
			asUser(t, 9, 9, "root", rev, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("secret"), Lease: 100}}),
			asUser(t, 10, 10, "alice", rev, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("a"), Lease: 100}}),
			asUser(t, 11, 11, "alice", rev, &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 100}}),
			asUser(t, 12, 12, "alice", rev, &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 200, TTL: 60}}),
			asUser(t, 13, 13, "alice", rev, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("a"), Lease: 200}}),
			asUser(t, 14, 14, "alice", rev, &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 200}}),
			asUser(t, 15, 15, "alice", rev, &pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("a"), Lease: 100}}}}}}),
			asUser(t, 16, 16, "root", 1, &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 100}}),
		)
		want := []error{nil, nil, auth.ErrPermissionDenied, auth.ErrPermissionDenied, nil, nil, nil, auth.ErrPermissionDenied, nil}
		for i, r := range res {
			if !errors.Is(r.Err, want[i]) && (r.Err != nil || want[i] != nil) {
				t.Errorf("entry %d: %v, want %v", i+8, r.Err, want[i])
			}
		}
		if _, _, ok := store.Lease(100, false); ok {
			t.Fatal("lease 100 not revoked by root")
		}
	})
}
