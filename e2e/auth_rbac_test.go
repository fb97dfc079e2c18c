package e2e

// The RBAC matrix as a differential test: users and roles made over raw
// gRPC, auth enabled (and refused before the root user and role exist),
// then every user runs the same reads, writes, txns, watches, lease and
// maintenance calls, and every answer (response or gRPC code and message)
// must be etcd 3.6.8's.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"testing"

	"github.com/troupedb/troupe/e2e/e2etest"
)

const rootPassword = "rootpw"

// rbacUser is a user of the matrix with its one role (none for eve).
type rbacUser struct{ name, role string }

// rbacUsers: alice reads one key, bob writes a range, carol reads and
// writes a prefix, dave reads an open-ended range, eve has no role.
var rbacUsers = []rbacUser{{"alice", "r-key"}, {"bob", "w-range"}, {"carol", "rw-prefix"}, {"dave", "r-open"}, {"eve", ""}}

// rbacRoles are the roles' permissions: key, range end.
var rbacRoles = []struct {
	role     string
	perm     authpb.Permission_Type
	key, end string
}{
	{"r-key", authpb.READ, "k1", ""},
	{"w-range", authpb.WRITE, "a", "c"},
	{"rw-prefix", authpb.READWRITE, "p/", "p0"},
	{"r-open", authpb.READ, "z", "\x00"},
}

func asRoot(f func(context.Context, *authEnv) (proto.Message, error)) func(context.Context, *authEnv) (proto.Message, error) {
	return asUser("root", f)
}

func asUser(user string, f func(context.Context, *authEnv) (proto.Message, error)) func(context.Context, *authEnv) (proto.Message, error) {
	return func(c context.Context, e *authEnv) (proto.Message, error) { return f(e.as(c, user), e) }
}

func userAdd(name, password string, noPassword bool) func(context.Context, *authEnv) (proto.Message, error) {
	return func(c context.Context, e *authEnv) (proto.Message, error) {
		return e.auth().UserAdd(c, &pb.AuthUserAddRequest{Name: name, Password: password, Options: &authpb.UserAddOptions{NoPassword: noPassword}})
	}
}

func roleAdd(name string) func(context.Context, *authEnv) (proto.Message, error) {
	return func(c context.Context, e *authEnv) (proto.Message, error) {
		return e.auth().RoleAdd(c, &pb.AuthRoleAddRequest{Name: name})
	}
}

func grantRole(user, role string) func(context.Context, *authEnv) (proto.Message, error) {
	return func(c context.Context, e *authEnv) (proto.Message, error) {
		return e.auth().UserGrantRole(c, &pb.AuthUserGrantRoleRequest{User: user, Role: role})
	}
}

func revokeRole(user, role string) func(context.Context, *authEnv) (proto.Message, error) {
	return func(c context.Context, e *authEnv) (proto.Message, error) {
		return e.auth().UserRevokeRole(c, &pb.AuthUserRevokeRoleRequest{Name: user, Role: role})
	}
}

func grantPerm(role string, typ authpb.Permission_Type, key, end string) func(context.Context, *authEnv) (proto.Message, error) {
	return func(c context.Context, e *authEnv) (proto.Message, error) {
		return e.auth().RoleGrantPermission(c, &pb.AuthRoleGrantPermissionRequest{Name: role, Perm: &authpb.Permission{PermType: typ, Key: b(key), RangeEnd: b(end)}})
	}
}

func revokePerm(role, key, end string) func(context.Context, *authEnv) (proto.Message, error) {
	return func(c context.Context, e *authEnv) (proto.Message, error) {
		return e.auth().RoleRevokePermission(c, &pb.AuthRoleRevokePermissionRequest{Role: role, Key: b(key), RangeEnd: b(end)})
	}
}

func authEnable(c context.Context, e *authEnv) (proto.Message, error) {
	return e.auth().AuthEnable(c, &pb.AuthEnableRequest{})
}

