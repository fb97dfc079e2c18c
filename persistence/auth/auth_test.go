package auth

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// rbac sets up: alice with roles key (READ "a"), rng (WRITE [b, d)),
// prefix (READWRITE "p/" as etcdctl --prefix grants it: [p/, p0)), open
// (READ from "x" on: range end "\x00"), all (WRITE on every key from
// "\x00": etcdctl's --from-key ""), carol with role all only, bob with no
// roles; auth on.
func rbac(t *testing.T) *applier {
	a := withRoot(t)
	for _, u := range []string{"alice", "bob", "carol"} {
		a.must(userAdd(u, hashed(t, "pw")))
	}
	for _, r := range []string{"key", "rng", "prefix", "open", "all"} {
		a.must(roleAdd(r))
		if r != "all" {
			a.must(grantRole("alice", r))
		}
	}
	a.must(grantRole("carol", "all"))
	a.must(grantPerm("key", authpb.Permission_READ, "a", ""))
	a.must(grantPerm("rng", authpb.Permission_WRITE, "b", "d"))
	a.must(grantPerm("prefix", authpb.Permission_READWRITE, "p/", "p0"))
	a.must(grantPerm("open", authpb.Permission_READ, "x", "\x00"))
	a.must(grantPerm("all", authpb.Permission_WRITE, "\x00", "\x00"))
	return a
}

func TestRBACMatrix(t *testing.T) {
	a := rbac(t)
	s := a.s
	type op int
	const (
		read op = iota
		put
		del
	)
	check := func(user string, o op, key, end string) error {
		ai := Info{Username: user, Revision: s.Revision()}
		var e []byte
		if end != "" {
			e = []byte(end)
		}
		switch o {
		case read:
			return s.IsRangePermitted(ai, []byte(key), e)
		case put:
			return s.IsPutPermitted(ai, []byte(key))
		default:
			return s.IsDeleteRangePermitted(ai, []byte(key), e)
		}
	}
	for _, tc := range []struct {
		user     string
		op       op
		key, end string
		want     error
	}{
		// a single key: READ only.
		{"alice", read, "a", "", nil},
		{"alice", put, "a", "", ErrPermissionDenied},
		{"alice", del, "a", "", ErrPermissionDenied},
		{"alice", read, "a", "a\x00", nil}, // the range of just "a"
		{"alice", read, "a", "a\x01", ErrPermissionDenied},
		{"alice", read, "aa", "", ErrPermissionDenied},
		// a range [b, d): WRITE only.
		{"alice", put, "b", "", nil},
		{"alice", put, "czz", "", nil},
		{"alice", put, "d", "", ErrPermissionDenied},
		{"alice", del, "b", "d", nil},
		{"alice", del, "b", "d\x00", ErrPermissionDenied},
		{"alice", del, "bb", "c", nil},
		{"alice", read, "b", "", ErrPermissionDenied},
		// a prefix: READWRITE.
		{"alice", read, "p/", "p0", nil},
		{"alice", read, "p/x", "", nil},
		{"alice", put, "p/x/y", "", nil},
		{"alice", del, "p/a", "p/b", nil},
		{"alice", read, "p", "p0", ErrPermissionDenied},
		{"alice", put, "p0", "", ErrPermissionDenied},
		// an open range from "x": READ, including open-ended requests.
		{"alice", read, "x", "\x00", nil},
		{"alice", read, "y", "\x00", nil},
		{"alice", read, "zzzz", "", nil},
		{"alice", read, "w", "\x00", ErrPermissionDenied},
		{"alice", put, "y", "", ErrPermissionDenied},
		// the union of two roles covers a range neither covers alone:
		// [p/, p0) and [x, ...) leave a gap, so no.
		{"alice", read, "p/", "\x00", ErrPermissionDenied},
		// everything: WRITE from "\x00".
		{"carol", put, "\x00", "", nil},
		{"carol", put, "anything", "", nil},
		{"carol", del, "\x00", "\x00", nil},
		{"carol", del, "a", "\x00", nil},
		{"carol", read, "a", "", ErrPermissionDenied},
		// no roles, unknown user, root.
		{"bob", read, "a", "", ErrPermissionDenied},
		{"bob", put, "p/x", "", ErrPermissionDenied},
		{"nobody", read, "a", "", ErrPermissionDenied},
		{"root", del, "\x00", "\x00", nil},
		{"root", put, "zz", "", nil},
		// an inverted or empty request range is covered by nothing.
		{"alice", read, "p/b", "p/a", ErrPermissionDenied},
	} {
		if got := check(tc.user, tc.op, tc.key, tc.end); !errors.Is(got, tc.want) && !(got == nil && tc.want == nil) {
			t.Errorf("%s op %d [%q, %q): %v, want %v", tc.user, tc.op, tc.key, tc.end, got, tc.want)
		}
	}
}

