package e2e

// Snapshots of an auth-enabled store keep its users, roles, permissions
// and the auth switch: etcd 3.6.8's snapshot restored into the server
// under test, and the server under test's restored into etcd (3.4, whose
// etcdctl restores; see restoreAndStart), answer a script of logins and
// permitted and denied requests as their source does.

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// snapshotAuthFixture makes the users and roles of rbacScript (roles with
// their permissions, users with their passwords and roles), root, a
// user without password, the keys (revisions 2 to 7), and enables auth.
func snapshotAuthFixture(t *testing.T, s *e2etest.Server) {
	t.Helper()
	e := newAuthEnv(t, s)
	steps := []authStep{
		{"root", userAdd("root", rootPassword, false)},
		{"role root", roleAdd("root")},
		{"grant root", grantRole("root", "root")},
		{"frank", userAdd("frank", "", true)},
	}
	for _, r := range rbacRoles {
		steps = append(steps, authStep{r.role, roleAdd(r.role)}, authStep{"perm " + r.role, grantPerm(r.role, r.perm, r.key, r.end)})
	}
	for _, u := range rbacUsers {
		steps = append(steps, authStep{u.name, userAdd(u.name, u.name+"pw", false)})
		if u.role != "" {
			steps = append(steps, authStep{u.name + " " + u.role, grantRole(u.name, u.role)})
		}
	}
	for _, k := range []string{"k1", "k2", "a1", "b1", "p/1", "z1"} {
		steps = append(steps, authStep{"put " + k, kvPut(k, "v-"+k, 0)})
	}
	steps = append(steps, authStep{"enable", authEnable})
	for _, st := range steps {
		if _, err := st.do(ctx(t), e); err != nil {
			t.Fatalf("%s: fixture step %s: %v", s.Kind(), st.name, err)
		}
	}
}

// snapshotAuthChecks is what the restored member must answer as its
// source: logins, reads, writes and admin calls of each user; AuthStatus
// (with the auth revision) unless the member is etcd 3.4, which has none.
func snapshotAuthChecks(withStatus bool) []authStep {
	s := []authStep{
		{"get without a token", kvRange("k1", "")},
		{"authenticate root with a wrong password", login("root", "wrong")},
		{"authenticate frank (no password)", login("frank", "x")},
		{"authenticate root", login("root", rootPassword)},
		{"user list", asRoot(func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.auth().UserList(c, &pb.AuthUserListRequest{})
		})},
		{"role list", asRoot(func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.auth().RoleList(c, &pb.AuthRoleListRequest{})
		})},
	}
	for _, r := range rbacRoles {
		s = append(s, authStep{"role get " + r.role, asRoot(func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.auth().RoleGet(c, &pb.AuthRoleGetRequest{Role: r.role})
		})})
	}
	for _, u := range rbacUsers {
		s = append(s,
			authStep{"user get " + u.name, asRoot(func(c context.Context, e *authEnv) (proto.Message, error) {
				return e.auth().UserGet(c, &pb.AuthUserGetRequest{Name: u.name})
			})},
			authStep{"authenticate " + u.name, login(u.name, u.name+"pw")},
			authStep{u.name + " gets k1", asUser(u.name, kvRange("k1", ""))},
			authStep{u.name + " gets p/", asUser(u.name, kvRange("p/", "p0"))},
			authStep{u.name + " gets z..", asUser(u.name, kvRange("z", "\x00"))},
			authStep{u.name + " puts b-" + u.name, asUser(u.name, kvPut("b-"+u.name, "v", 0))},
			authStep{u.name + " puts p/" + u.name, asUser(u.name, kvPut("p/"+u.name, "v", 0))},
			authStep{u.name + " watches k1", asUser(u.name, watchCreate("k1", ""))},
			authStep{u.name + " adds a user", asUser(u.name, userAdd("x-"+u.name, "pw", false))},
		)
	}
	s = append(s,
		authStep{"root adds grace", asRoot(userAdd("grace", "gracepw", false))},
		authStep{"root grants r-open to grace", asRoot(grantRole("grace", "r-open"))},
		authStep{"authenticate grace", login("grace", "gracepw")},
		authStep{"grace gets z..", asUser("grace", kvRange("z", "\x00"))},
		authStep{"root grants carol a permission", asRoot(grantPerm("rw-prefix", authpb.READ, "k2", ""))},
		authStep{"carol gets k2", asUser("carol", kvRange("k2", ""))},
	)
	if withStatus {
		s = append(s, authStep{"auth status at the end", asRoot(authStatus)})
	}
	return s
}

// saveAuthSnapshot saves s's snapshot as root with etcdctl until it holds
// rev (troupe's backend reaches the file within a commit interval).
func saveAuthSnapshot(t *testing.T, s *e2etest.Server, rev int64) string {
	t.Helper()
	dir := t.TempDir()
	var st jsonSnapshotStatus
	for attempt := range 50 {
		path := filepath.Join(dir, fmt.Sprintf("snap-%d.db", attempt))
		etcdctl(t, s, "", "--user=root:"+rootPassword, "snapshot", "save", path)
		decodeJSON(t, etcdctl34(t, nil, "", "snapshot", "status", path, "-w", "json"), &st)
		if st.Revision >= rev {
			return path
		}
	}
	t.Fatalf("snapshot revision %d, want %d", st.Revision, rev)
	return ""
}

// restoredAuthAsSource makes the fixture on a server of kind from, saves
// its snapshot, restores it into kind to (restoreAndStart) and requires
// the restored member to answer snapshotAuthChecks as the source does.
func restoredAuthAsSource(t *testing.T, from, to string) {
	if to != e2etest.Troupe {
		to = e2etest.Etcd34 // what restoreAndStart restores etcd into
	}
	src := e2etest.Start(t, e2etest.Config{Kind: from, Args: []string{"--bcrypt-cost", "4"}})
	snapshotAuthFixture(t, src)
	path := saveAuthSnapshot(t, src, 7) // six puts after revision 1
	restored, _ := restoreAndStart(t, to, path)
	steps := snapshotAuthChecks(to != e2etest.Etcd34)
	if to != e2etest.Etcd34 {
		steps = append([]authStep{{"authenticate root", login("root", rootPassword)}, {"auth status first", asRoot(authStatus)}}, steps...)
	}
	want := runAuthScript(t, newAuthEnv(t, src), steps)
	got := runAuthScript(t, newAuthEnv(t, restored), steps)
	compareScripts(t, restored.Kind()+" restored from "+from, steps, want, got)
}

// TestAuthSnapshotFromEtcd: etcd 3.6.8's snapshot with auth on, restored
// into the server under test.
func TestAuthSnapshotFromEtcd(t *testing.T) {
	restoredAuthAsSource(t, e2etest.Etcd, e2etest.Kind())
}

// TestAuthSnapshotToEtcd: the server under test's snapshot with auth on,
// restored into etcd.
func TestAuthSnapshotToEtcd(t *testing.T) {
	restoredAuthAsSource(t, e2etest.Kind(), e2etest.Etcd34)
}