func authDisable(c context.Context, e *authEnv) (proto.Message, error) {
	return e.auth().AuthDisable(c, &pb.AuthDisableRequest{})
}

func authStatus(c context.Context, e *authEnv) (proto.Message, error) {
	return e.auth().AuthStatus(c, &pb.AuthStatusRequest{})
}

func login(user, password string) func(context.Context, *authEnv) (proto.Message, error) {
	return func(c context.Context, e *authEnv) (proto.Message, error) { return e.authenticate(c, user, password) }
}

func kvRange(key, end string) func(context.Context, *authEnv) (proto.Message, error) {
	return func(c context.Context, e *authEnv) (proto.Message, error) {
		return e.kv().Range(c, &pb.RangeRequest{Key: b(key), RangeEnd: b(end)})
	}
}

func kvPut(key, value string, lease int64) func(context.Context, *authEnv) (proto.Message, error) {
	return func(c context.Context, e *authEnv) (proto.Message, error) {
		return e.kv().Put(c, &pb.PutRequest{Key: b(key), Value: b(value), Lease: lease})
	}
}

// kvDel deletes with prev_kv, which needs the read permission too.
func kvDel(key, end string) func(context.Context, *authEnv) (proto.Message, error) {
	return func(c context.Context, e *authEnv) (proto.Message, error) {
		return e.kv().DeleteRange(c, &pb.DeleteRangeRequest{Key: b(key), RangeEnd: b(end), PrevKv: true})
	}
}

func kvDelNoPrev(key, end string) func(context.Context, *authEnv) (proto.Message, error) {
	return func(c context.Context, e *authEnv) (proto.Message, error) {
		return e.kv().DeleteRange(c, &pb.DeleteRangeRequest{Key: b(key), RangeEnd: b(end)})
	}
}

func kvTxn(r *pb.TxnRequest) func(context.Context, *authEnv) (proto.Message, error) {
	return func(c context.Context, e *authEnv) (proto.Message, error) { return e.kv().Txn(c, r) }
}

// watchCreate opens a watch stream, creates one watch and returns its
// first answer (created, or created and canceled with the reason).
func watchCreate(key, end string) func(context.Context, *authEnv) (proto.Message, error) {
	return func(c context.Context, e *authEnv) (proto.Message, error) {
		c, cancel := context.WithCancel(c)
		defer cancel()
		w, err := e.watch().Watch(c)
		if err != nil {
			return nil, err
		}
		if err := w.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: b(key), RangeEnd: b(end)}}}); err != nil {
			return nil, err
		}
		return w.Recv()
	}
}

// watchKeep creates a watch on a stream kept in e under name, for
// watchNext, and returns the created answer.
func watchKeep(name, key, end string) func(context.Context, *authEnv) (proto.Message, error) {
	return func(c context.Context, e *authEnv) (proto.Message, error) {
		wc, cancel := context.WithCancel(context.WithoutCancel(c))
		e.t.Cleanup(cancel)
		w, err := e.watch().Watch(wc)
		if err != nil {
			return nil, err
		}
		e.watches[name] = w
		if err := w.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: b(key), RangeEnd: b(end)}}}); err != nil {
			return nil, err
		}
		return w.Recv()
	}
}

// watchNext is the next answer on the stream kept under name, or an
// error if none comes in 3 seconds.
func watchNext(name string) func(context.Context, *authEnv) (proto.Message, error) {
	return func(c context.Context, e *authEnv) (proto.Message, error) {
		type answer struct {
			r   *pb.WatchResponse
			err error
		}
		ch := make(chan answer, 1)
		go func() {
			r, err := e.watches[name].Recv()
			ch <- answer{r, err}
		}()
		select {
		case a := <-ch:
			return a.r, a.err
		case <-time.After(3 * time.Second):
			return summary("no event within 3s"), nil
		}
	}
}

func leaseGrant(id, ttl int64) func(context.Context, *authEnv) (proto.Message, error) {
	return func(c context.Context, e *authEnv) (proto.Message, error) {
		return e.lease().LeaseGrant(c, &pb.LeaseGrantRequest{ID: id, TTL: ttl})
	}
}

