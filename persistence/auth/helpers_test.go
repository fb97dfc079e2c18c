package auth

import (
	"encoding/base64"
	"testing"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"golang.org/x/crypto/bcrypt"
)

// root is the admin's header.
var rootHeader = &pb.RequestHeader{Username: "root", AuthRevision: 1 << 40}

// hashed is a bcrypt hash of password at the minimum cost, base64 as the
// API layer sends it.
func hashed(t testing.TB, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(h)
}

// applier applies requests to a State and keeps the bucket contents its
// ops describe, so every test also checks Load(ops) == state.
type applier struct {
	t       testing.TB
	s       *State
	buckets map[string]map[string][]byte
}

func newApplier(t testing.TB) *applier {
	a := &applier{t: t, s: Empty(), buckets: map[string]map[string][]byte{}}
	a.write(InitialOps())
	return a
}

func (a *applier) write(ops []Op) {
	for _, op := range ops {
		m := a.buckets[string(op.Bucket)]
		if m == nil {
			m = map[string][]byte{}
			a.buckets[string(op.Bucket)] = m
		}
		if op.Value == nil {
			delete(m, string(op.Key))
		} else {
			m[string(op.Key)] = op.Value
		}
	}
}

// do applies req as hdr and returns the response and error; the state and
// buckets move on.
func (a *applier) do(hdr *pb.RequestHeader, req *pb.InternalRaftRequest) (any, error) {
	a.t.Helper()
	req.Header = hdr
	next, resp, ops, err := a.s.Apply(req)
	if err != nil && (next != a.s || ops != nil) {
		a.t.Fatalf("%v: refused with a change", err)
	}
	a.write(ops)
	a.s = next
	a.checkLoad()
	return resp, err
}

// must applies req as root and fails the test on an error.
func (a *applier) must(req *pb.InternalRaftRequest) any {
	a.t.Helper()
	resp, err := a.do(rootHeader, req)
	if err != nil {
		a.t.Fatalf("%v: %v", req, err)
	}
	return resp
}

// checkLoad checks that the buckets load back into the same state.
func (a *applier) checkLoad() {
	a.t.Helper()
	var kvs []Op
	for b, m := range a.buckets {
		for k, v := range m {
			kvs = append(kvs, Op{Bucket: []byte(b), Key: []byte(k), Value: v})
		}
	}
	got, err := Load(kvs)
	if err != nil {
		a.t.Fatal(err)
	}
	if got.Enabled() != a.s.Enabled() || got.Revision() != a.s.Revision() || len(got.users) != len(a.s.users) || len(got.roles) != len(a.s.roles) {
		a.t.Fatalf("loaded enabled %v rev %d users %d roles %d; state %v %d %d %d", got.Enabled(), got.Revision(), len(got.users), len(got.roles),
			a.s.Enabled(), a.s.Revision(), len(a.s.users), len(a.s.roles))
	}
}

func userAdd(name, hash string) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: name, HashedPassword: hash}}
}

func roleAdd(name string) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: name}}
}

func grantRole(user, role string) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{AuthUserGrantRole: &pb.AuthUserGrantRoleRequest{User: user, Role: role}}
}

func grantPerm(role string, t authpb.Permission_Type, key, end string) *pb.InternalRaftRequest {
	p := &authpb.Permission{PermType: t, Key: []byte(key)}
	if end != "" {
		p.RangeEnd = []byte(end)
	}
	return &pb.InternalRaftRequest{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: role, Perm: p}}
}

func enable() *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{AuthEnable: &pb.AuthEnableRequest{}}
}

// withRoot returns an applier with user root (role root) and auth on.
func withRoot(t testing.TB) *applier {
	a := newApplier(t)
	a.must(userAdd("root", hashed(t, "rootpw")))
	a.must(grantRole("root", "root"))
	a.must(enable())
	return a
}