// TestRangesAdjacent: permissions that touch merge, so a request spanning
// both is allowed (etcd's tree accepts contiguous intervals).
func TestRangesAdjacent(t *testing.T) {
	a := withRoot(t)
	a.must(userAdd("u", hashed(t, "pw")))
	a.must(roleAdd("r1"))
	a.must(roleAdd("r2"))
	a.must(grantRole("u", "r1"))
	a.must(grantRole("u", "r2"))
	a.must(grantPerm("r1", authpb.Permission_READ, "a", "c"))
	a.must(grantPerm("r2", authpb.Permission_READ, "c", "e"))
	a.must(grantPerm("r2", authpb.Permission_READ, "e", "")) // the point "e": [e, e\x00)
	ai := Info{Username: "u", Revision: a.s.Revision()}
	if err := a.s.IsRangePermitted(ai, []byte("a"), []byte("e\x00")); err != nil {
		t.Fatalf("[a, e\\x00) over [a,c)+[c,e)+e: %v", err)
	}
	if err := a.s.IsRangePermitted(ai, []byte("a"), []byte("e\x01")); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("[a, e\\x01): %v", err)
	}
}

func TestRangeSet(t *testing.T) {
	var s rangeSet
	for _, iv := range []interval{
		{[]byte("m"), []byte("p")},
		{[]byte("a"), []byte("c")},
		{[]byte("b"), []byte("d")}, // overlaps [a, c)
		{[]byte("d"), []byte("e")}, // touches [a, d)
		{[]byte("x"), nil},
		{[]byte("z"), []byte("zz")}, // inside [x, ...)
		{[]byte("q"), []byte("q")},  // empty: ignored
	} {
		s = s.add(iv)
	}
	want := "[a,e) [m,p) [x,∞) "
	got := ""
	for _, iv := range s {
		end := "∞"
		if iv.end != nil {
			end = string(iv.end)
		}
		got += fmt.Sprintf("[%s,%s) ", iv.begin, end)
	}
	if got != want {
		t.Fatalf("merged %q, want %q", got, want)
	}
	for _, tc := range []struct {
		begin, end string // "" end: unbounded
		want       bool
	}{
		{"a", "e", true}, {"b", "c", true}, {"a", "e\x00", false}, {"m", "p", true},
		{"l", "n", false}, {"x", "", true}, {"xyz", "", true}, {"w", "", false}, {"e", "f", false},
	} {
		iv := interval{begin: []byte(tc.begin)}
		if tc.end != "" {
			iv.end = []byte(tc.end)
		}
		if got := s.covers(iv); got != tc.want {
			t.Errorf("covers [%q, %q): %v, want %v", tc.begin, tc.end, got, tc.want)
		}
	}
}

// TestRevisionCheck: with auth on, a request needs a user (revision 0 is
// no auth info) and a revision not older than the state's; with auth off
// everything passes.
func TestRevisionCheck(t *testing.T) {
	a := rbac(t)
	s := a.s
	if err := s.IsRangePermitted(Info{Username: "alice"}, []byte("a"), nil); !errors.Is(err, ErrUserEmpty) {
		t.Fatalf("no revision: %v", err)
	}
	if err := s.IsRangePermitted(Info{Username: "alice", Revision: s.Revision() - 1}, []byte("a"), nil); !errors.Is(err, ErrAuthOldRevision) {
		t.Fatalf("old revision: %v", err)
	}
	if err := s.IsPutPermitted(Info{Username: "root", Revision: s.Revision() - 1}, []byte("a")); !errors.Is(err, ErrAuthOldRevision) {
		t.Fatalf("old revision, root: %v", err)
	}
	// The admin check does not look at the revision (etcd's does not).
	if err := s.IsAdminPermitted(Info{Username: "root", Revision: 1}); err != nil {
		t.Fatalf("admin with an old revision: %v", err)
	}
	a.must(&pb.InternalRaftRequest{AuthDisable: &pb.AuthDisableRequest{}})
	if err := a.s.IsPutPermitted(Info{}, []byte("a")); err != nil {
		t.Fatalf("auth off: %v", err)
	}
	if err := a.s.IsAdminPermitted(Info{}); err != nil {
		t.Fatalf("auth off, admin: %v", err)
	}
	if err := a.s.CheckTxn(Info{}, &pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("a")}}}); err != nil {
		t.Fatalf("auth off, txn: %v", err)
	}
}