func leaseRevoke(id int64) func(context.Context, *authEnv) (proto.Message, error) {
	return func(c context.Context, e *authEnv) (proto.Message, error) {
		return e.lease().LeaseRevoke(c, &pb.LeaseRevokeRequest{ID: id})
	}
}

// leaseTTLKeys is LeaseTimeToLive with keys; the TTL left is masked.
func leaseTTLKeys(id int64) func(context.Context, *authEnv) (proto.Message, error) {
	return func(c context.Context, e *authEnv) (proto.Message, error) {
		r, err := e.lease().LeaseTimeToLive(c, &pb.LeaseTimeToLiveRequest{ID: id, Keys: true})
		if err != nil {
			return nil, err
		}
		r.TTL = 0
		slices.SortFunc(r.Keys, bytes.Compare) // etcd lists them in Go map order
		return r, nil
	}
}

// maintenanceCalls are the Maintenance and Cluster calls of the matrix,
// each summarized to what two members share.
func maintenanceCalls() []authStep {
	return []authStep{
		{"status", func(c context.Context, e *authEnv) (proto.Message, error) {
			r, err := e.maintenance().Status(c, &pb.StatusRequest{})
			if err != nil {
				return nil, err
			}
			return summary("status version=%s errors=%v learner=%v", r.Version, r.Errors, r.IsLearner), nil
		}},
		{"hashkv", func(c context.Context, e *authEnv) (proto.Message, error) {
			r, err := e.maintenance().HashKV(c, &pb.HashKVRequest{})
			if err != nil {
				return nil, err
			}
			return summary("hashkv compact_revision=%d", r.CompactRevision), nil
		}},
		{"defragment", func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.maintenance().Defragment(c, &pb.DefragmentRequest{})
		}},
		{"snapshot", func(c context.Context, e *authEnv) (proto.Message, error) {
			s, err := e.maintenance().Snapshot(c, &pb.SnapshotRequest{})
			if err != nil {
				return nil, err
			}
			n := 0
			for {
				r, err := s.Recv()
				if err == io.EOF {
					return summary("snapshot ok: %v", n > 0), nil
				}
				if err != nil {
					return nil, err
				}
				n += len(r.Blob)
			}
		}},
		{"alarm list", func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.maintenance().Alarm(c, &pb.AlarmRequest{Action: pb.AlarmRequest_GET})
		}},
		{"move leader to a stranger", func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.maintenance().MoveLeader(c, &pb.MoveLeaderRequest{TargetID: 12345})
		}},
		{"member list", func(c context.Context, e *authEnv) (proto.Message, error) {
			r, err := e.cluster().MemberList(c, &pb.MemberListRequest{Linearizable: true})
			if err != nil {
				return nil, err
			}
			return summary("members %s", membersSummary(r.Members)), nil
		}},
		{"member add learner and remove it", func(c context.Context, e *authEnv) (proto.Message, error) {
			r, err := e.cluster().MemberAdd(c, &pb.MemberAddRequest{PeerURLs: []string{"http://127.0.0.1:1"}, IsLearner: true})
			if err != nil {
				return nil, err
			}
			added := membersSummary(r.Members)
			if _, err := e.cluster().MemberRemove(c, &pb.MemberRemoveRequest{ID: r.Member.ID}); err != nil {
				return nil, fmt.Errorf("remove the learner added: %w", err)
			}
			return summary("member added %s; members %s", membersSummary([]*pb.Member{r.Member}), added), nil
		}},
	}
}

