package e2e

// Auth in a cluster of three, as etcd 3.6.8: a simple token given by one
// member works on every member (Authenticate goes through raft), auth
// changes made through one member hold on the others, and a restarted
// member keeps users and roles but not the simple tokens it held.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/e2e/e2etest"
	"github.com/troupedb/troupe/internal/polltest"
)

func clusterAuthTranscript(t *testing.T, kind string) []string {
	c := e2etest.StartCluster(t, e2etest.ClusterConfig{Kind: kind, Args: []string{"--bcrypt-cost", "4"}})
	enableAuth(t, c.Member(0))
	envs := make([]*authEnv, c.Size())
	for i := range envs {
		envs[i] = newAuthEnv(t, c.Member(i))
	}
	var out []string
	step := func(i int, what string, f func(context.Context, *authEnv) (proto.Message, error)) {
		resp, err := f(ctx(t), envs[i])
		out = append(out, fmt.Sprintf("member %d: %s: %s", i, what, answerString(t, resp, err)))
	}
	// tokens given by one member, used on the others
	step(0, "authenticate alice", login("alice", "alicepw"))
	step(1, "authenticate root", login("root", rootPassword))
	for i := range envs {
		envs[i].tokens["alice"], envs[i].tokens["root"] = envs[0].tokens["alice"], envs[1].tokens["root"]
	}
	for i := range envs {
		step(i, "alice gets k1", asUser("alice", kvRange("k1", "")))
		step(i, "alice gets k1 serializable", asUser("alice", func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.kv().Range(c, &pb.RangeRequest{Key: b("k1"), Serializable: true})
		}))
		step(i, "alice gets k2", asUser("alice", kvRange("k2", "")))
		step(i, "alice puts k1", asUser("alice", kvPut("k1", "x", 0)))
		step(i, "root lists users", asRoot(func(c context.Context, e *authEnv) (proto.Message, error) {
			return e.auth().UserList(c, &pb.AuthUserListRequest{})
		}))
	}
	// an auth change through one member holds on all
	step(2, "root grants a permission of type 3 (none)", asRoot(grantPerm("r-key", 3, "k9", "")))
	step(2, "root grants alice write on k1", asRoot(grantPerm("r-key", authpb.READWRITE, "k1", "")))
	step(0, "role get r-key", asRoot(func(c context.Context, e *authEnv) (proto.Message, error) {
		return e.auth().RoleGet(c, &pb.AuthRoleGetRequest{Role: "r-key"})
	}))
	for i := range envs {
		step(i, "alice puts k1 after the grant", asUser("alice", kvPut("k1", fmt.Sprintf("by-%d", i), 0)))
	}
	step(1, "root revokes r-key from alice", asRoot(revokeRole("alice", "r-key")))
	for i := range envs {
		step(i, "alice gets k1 after the revoke", asUser("alice", kvRange("k1", "")))
	}
	step(0, "root changes alice's password", asRoot(func(c context.Context, e *authEnv) (proto.Message, error) {
		return e.auth().UserChangePassword(c, &pb.AuthUserChangePasswordRequest{Name: "alice", Password: "alicepw2"})
	}))
	for i := range envs {
		step(i, "alice's token after the password change", asUser("alice", kvRange("k1", "")))
	}
	// a restarted member keeps the auth store, not its simple tokens
	if err := c.Restart(2); err != nil {
		t.Fatalf("%s: restart member 2: %v", kind, err)
	}
	envs[2] = newAuthEnv(t, c.Member(2))
	envs[2].tokens["root"] = envs[1].tokens["root"]
	step(2, "root's old token after the restart", asRoot(kvRange("k1", "")))
	step(2, "authenticate alice with the new password", login("alice", "alicepw2"))
	step(2, "authenticate root", login("root", rootPassword))
	step(2, "root gets k1", asRoot(kvRange("k1", "")))
	step(2, "auth status", asRoot(authStatus))
	step(2, "user get alice", asRoot(func(c context.Context, e *authEnv) (proto.Message, error) {
		return e.auth().UserGet(c, &pb.AuthUserGetRequest{Name: "alice"})
	}))
	step(0, "root's token from before member 2's restart", asRoot(kvRange("k1", "")))
	return out
}

// TestAuthClusterAsEtcd compares clusterAuthTranscript.
func TestAuthClusterAsEtcd(t *testing.T) {
	compareTranscripts(t, clusterAuthTranscript)
}

// leaseExpiryAuthTranscript: with auth on, a lease that expires is revoked
// by the member itself (etcd's lessor acts as root) and its keys go, on
// every member, though no client user could delete them.
func leaseExpiryAuthTranscript(t *testing.T, kind string) []string {
	c := e2etest.StartCluster(t, e2etest.ClusterConfig{Kind: kind, Args: []string{"--bcrypt-cost", "4"}})
	enableAuth(t, c.Member(0))
	e := newAuthEnv(t, c.Member(1))
	var out []string
	add := func(what string, m proto.Message, err error) { out = append(out, what+": "+answerString(t, m, err)) }
	m, err := e.authenticate(ctx(t), "root", rootPassword)
	add("authenticate root", m, err)
	m, err = asRoot(leaseGrant(0x77, 2))(ctx(t), e)
	add("grant a 2 s lease", m, err)
	m, err = asRoot(kvPut("leased", "v", 0x77))(ctx(t), e)
	add("put a key with it", m, err)
	for i := range c.Size() {
		ei := newAuthEnv(t, c.Member(i))
		ei.tokens["root"] = e.tokens["root"]
		var last string
		polltest.Eventually(t, 15*time.Second, fmt.Sprintf("%s member %d: the leased key goes", kind, i), func() (bool, string) {
			m, err := asRoot(kvRange("leased", ""))(ctx(t), ei)
			if err != nil {
				t.Fatalf("%s member %d: get leased: %v", kind, i, err)
			}
			last = answerString(t, m, err)
			return len(m.(*pb.RangeResponse).Kvs) == 0, last
		})
		out = append(out, fmt.Sprintf("member %d: the leased key after expiry: %s", i, last))
		m, err = asRoot(leaseTTLKeys(0x77))(ctx(t), ei)
		out = append(out, fmt.Sprintf("member %d: the lease after expiry: %s", i, answerString(t, m, err)))
	}
	return out
}

// TestAuthLeaseExpiryAsEtcd compares leaseExpiryAuthTranscript.
func TestAuthLeaseExpiryAsEtcd(t *testing.T) {
	compareTranscripts(t, leaseExpiryAuthTranscript)
}