func TestCheckTxn(t *testing.T) {
	s := rbac(t).s
	alice := Info{Username: "alice", Revision: s.Revision()}
	get := func(k, end string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(k), RangeEnd: []byte(end)}}}
	}
	put := func(k string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k)}}}
	}
	del := func(k string, prev bool) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(k), PrevKv: prev}}}
	}
	nested := func(txn *pb.TxnRequest) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: txn}}
	}
	cmp := func(k string) *pb.Compare { return &pb.Compare{Key: []byte(k)} }
	for i, tc := range []struct {
		txn  *pb.TxnRequest
		want error
	}{
		{&pb.TxnRequest{Compare: []*pb.Compare{cmp("a")}, Success: []*pb.RequestOp{get("a", ""), put("b")}, Failure: []*pb.RequestOp{put("p/x")}}, nil},
		{&pb.TxnRequest{Compare: []*pb.Compare{cmp("b")}}, ErrPermissionDenied},         // compare needs read
		{&pb.TxnRequest{Success: []*pb.RequestOp{put("a")}}, ErrPermissionDenied},       // put needs write
		{&pb.TxnRequest{Failure: []*pb.RequestOp{get("b", "")}}, ErrPermissionDenied},   // failure branch checked too
		{&pb.TxnRequest{Success: []*pb.RequestOp{del("b", false)}}, nil},                // delete needs write
		{&pb.TxnRequest{Success: []*pb.RequestOp{del("b", true)}}, ErrPermissionDenied}, // prev_kv needs read too
		{&pb.TxnRequest{Success: []*pb.RequestOp{del("p/x", true)}}, nil},               // readwrite
		{&pb.TxnRequest{Success: []*pb.RequestOp{nested(&pb.TxnRequest{})}}, nil},       // empty nested
		{&pb.TxnRequest{Success: []*pb.RequestOp{nested(&pb.TxnRequest{Success: []*pb.RequestOp{put("a")}})}}, ErrPermissionDenied},
		{&pb.TxnRequest{Failure: []*pb.RequestOp{nested(&pb.TxnRequest{Compare: []*pb.Compare{cmp("zz")}, Failure: []*pb.RequestOp{nested(&pb.TxnRequest{Success: []*pb.RequestOp{get("c", "")}})}})}}, ErrPermissionDenied},
		{&pb.TxnRequest{Success: []*pb.RequestOp{{}}}, nil}, // an empty op
		// a put's prev_kv needs read (etcd after 3.6.8)
		{&pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("b"), PrevKv: true}}}}}, ErrPermissionDenied},
		{&pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("p/x"), PrevKv: true}}}}}, nil},
	} {
		if got := s.CheckTxn(alice, tc.txn); !errors.Is(got, tc.want) && !(got == nil && tc.want == nil) {
			t.Errorf("txn %d: %v, want %v", i, got, tc.want)
		}
	}
	if err := s.CheckTxn(Info{Username: "alice", Revision: 1}, &pb.TxnRequest{Compare: []*pb.Compare{cmp("a")}}); !errors.Is(err, ErrAuthOldRevision) {
		t.Fatalf("old revision: %v", err)
	}
}