// matrixOps is what each user tries once authenticated, in order; the
// writes are made so that each user's differ (keys named after it) where
// a write that succeeds would change what the next user sees.
func matrixOps(user string, leaseID int64) []authStep {
	nested := &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{
		Compare: []*pb.Compare{cmpInt("p/1", pb.Compare_VERSION, pb.Compare_GREATER, 0)},
		Success: []*pb.RequestOp{opRange(&pb.RangeRequest{Key: b("p/1")})},
		Failure: []*pb.RequestOp{opRange(&pb.RangeRequest{Key: b("z1")})},
	}}}}}
	ops := []authStep{
		{"get k1", kvRange("k1", "")},
		{"get k2", kvRange("k2", "")},
		{"get a..c", kvRange("a", "c")},
		{"get a..d", kvRange("a", "d")},
		{"get prefix p/", kvRange("p/", "p0")},
		{"get p/1", kvRange("p/1", "")},
		{"get z..", kvRange("z", "\x00")},
		{"get z1", kvRange("z1", "")},
		{"get y..", kvRange("y", "\x00")},
		{"get all", kvRange("\x00", "\x00")},
		{"put k1", kvPut("k1", "by-"+user, 0)},
		{"put b-" + user, kvPut("b-"+user, "v", 0)},
		{"put c1", kvPut("c1", "by-"+user, 0)},
		{"put p/" + user, kvPut("p/"+user, "v", 0)},
		{"put z-" + user, kvPut("z-"+user, "v", 0)},
		{"lease grant", leaseGrant(leaseID, 600)},
		{"put p/" + user + " with a lease", kvPut("p/lease-"+user, "v", leaseID)},
		{"del b-" + user + " prev_kv", kvDel("b-"+user, "")},
		{"del b-" + user, kvDelNoPrev("b-"+user, "")},
		{"put b-" + user + " again", kvPut("b-"+user, "v", 0)},
		{"del b.. without prev_kv", kvDelNoPrev("b", "c")},
		{"del a..b", kvDel("a", "b")},
		{"del p/" + user, kvDel("p/"+user, "")},
		{"del z-..z.", kvDel("z-", "z.")},
		{"txn compare k1 put p/", kvTxn(&pb.TxnRequest{
			Compare: []*pb.Compare{cmpInt("k1", pb.Compare_VERSION, pb.Compare_GREATER, 0)},
			Success: []*pb.RequestOp{opPut("p/txn-"+user, "t")},
			Failure: []*pb.RequestOp{opRange(&pb.RangeRequest{Key: b("k1")})},
		})},
		{"txn compare p/ range", kvTxn(&pb.TxnRequest{
			Compare: []*pb.Compare{func() *pb.Compare {
				c := cmpInt("p/", pb.Compare_CREATE, pb.Compare_GREATER, 0)
				c.RangeEnd = b("p0")
				return c
			}()},
			Success: []*pb.RequestOp{opRange(&pb.RangeRequest{Key: b("p/"), RangeEnd: b("p0"), CountOnly: true})},
		})},
		{"txn read only z1", kvTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opRange(&pb.RangeRequest{Key: b("z1")})}})},
		{"txn failure branch writes b", kvTxn(&pb.TxnRequest{
			Compare: []*pb.Compare{cmpValue("k1", pb.Compare_EQUAL, "never")},
			Success: []*pb.RequestOp{opPut("p/never", "x")},
			Failure: []*pb.RequestOp{opPut("b-txn-"+user, "f"), opDel(&pb.DeleteRangeRequest{Key: b("b-" + user)})},
		})},
		{"txn nested", kvTxn(nested)},
		{"watch k1", watchCreate("k1", "")},
		{"watch prefix p/", watchCreate("p/", "p0")},
		{"watch a..c", watchCreate("a", "c")},
		{"watch z..", watchCreate("z", "\x00")},
		{"lease timetolive keys of 0x100 (p/l)", leaseTTLKeys(0x100)},
		{"lease timetolive keys of 0x200 (b2)", leaseTTLKeys(0x200)},
		{"lease timetolive keys of 0x300 (k3 z1)", leaseTTLKeys(0x300)},
		{"lease timetolive keys of own", leaseTTLKeys(leaseID)},
		{"lease revoke own", leaseRevoke(leaseID)},
		{"auth status", authStatus},
		{"user list", func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.auth().UserList(c, &pb.AuthUserListRequest{})
		}},
		{"user get self", func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.auth().UserGet(c, &pb.AuthUserGetRequest{Name: user})
		}},
		{"role get rw-prefix", func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.auth().RoleGet(c, &pb.AuthRoleGetRequest{Role: "rw-prefix"})
		}},
		{"user add", userAdd("new-by-"+user, "pw", false)},
	}
	ops = append(ops, maintenanceCalls()...)
	for i := range ops {
		ops[i].name = user + ": " + ops[i].name
		ops[i].do = asUser(user, ops[i].do)
	}
	return ops
}

