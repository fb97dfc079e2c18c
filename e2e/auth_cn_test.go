package e2e

// With --client-cert-auth, a client certificate's common name is the
// user a request without a token runs as, as on etcd 3.6.8: permitted and
// denied requests by CN, a token that overrides the CN, a CN that names
// no user, a user without password, and etcdctl with a certificate.

import (
	"context"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// newAuthEnvTLS is newAuthEnv over TLS, presenting the client certificate
// of cfg.
func newAuthEnvTLS(t *testing.T, s *e2etest.Server, p *pki, c certFiles) *authEnv {
	t.Helper()
	conn, err := grpc.NewClient(strings.TrimPrefix(s.Endpoint(), "https://"), grpc.WithTransportCredentials(credentials.NewTLS(p.tlsConfig(c))))
	must(t, err)
	t.Cleanup(func() { conn.Close() })
	return &authEnv{t: t, s: s, conn: conn, tokens: map[string]string{}, watches: map[string]pb.Watch_WatchClient{}}
}

func cnTranscript(t *testing.T, kind string) []string {
	p := newPKI(t, t.TempDir(), "ca")
	srv := p.localhost("server", "localhost")
	s := e2etest.Start(t, e2etest.Config{Kind: kind, Args: []string{"--bcrypt-cost", "4"},
		ClientTLS: &e2etest.TLS{CertFile: srv.cert, KeyFile: srv.key, TrustedCAFile: p.caFile, ClientCertAuth: true}})
	enableAuth(t, s) // through the harness's client, whose certificate is srv's
	certs := map[string]certFiles{"localhost": srv}
	envs := map[string]*authEnv{}
	for _, cn := range []string{"alice", "root", "frank", "nobody"} {
		certs[cn] = p.localhost(cn, cn)
	}
	for cn, c := range certs {
		envs[cn] = newAuthEnvTLS(t, s, p, c)
	}
	var out []string
	step := func(cn, what string, f func(context.Context, *authEnv) (proto.Message, error)) {
		resp, err := f(ctx(t), envs[cn])
		out = append(out, "CN "+cn+": "+what+": "+answerString(t, resp, err))
	}
	userList := func(c context.Context, e *authEnv) (proto.Message, error) {
		return e.auth().UserList(c, &pb.AuthUserListRequest{})
	}
	step("alice", "get k1", kvRange("k1", ""))
	step("alice", "get k2", kvRange("k2", ""))
	step("alice", "put k1", kvPut("k1", "x", 0))
	step("alice", "txn reading k1", kvTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opRange(&pb.RangeRequest{Key: b("k1")})}}))
	step("alice", "watch k1", watchCreate("k1", ""))
	step("alice", "watch k2", watchCreate("k2", ""))
	step("alice", "user list", userList)
	step("alice", "auth status", authStatus)
	step("root", "user list", userList)
	step("root", "auth status", authStatus)
	step("root", "put k2", kvPut("k2", "v2", 0))
	step("root", "user add frank without password", userAdd("frank", "", true))
	step("root", "grant r-key to frank", grantRole("frank", "r-key"))
	step("frank", "get k1", kvRange("k1", ""))
	step("frank", "get k2", kvRange("k2", ""))
	step("frank", "authenticate with a password", login("frank", "x"))
	step("nobody", "get k1", kvRange("k1", ""))
	step("localhost", "get k1", kvRange("k1", ""))
	step("alice", "authenticate root", login("root", rootPassword))
	step("alice", "user list with root's token", asRoot(userList))
	step("alice", "get k1 with a bogus token", asUser("bogus", kvRange("k1", "")))
	step("root", "revoke r-key from alice", revokeRole("alice", "r-key"))
	step("alice", "get k1 after the revoke", kvRange("k1", ""))
	step("root", "delete user alice", func(c context.Context, e *authEnv) (proto.Message, error) {
		return e.auth().UserDelete(c, &pb.AuthUserDeleteRequest{Name: "alice"})
	})
	step("alice", "get k1 after her deletion", kvRange("k1", ""))
	step("frank", "etcdctl get k1", func(context.Context, *authEnv) (proto.Message, error) {
		return summary("%s", etcdctlAnswerArgs(t, []string{"--endpoints=" + s.Endpoint(), "--cacert", p.caFile, "--cert", certs["frank"].cert, "--key", certs["frank"].key}, "", "get", "k1")), nil
	})
	step("frank", "etcdctl put k1", func(context.Context, *authEnv) (proto.Message, error) {
		return summary("%s", etcdctlAnswerArgs(t, []string{"--endpoints=" + s.Endpoint(), "--cacert", p.caFile, "--cert", certs["frank"].cert, "--key", certs["frank"].key}, "", "put", "k1", "x")), nil
	})
	step("root", "etcdctl user list", func(context.Context, *authEnv) (proto.Message, error) {
		return summary("%s", etcdctlAnswerArgs(t, []string{"--endpoints=" + s.Endpoint(), "--cacert", p.caFile, "--cert", certs["root"].cert, "--key", certs["root"].key}, "", "user", "list")), nil
	})
	return out
}

// TestAuthCNAsEtcd compares cnTranscript.
func TestAuthCNAsEtcd(t *testing.T) {
	compareTranscripts(t, cnTranscript)
}