// TestAdminRequests: with auth on, the admin-only requests need the root
// role; UserGet is allowed for the user itself and RoleGet for its roles.
func TestAdminRequests(t *testing.T) {
	a := rbac(t)
	alice := &pb.RequestHeader{Username: "alice", AuthRevision: a.s.Revision()}
	admin := []*pb.InternalRaftRequest{
		enable(), {AuthDisable: &pb.AuthDisableRequest{}}, {AuthStatus: &pb.AuthStatusRequest{}},
		userAdd("x", ""), {AuthUserDelete: &pb.AuthUserDeleteRequest{Name: "bob"}},
		{AuthUserChangePassword: &pb.AuthUserChangePasswordRequest{Name: "alice"}}, grantRole("bob", "key"),
		{AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: "alice", Role: "key"}}, roleAdd("y"),
		grantPerm("key", authpb.Permission_READ, "q", ""),
		{AuthRoleRevokePermission: &pb.AuthRoleRevokePermissionRequest{Role: "key", Key: []byte("a")}},
		{AuthRoleDelete: &pb.AuthRoleDeleteRequest{Role: "key"}},
		{AuthUserList: &pb.AuthUserListRequest{}}, {AuthRoleList: &pb.AuthRoleListRequest{}},
	}
	for _, req := range admin {
		if _, err := a.do(alice, req); !errors.Is(err, ErrPermissionDenied) {
			t.Errorf("%v as alice: %v", req, err)
		}
		if _, err := a.do(&pb.RequestHeader{}, req); !errors.Is(err, ErrUserEmpty) {
			t.Errorf("%v without a user: %v", req, err)
		}
		if _, err := a.do(&pb.RequestHeader{Username: "ghost", AuthRevision: 99}, req); !errors.Is(err, ErrUserNotFound) {
			t.Errorf("%v as a missing user: %v", req, err)
		}
	}
	if resp, err := a.do(alice, &pb.InternalRaftRequest{AuthUserGet: &pb.AuthUserGetRequest{Name: "alice"}}); err != nil || len(resp.(*pb.AuthUserGetResponse).Roles) != 4 {
		t.Fatalf("alice gets herself: %v %v", resp, err)
	}
	if _, err := a.do(alice, &pb.InternalRaftRequest{AuthUserGet: &pb.AuthUserGetRequest{Name: "bob"}}); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("alice gets bob: %v", err)
	}
	if resp, err := a.do(alice, &pb.InternalRaftRequest{AuthRoleGet: &pb.AuthRoleGetRequest{Role: "key"}}); err != nil || len(resp.(*pb.AuthRoleGetResponse).Perm) != 1 {
		t.Fatalf("alice gets her role: %v %v", resp, err)
	}
	if _, err := a.do(alice, &pb.InternalRaftRequest{AuthRoleGet: &pb.AuthRoleGetRequest{Role: "all"}}); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("alice gets another role: %v", err)
	}
	// Authenticate needs no admin.
	if _, err := a.do(&pb.RequestHeader{}, &pb.InternalRaftRequest{Authenticate: &pb.InternalAuthenticateRequest{Name: "alice"}}); err != nil {
		t.Fatalf("authenticate: %v", err)
	}
}

// TestRootRules: enabling needs user root with role root; while enabled
// root cannot be deleted, lose the root role, or the root role be deleted.
func TestRootRules(t *testing.T) {
	a := newApplier(t)
	if _, err := a.do(nil, enable()); !errors.Is(err, ErrRootUserNotExist) {
		t.Fatalf("enable without root: %v", err)
	}
	a.must(userAdd("root", hashed(t, "pw")))
	if _, err := a.do(nil, enable()); !errors.Is(err, ErrRootRoleNotExist) {
		t.Fatalf("enable without the root role: %v", err)
	}
	// The root role may be granted before it exists; RoleGet needs it added.
	a.must(grantRole("root", "root"))
	if _, err := a.do(nil, &pb.InternalRaftRequest{AuthRoleGet: &pb.AuthRoleGetRequest{Role: "root"}}); !errors.Is(err, ErrRoleNotFound) {
		t.Fatalf("get the root role before it was added: %v", err)
	}
	a.must(roleAdd("root"))
	resp := a.must(&pb.InternalRaftRequest{AuthRoleGet: &pb.AuthRoleGetRequest{Role: "root"}}).(*pb.AuthRoleGetResponse)
	if len(resp.Perm) != 1 || resp.Perm[0].PermType != authpb.Permission_READWRITE || len(resp.Perm[0].Key) != 0 || string(resp.Perm[0].RangeEnd) != "\x00" {
		t.Fatalf("root role perms %v", resp.Perm)
	}
	a.must(enable())
	if !a.s.Enabled() {
		t.Fatal("not enabled")
	}
	for _, req := range []*pb.InternalRaftRequest{
		{AuthUserDelete: &pb.AuthUserDeleteRequest{Name: "root"}},
		{AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: "root", Role: "root"}},
		{AuthRoleDelete: &pb.AuthRoleDeleteRequest{Role: "root"}},
	} {
		if _, err := a.do(rootHeader, req); !errors.Is(err, ErrInvalidAuthMgmt) {
			t.Errorf("%v while enabled: %v", req, err)
		}
	}
	a.must(&pb.InternalRaftRequest{AuthDisable: &pb.AuthDisableRequest{}})
	a.must(&pb.InternalRaftRequest{AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: "root", Role: "root"}})
	a.must(&pb.InternalRaftRequest{AuthRoleDelete: &pb.AuthRoleDeleteRequest{Role: "root"}})
	a.must(&pb.InternalRaftRequest{AuthUserDelete: &pb.AuthUserDeleteRequest{Name: "root"}})
}