// rbacScript is the whole differential script.
func rbacScript() []authStep {
	s := []authStep{
		{"auth status, disabled", authStatus},
		{"authenticate with auth disabled", login("root", rootPassword)},
		{"auth enable without root", authEnable},
		{"user add empty name", userAdd("", "pw", false)},
		{"user add root", userAdd("root", rootPassword, false)},
		{"auth enable without root role", authEnable},
		{"user add root again", userAdd("root", "other", false)},
		{"user add no password with a password", userAdd("frank", "pw", true)},
		{"user get frank", func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.auth().UserGet(c, &pb.AuthUserGetRequest{Name: "frank"})
		}},
		{"user get missing", func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.auth().UserGet(c, &pb.AuthUserGetRequest{Name: "nobody"})
		}},
		{"role add empty name", roleAdd("")},
		{"role add root", roleAdd("root")},
		{"role add root again", roleAdd("root")},
		{"user grant missing role", grantRole("root", "nope")},
		{"grant role to missing user", grantRole("nobody", "root")},
		{"user grant root root", grantRole("root", "root")},
		{"user grant root root again", grantRole("root", "root")},
		{"grant permission to missing role", grantPerm("nope", authpb.READ, "k", "")},
		{"grant permission without key", grantPerm("root", authpb.READ, "", "")},
		{"grant permission with a range end before the key", grantPerm("root", authpb.READ, "b", "a")},
	}
	for _, r := range rbacRoles {
		s = append(s,
			authStep{"role add " + r.role, roleAdd(r.role)},
			authStep{"grant " + r.role, grantPerm(r.role, r.perm, r.key, r.end)})
	}
	s = append(s,
		authStep{"grant rw-prefix once more (overwrites)", grantPerm("rw-prefix", authpb.READWRITE, "p/", "p0")},
		authStep{"revoke a permission not granted", revokePerm("r-key", "nope", "")},
		authStep{"revoke from a missing role", revokePerm("nope", "k1", "")},
		authStep{"revoke a role not granted", revokeRole("root", "r-key")},
		authStep{"revoke from a missing user", revokeRole("nobody", "r-key")},
	)
	for _, u := range rbacUsers {
		s = append(s, authStep{"user add " + u.name, userAdd(u.name, u.name+"pw", false)})
		if u.role != "" {
			s = append(s, authStep{"grant " + u.role + " to " + u.name, grantRole(u.name, u.role)})
		}
	}
	s = append(s,
		authStep{"user list", func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.auth().UserList(c, &pb.AuthUserListRequest{})
		}},
		authStep{"role list", func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.auth().RoleList(c, &pb.AuthRoleListRequest{})
		}},
		authStep{"role get r-open", func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.auth().RoleGet(c, &pb.AuthRoleGetRequest{Role: "r-open"})
		}},
		authStep{"role get missing", func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.auth().RoleGet(c, &pb.AuthRoleGetRequest{Role: "nope"})
		}},
		authStep{"user get root", func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.auth().UserGet(c, &pb.AuthUserGetRequest{Name: "root"})
		}},
		authStep{"put k1", kvPut("k1", "v", 0)},
		authStep{"put k2", kvPut("k2", "v", 0)},
		authStep{"put a1", kvPut("a1", "v", 0)},
		authStep{"put b1", kvPut("b1", "v", 0)},
		authStep{"put c1", kvPut("c1", "v", 0)},
		authStep{"put p/1", kvPut("p/1", "v", 0)},
		authStep{"put z1", kvPut("z1", "v", 0)},
		authStep{"lease grant 0x100", leaseGrant(0x100, 600)},
		authStep{"lease grant 0x200", leaseGrant(0x200, 600)},
		authStep{"lease grant 0x300", leaseGrant(0x300, 600)},
		authStep{"put p/l with 0x100", kvPut("p/l", "v", 0x100)},
		authStep{"put b2 with 0x200", kvPut("b2", "v", 0x200)},
		authStep{"put k3 with 0x300", kvPut("k3", "leased", 0x300)},
		authStep{"put z1 with 0x300", kvPut("z1", "leased", 0x300)},
		authStep{"auth enable", authEnable},
		authStep{"auth enable again", authEnable},
		authStep{"auth status without a token", authStatus},
		authStep{"get without a token", kvRange("k1", "")},
		authStep{"put without a token", kvPut("k1", "x", 0)},
		authStep{"watch without a token", watchCreate("k1", "")},
		authStep{"status without a token", func(c context.Context, e *authEnv) (proto.Message, error) {
			_, err := e.maintenance().Status(c, &pb.StatusRequest{})
			return summary("status ok"), err
		}},
		authStep{"get with a bogus token", asUser("nobody", kvRange("k1", ""))},
		authStep{"put with a bogus token", asUser("nobody", kvPut("k1", "x", 0))},
		authStep{"authenticate a wrong password", login("root", "wrong")},
		authStep{"authenticate a missing user", login("nobody", "pw")},
		authStep{"authenticate an empty name", login("", "pw")},
		authStep{"authenticate a user without password", login("frank", "pw")},
		authStep{"authenticate root", login("root", rootPassword)},
		authStep{"auth status as root", asRoot(authStatus)},
	)
	for _, u := range rbacUsers {
		s = append(s, authStep{"authenticate " + u.name, login(u.name, u.name+"pw")})
	}
	users := append([]rbacUser{{"root", "root"}}, rbacUsers...)
	for i, u := range users {
		s = append(s, matrixOps(u.name, int64(0x1000+i))...)
	}
	s = append(s,
		// leases with keys: revoke needs write on every key attached
		authStep{"alice revokes 0x100 (p/l)", asUser("alice", leaseRevoke(0x100))},
		authStep{"bob revokes 0x300 (k3 z1)", asUser("bob", leaseRevoke(0x300))},
		authStep{"bob revokes 0x200 (b2)", asUser("bob", leaseRevoke(0x200))},
		authStep{"carol revokes 0x100 (p/l)", asUser("carol", leaseRevoke(0x100))},
		authStep{"carol revokes 0x100 again", asUser("carol", leaseRevoke(0x100))},
		authStep{"root revokes 0x300", asRoot(leaseRevoke(0x300))},
		// password change invalidates the user's tokens
		authStep{"alice changes her own password", asUser("alice", func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.auth().UserChangePassword(c, &pb.AuthUserChangePasswordRequest{Name: "alice", Password: "new"})
		})},
		authStep{"root changes alice's password", asRoot(func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.auth().UserChangePassword(c, &pb.AuthUserChangePasswordRequest{Name: "alice", Password: "alicepw2"})
		})},
		authStep{"alice's old token", asUser("alice", kvRange("k1", ""))},
		authStep{"alice authenticates with the old password", login("alice", "alicepw")},
		authStep{"alice authenticates with the new password", login("alice", "alicepw2")},
		authStep{"alice's new token", asUser("alice", kvRange("k1", ""))},
		// revoking a role takes effect on tokens already given
		authStep{"carol reads p/1", asUser("carol", kvRange("p/1", ""))},
		authStep{"root revokes rw-prefix from carol", asRoot(revokeRole("carol", "rw-prefix"))},
		authStep{"carol reads p/1 with the same token", asUser("carol", kvRange("p/1", ""))},
		authStep{"carol writes p/1 with the same token", asUser("carol", kvPut("p/1", "x", 0))},
		authStep{"user get carol", asRoot(func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.auth().UserGet(c, &pb.AuthUserGetRequest{Name: "carol"})
		})},
		authStep{"root grants rw-prefix to carol again", asRoot(grantRole("carol", "rw-prefix"))},
		authStep{"carol reads p/1 again", asUser("carol", kvRange("p/1", ""))},
		// revoking a permission
		authStep{"root revokes p/ from rw-prefix", asRoot(revokePerm("rw-prefix", "p/", "p0"))},
		authStep{"carol reads p/1 without the permission", asUser("carol", kvRange("p/1", ""))},
		authStep{"role get rw-prefix without permissions", asRoot(func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.auth().RoleGet(c, &pb.AuthRoleGetRequest{Role: "rw-prefix"})
		})},
		// a watch on a permitted prefix, then one the role no longer has
		authStep{"dave watches z..", asUser("dave", watchCreate("z", "\x00"))},
		authStep{"dave opens a watch on z.. he keeps", asUser("dave", watchKeep("dave-z", "z", "\x00"))},
		authStep{"root revokes r-open's permission", asRoot(revokePerm("r-open", "z", "\x00"))},
		authStep{"dave watches z.. without the permission", asUser("dave", watchCreate("z", "\x00"))},
		authStep{"root puts z9", asRoot(kvPut("z9", "after-revoke", 0))},
		authStep{"dave's kept watch after the revoke", watchNext("dave-z")},
		// user and role deletion
		authStep{"root deletes eve", asRoot(func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.auth().UserDelete(c, &pb.AuthUserDeleteRequest{Name: "eve"})
		})},
		authStep{"eve's token after her deletion", asUser("eve", kvRange("k1", ""))},
		authStep{"root deletes eve again", asRoot(func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.auth().UserDelete(c, &pb.AuthUserDeleteRequest{Name: "eve"})
		})},
		authStep{"root deletes role r-key", asRoot(func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.auth().RoleDelete(c, &pb.AuthRoleDeleteRequest{Role: "r-key"})
		})},
		authStep{"alice reads k1 after her role's deletion", asUser("alice", kvRange("k1", ""))},
		authStep{"user get alice after her role's deletion", asRoot(func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.auth().UserGet(c, &pb.AuthUserGetRequest{Name: "alice"})
		})},
		authStep{"root deletes role root", asRoot(func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.auth().RoleDelete(c, &pb.AuthRoleDeleteRequest{Role: "root"})
		})},
		authStep{"root revokes root from root", asRoot(revokeRole("root", "root"))},
		authStep{"root deletes root", asRoot(func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.auth().UserDelete(c, &pb.AuthUserDeleteRequest{Name: "root"})
		})},
		authStep{"bob disables auth", asUser("bob", authDisable)},
		authStep{"root disables auth", asRoot(authDisable)},
		authStep{"auth status after disable", authStatus},
		authStep{"get without a token after disable", kvRange("k1", "")},
		authStep{"get with a bogus token after disable", asUser("nobody", kvRange("k1", ""))},
		authStep{"root disables auth again", asRoot(authDisable)},
		authStep{"auth enable once more", authEnable},
		authStep{"get with root's old token", asRoot(kvRange("k1", ""))},
	)
	return s
}

// TestAuthRBACAsEtcd runs rbacScript against etcd 3.6.8 and the server
// under test; every answer must be the same.
func TestAuthRBACAsEtcd(t *testing.T) {
	fast := []string{"--bcrypt-cost", "4"}
	ref := e2etest.Start(t, e2etest.Config{Kind: e2etest.Etcd, Args: fast})
	sut := e2etest.Start(t, e2etest.Config{Args: fast})
	steps := rbacScript()
	want, got := both(func() []string { return runAuthScript(t, newAuthEnv(t, ref), steps) },
		func() []string { return runAuthScript(t, newAuthEnv(t, sut), steps) })
	compareScripts(t, sut.Kind(), steps, want, got)
}