// TestRevisionBumps: the auth revision moves as etcd's: on each change of
// users, roles or permissions and on AuthDisable; not on AuthEnable, a
// duplicate grant, reads, or a refused request.
func TestRevisionBumps(t *testing.T) {
	a := newApplier(t)
	if a.s.Revision() != 1 {
		t.Fatalf("initial revision %d", a.s.Revision())
	}
	steps := []struct {
		req  *pb.InternalRaftRequest
		bump bool
	}{
		{userAdd("root", hashed(t, "pw")), true},
		{userAdd("root", hashed(t, "pw")), false}, // exists
		{roleAdd("r"), true},
		{grantRole("root", "root"), true},
		{grantRole("root", "root"), false}, // duplicate: ignored
		{grantRole("root", "r"), true},
		{grantPerm("r", authpb.Permission_READ, "k", ""), true},
		{grantPerm("r", authpb.Permission_WRITE, "k", ""), true}, // updates the type
		{enable(), false},
		{enable(), false},
		{&pb.InternalRaftRequest{AuthStatus: &pb.AuthStatusRequest{}}, false},
		{&pb.InternalRaftRequest{AuthUserList: &pb.AuthUserListRequest{}}, false},
		{&pb.InternalRaftRequest{AuthUserGet: &pb.AuthUserGetRequest{Name: "root"}}, false},
		{&pb.InternalRaftRequest{AuthRoleGet: &pb.AuthRoleGetRequest{Role: "r"}}, false},
		{&pb.InternalRaftRequest{Authenticate: &pb.InternalAuthenticateRequest{Name: "root"}}, false},
		{&pb.InternalRaftRequest{AuthUserChangePassword: &pb.AuthUserChangePasswordRequest{Name: "root", HashedPassword: hashed(t, "new")}}, true},
		{&pb.InternalRaftRequest{AuthRoleRevokePermission: &pb.AuthRoleRevokePermissionRequest{Role: "r", Key: []byte("k")}}, true},
		{&pb.InternalRaftRequest{AuthRoleRevokePermission: &pb.AuthRoleRevokePermissionRequest{Role: "r", Key: []byte("k")}}, false}, // not granted
		{&pb.InternalRaftRequest{AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: "root", Role: "r"}}, true},
		{&pb.InternalRaftRequest{AuthDisable: &pb.AuthDisableRequest{}}, true},
		{&pb.InternalRaftRequest{AuthDisable: &pb.AuthDisableRequest{}}, false},
		{&pb.InternalRaftRequest{AuthRoleDelete: &pb.AuthRoleDeleteRequest{Role: "r"}}, true},
		{&pb.InternalRaftRequest{AuthUserDelete: &pb.AuthUserDeleteRequest{Name: "root"}}, true},
	}
	for i, st := range steps {
		before := a.s.Revision()
		_, _ = a.do(rootHeader, st.req)
		want := before
		if st.bump {
			want++
		}
		if a.s.Revision() != want {
			t.Fatalf("step %d %v: revision %d -> %d, want %d", i, st.req, before, a.s.Revision(), want)
		}
	}
}

func TestUsersAndRoles(t *testing.T) {
	a := newApplier(t)
	// An entry written by etcd before 3.5 carries the plaintext password:
	// it is hashed at apply.
	a.must(&pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "old", Password: "secret"}})
	a.must(userAdd("root", hashed(t, "rootpw")))
	a.must(&pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "nopw", Options: &authpb.UserAddOptions{NoPassword: true}}})
	if _, err := a.do(nil, &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "bad", HashedPassword: "!!not base64"}}); !errors.Is(err, ErrNoPasswordUser) {
		t.Fatalf("undecodable hash: %v", err)
	}
	for _, tc := range []struct {
		req  *pb.InternalRaftRequest
		want error
	}{
		{userAdd("", ""), ErrUserEmpty},
		{userAdd("root", ""), ErrUserAlreadyExist},
		{roleAdd(""), ErrRoleEmpty},
		{grantRole("ghost", "root"), ErrUserNotFound},
		{grantRole("root", "ghost"), ErrRoleNotFound},
		{&pb.InternalRaftRequest{AuthUserDelete: &pb.AuthUserDeleteRequest{Name: "ghost"}}, ErrUserNotFound},
		{&pb.InternalRaftRequest{AuthUserGet: &pb.AuthUserGetRequest{Name: "ghost"}}, ErrUserNotFound},
		{&pb.InternalRaftRequest{AuthUserChangePassword: &pb.AuthUserChangePasswordRequest{Name: "ghost"}}, ErrUserNotFound},
		{&pb.InternalRaftRequest{AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: "ghost", Role: "r"}}, ErrUserNotFound},
		{&pb.InternalRaftRequest{AuthUserRevokeRole: &pb.AuthUserRevokeRoleRequest{Name: "root", Role: "r"}}, ErrRoleNotGranted},
		{&pb.InternalRaftRequest{AuthRoleGet: &pb.AuthRoleGetRequest{Role: "ghost"}}, ErrRoleNotFound},
		{&pb.InternalRaftRequest{AuthRoleDelete: &pb.AuthRoleDeleteRequest{Role: "ghost"}}, ErrRoleNotFound},
		{&pb.InternalRaftRequest{AuthRoleRevokePermission: &pb.AuthRoleRevokePermissionRequest{Role: "ghost"}}, ErrRoleNotFound},
		{&pb.InternalRaftRequest{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "ghost"}}, ErrPermissionNotGiven},
		{grantPerm("ghost", authpb.Permission_READ, "a", ""), ErrRoleNotFound},
		{grantPerm("ghost", authpb.Permission_READ, "", ""), ErrInvalidAuthMgmt}, // no key
		{grantPerm("ghost", authpb.Permission_READ, "b", "a"), ErrInvalidAuthMgmt},
		{grantPerm("ghost", authpb.Permission_READ, "a", "a"), ErrInvalidAuthMgmt},
		{&pb.InternalRaftRequest{Authenticate: &pb.InternalAuthenticateRequest{Name: "root"}}, ErrAuthNotEnabled},
		{&pb.InternalRaftRequest{}, ErrNotAuthRequest},
	} {
		if _, err := a.do(nil, tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%v: %v, want %v", tc.req, err, tc.want)
		}
	}
	a.must(roleAdd("r2"))
	a.must(roleAdd("r1"))
	a.must(grantRole("root", "root"))
	a.must(grantRole("root", "r2"))
	a.must(grantRole("root", "r1"))
	a.must(grantRole("old", "r1"))
	if u, _ := a.s.User("root"); !slices.Equal(u.Roles, []string{"r1", "r2", "root"}) {
		t.Fatalf("roles not sorted: %v", u.Roles)
	}
	a.must(grantPerm("r1", authpb.Permission_READ, "m", ""))
	a.must(grantPerm("r1", authpb.Permission_READ, "c", "d"))
	a.must(grantPerm("r1", authpb.Permission_WRITE, "m", ""))     // same key and range: updated
	a.must(grantPerm("r1", authpb.Permission_READ, "m", "m\x00")) // same key, other range: added
	r, _ := a.s.Role("r1")
	var got []string
	for _, p := range r.KeyPermission {
		got = append(got, fmt.Sprintf("%s %q %q", p.PermType, p.Key, p.RangeEnd))
	}
	if want := []string{`READ "c" "d"`, `WRITE "m" ""`, `READ "m" "m\x00"`}; !slices.Equal(got, want) {
		t.Fatalf("perms %q, want %q", got, want)
	}
	users := a.must(&pb.InternalRaftRequest{AuthUserList: &pb.AuthUserListRequest{}}).(*pb.AuthUserListResponse).Users
	roles := a.must(&pb.InternalRaftRequest{AuthRoleList: &pb.AuthRoleListRequest{}}).(*pb.AuthRoleListResponse).Roles
	if !slices.Equal(users, []string{"nopw", "old", "root"}) || !slices.Equal(roles, []string{"r1", "r2"}) {
		t.Fatalf("lists %v %v", users, roles)
	}
	// Deleting a role takes it from its users.
	a.must(&pb.InternalRaftRequest{AuthRoleDelete: &pb.AuthRoleDeleteRequest{Role: "r1"}})
	if a.s.HasRole("root", "r1") || a.s.HasRole("old", "r1") || !a.s.HasRole("root", "r2") {
		t.Fatal("role r1 still granted after delete")
	}
	a.must(enable())
	if rev, err := a.s.CheckPassword("old", "secret"); err != nil || rev != a.s.Revision() {
		t.Fatalf("plaintext-era user: %d %v", rev, err)
	}
	if _, err := a.s.CheckPassword("root", "rootpw"); err != nil {
		t.Fatalf("root: %v", err)
	}
	// A no-password user keeps no password through a change.
	a.must(&pb.InternalRaftRequest{AuthUserChangePassword: &pb.AuthUserChangePasswordRequest{Name: "nopw", HashedPassword: hashed(t, "x")}})
	if u, _ := a.s.User("nopw"); u.Password != nil || !u.Options.GetNoPassword() {
		t.Fatalf("no-password user after a change: %v", u)
	}
	if _, err := a.do(nil, &pb.InternalRaftRequest{Authenticate: &pb.InternalAuthenticateRequest{Name: "nopw"}}); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("authenticate a no-password user: %v", err)
	}
	if _, err := a.do(nil, &pb.InternalRaftRequest{Authenticate: &pb.InternalAuthenticateRequest{Name: "ghost"}}); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("authenticate a missing user: %v", err)
	}
}

func TestCheckPassword(t *testing.T) {
	a := withRoot(t)
	a.must(&pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "nopw", Options: &authpb.UserAddOptions{NoPassword: true}}})
	for _, tc := range []struct {
		user, pw string
		want     error
	}{
		{"root", "rootpw", nil},
		{"root", "wrong", ErrAuthFailed},
		{"ghost", "x", ErrAuthFailed},
		{"nopw", "", ErrNoPasswordUser},
	} {
		rev, err := a.s.CheckPassword(tc.user, tc.pw)
		if !errors.Is(err, tc.want) && !(err == nil && tc.want == nil) {
			t.Errorf("%s/%s: %v, want %v", tc.user, tc.pw, err, tc.want)
		}
		if err == nil && rev != a.s.Revision() {
			t.Errorf("%s: revision %d, want %d", tc.user, rev, a.s.Revision())
		}
	}
	a.must(&pb.InternalRaftRequest{AuthDisable: &pb.AuthDisableRequest{}})
	if _, err := a.s.CheckPassword("root", "rootpw"); !errors.Is(err, ErrAuthNotEnabled) {
		t.Fatalf("auth off: %v", err)
	}
}

// TestStatusAndOps: AuthStatus reports the state; Ops round-trips
// through Load in etcd's encoding.
func TestStatusAndOps(t *testing.T) {
	a := rbac(t)
	st := a.must(&pb.InternalRaftRequest{AuthStatus: &pb.AuthStatusRequest{}}).(*pb.AuthStatusResponse)
	if !st.Enabled || st.AuthRevision != a.s.Revision() {
		t.Fatalf("status %v, revision %d", st, a.s.Revision())
	}
	back, err := Load(a.s.Ops())
	if err != nil {
		t.Fatal(err)
	}
	ai := Info{Username: "alice", Revision: back.Revision()}
	if !back.Enabled() || back.Revision() != a.s.Revision() || back.IsRangePermitted(ai, []byte("p/x"), nil) != nil || back.IsPutPermitted(ai, []byte("a")) == nil {
		t.Fatal("Load(Ops()) differs")
	}
	for _, op := range a.s.Ops() {
		if string(op.Bucket) == "auth" && string(op.Key) == "authEnabled" && string(op.Value) != "\x01" {
			t.Fatalf("authEnabled %x", op.Value)
		}
	}
	if _, err := Load([]Op{{Bucket: []byte("key"), Key: []byte("k"), Value: []byte("v")}}); err == nil {
		t.Fatal("Load took a foreign bucket")
	}
	if _, err := Load([]Op{{Bucket: BucketAuth, Key: KeyRevision, Value: []byte{1}}}); err == nil {
		t.Fatal("Load took a short revision")
	}
	if _, err := Load([]Op{{Bucket: BucketUsers, Key: []byte("u"), Value: []byte{0xff}}}); err == nil {
		t.Fatal("Load took a garbled user")
	}
}

// TestErrorTexts: the sentinels carry etcd 3.6.8's texts (the API layer
// maps them by identity; a log or a test comparing texts sees etcd's).
func TestErrorTexts(t *testing.T) {
	for err, want := range map[error]string{
		ErrRootUserNotExist:     "auth: root user does not exist",
		ErrRootRoleNotExist:     "auth: root user does not have root role",
		ErrUserAlreadyExist:     "auth: user already exists",
		ErrUserEmpty:            "auth: user name is empty",
		ErrUserNotFound:         "auth: user not found",
		ErrRoleAlreadyExist:     "auth: role already exists",
		ErrRoleNotFound:         "auth: role not found",
		ErrRoleEmpty:            "auth: role name is empty",
		ErrPermissionNotGiven:   "auth: permission not given",
		ErrAuthFailed:           "auth: authentication failed, invalid user ID or password",
		ErrNoPasswordUser:       "auth: authentication failed, password was given for no password user",
		ErrPermissionDenied:     "auth: permission denied",
		ErrRoleNotGranted:       "auth: role is not granted to the user",
		ErrPermissionNotGranted: "auth: permission is not granted to the role",
		ErrAuthNotEnabled:       "auth: authentication is not enabled",
		ErrAuthOldRevision:      "auth: revision in header is old",
		ErrInvalidAuthToken:     "auth: invalid auth token",
		ErrInvalidAuthOpts:      "auth: invalid auth options",
		ErrInvalidAuthMgmt:      "auth: invalid auth management",
	} {
		if err.Error() != want {
			t.Errorf("%q, want %q", err, want)
		}
	}
}

func TestSimpleToken(t *testing.T) {
	if got := SimpleToken("AbCdEfGhIjKlMnOp", 42); got != "AbCdEfGhIjKlMnOp.42" {
		t.Fatal(got)
	}
}

// TestCheckPutLeases: a put attaching a lease needs write permission on
// the keys the lease holds, unless the sender is an admin; a txn's puts
// the same with CheckTxnLeases.
func TestCheckPutLeases(t *testing.T) {
	s := rbac(t).s
	alice := Info{Username: "alice", Revision: s.Revision()}
	root := Info{Username: "root", Revision: s.Revision()}
	leases := func(id int64) ([][]byte, bool) {
		switch id {
		case 1:
			return [][]byte{[]byte("b"), []byte("secret")}, true
		case 2:
			return [][]byte{[]byte("b"), []byte("p/q")}, true
		}
		return nil, false
	}
	for _, tc := range []struct {
		ai    Info
		lease int64
		want  error
	}{
		{alice, 1, ErrPermissionDenied},
		{alice, 2, nil},
		{alice, 3, nil}, // no such lease
		{root, 1, nil},
	} {
		put := &pb.PutRequest{Key: []byte("b"), Lease: tc.lease}
		if err := s.CheckPut(tc.ai, put, leases); !errors.Is(err, tc.want) && (err != nil || tc.want != nil) {
			t.Errorf("%s put with lease %d: %v, want %v", tc.ai.Username, tc.lease, err, tc.want)
		}
		txn := &pb.TxnRequest{Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{
			Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: put}}}}}}}}
		if err := s.CheckTxnLeases(tc.ai, txn, leases); !errors.Is(err, tc.want) && (err != nil || tc.want != nil) {
			t.Errorf("%s txn put with lease %d: %v, want %v", tc.ai.Username, tc.lease, err, tc.want)
		}
		if err := s.CheckLeaseKeys(tc.ai, tc.lease, leases); !errors.Is(err, tc.want) && (err != nil || tc.want != nil) {
			t.Errorf("%s revoke lease %d: %v, want %v", tc.ai.Username, tc.lease, err, tc.want)
		}
	}
	if err := s.CheckPut(alice, &pb.PutRequest{Key: []byte("b"), Lease: 1}, nil); err != nil {
		t.Fatalf("no lease lookup: %v", err)
	}
	if err := s.CheckPut(alice, &pb.PutRequest{Key: []byte("b"), PrevKv: true}, nil); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("put with prev_kv on a write-only key: %v", err)
	}
}
