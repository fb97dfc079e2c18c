package e2e

// Helpers of the auth differential tests: a raw gRPC connection whose
// calls carry a user's token, a script of steps run against etcd 3.6.8
// and the server under test, and the masking of what differs between two
// members for reasons of their own (tokens, member ids, ports).

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// authEnv is one server seen by raw gRPC clients: one connection, whose
// calls carry the token of the user they run as.
type authEnv struct {
	t       *testing.T
	s       *e2etest.Server
	conn    *grpc.ClientConn
	tokens  map[string]string               // user -> token of its last Authenticate
	watches map[string]pb.Watch_WatchClient // streams kept open across steps
}

func newAuthEnv(t *testing.T, s *e2etest.Server) *authEnv {
	t.Helper()
	conn, err := grpc.NewClient(strings.TrimPrefix(s.Endpoint(), "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(t, err)
	t.Cleanup(func() { conn.Close() })
	return &authEnv{t: t, s: s, conn: conn, tokens: map[string]string{}, watches: map[string]pb.Watch_WatchClient{}}
}

// as returns a context whose calls carry user's token; "" carries none, and
// a user never authenticated carries the token "bogus.1".
func (e *authEnv) as(c context.Context, user string) context.Context {
	if user == "" {
		return c
	}
	tok, ok := e.tokens[user]
	if !ok {
		tok = "bogus.1"
	}
	return metadata.AppendToOutgoingContext(c, rpctypes.TokenFieldNameGRPC, tok)
}

func (e *authEnv) kv() pb.KVClient                   { return pb.NewKVClient(e.conn) }
func (e *authEnv) auth() pb.AuthClient               { return pb.NewAuthClient(e.conn) }
func (e *authEnv) lease() pb.LeaseClient             { return pb.NewLeaseClient(e.conn) }
func (e *authEnv) watch() pb.WatchClient             { return pb.NewWatchClient(e.conn) }
func (e *authEnv) maintenance() pb.MaintenanceClient { return pb.NewMaintenanceClient(e.conn) }
func (e *authEnv) cluster() pb.ClusterClient         { return pb.NewClusterClient(e.conn) }

// authenticate runs Authenticate for user and keeps the token for as; the
// answer shows the token masked.
func (e *authEnv) authenticate(c context.Context, user, password string) (proto.Message, error) {
	resp, err := e.auth().Authenticate(c, &pb.AuthenticateRequest{Name: user, Password: password})
	if err != nil {
		return nil, err
	}
	e.tokens[user] = resp.Token
	resp.Token = maskToken(resp.Token)
	return resp, nil
}

// simpleToken is etcd's simple token: 16 letters, a dot, the raft index.
var simpleToken = regexp.MustCompile(`^[a-zA-Z]{16}\.[0-9]+$`)

// maskToken keeps the shape of a token, not its value: simple tokens
// differ in their random letters and the index, JWTs in their signature.
func maskToken(tok string) string {
	switch {
	case tok == "":
		return ""
	case simpleToken.MatchString(tok):
		return "<simple>"
	case strings.Count(tok, ".") == 2:
		return "<jwt>"
	}
	return "<other:" + tok + ">"
}

// authStep is one request of an auth script, run as a user.
type authStep struct {
	name string
	do   func(context.Context, *authEnv) (proto.Message, error)
}

// runAuthScript runs steps against e and returns one answer per step.
func runAuthScript(t *testing.T, e *authEnv, steps []authStep) []string {
	t.Helper()
	out := make([]string, 0, len(steps))
	for _, st := range steps {
		resp, err := st.do(ctx(t), e)
		out = append(out, answerString(t, resp, err))
	}
	return out
}

// compareScripts fails the test for each step whose answers differ (at
// most max reported); with E2E_DIFF_DUMP set it logs etcd's answers.
func compareScripts(t *testing.T, kind string, steps []authStep, want, got []string) {
	t.Helper()
	bad := 0
	for i := range want {
		if d, ok := authDivergences[steps[i].name]; ok && kind == e2etest.Troupe {
			// protojson spaces its output at random per binary
			if !strings.Contains(strings.Join(strings.Fields(got[i]), " "), d.answer) {
				bad++
				t.Errorf("step %d %q: troupe answers\n%s\nwant an answer with %q (%s; etcd 3.6.8 answers\n%s)", i, steps[i].name, got[i], d.answer, d.why, want[i])
			}
			continue
		}
		if got[i] != want[i] {
			bad++
			if bad <= 40 {
				t.Errorf("step %d %q differs:\n--- etcd\n%s\n--- %s\n%s", i, steps[i].name, want[i], kind, got[i])
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d steps differ", bad, len(steps))
	}
	if dumpAnswers() {
		for i := range want {
			t.Logf("step %d %q:\n%s", i, steps[i].name, strings.TrimSpace(want[i]))
		}
	}
}

// summary wraps a text answer (a masked or summarized response) so it
// goes through answerString like a response.
func summary(format string, args ...any) proto.Message {
	return wrapperspb.String(fmt.Sprintf(format, args...))
}

// membersSummary is what a member list says that is the same on two
// single-member clusters: names, learner flags and how many peer and
// client URLs each member has.
func membersSummary(ms []*pb.Member) string {
	var parts []string
	for _, m := range ms {
		parts = append(parts, fmt.Sprintf("{name=%q learner=%v peers=%d clients=%d}", m.Name, m.IsLearner, len(m.PeerURLs), len(m.ClientURLs)))
	}
	slices.Sort(parts) // ordered by random member ids
	return strings.Join(parts, " ")
}

// dumpAnswers reports whether E2E_DIFF_DUMP asks to log the reference's
// answers.
func dumpAnswers() bool { return os.Getenv("E2E_DIFF_DUMP") != "" }

// authDivergence is where troupe answers otherwise than etcd 3.6.8 on
// purpose: its answer must contain answer.
type authDivergence struct{ why, answer string }

const permissionDenied = `error code=PermissionDenied message="etcdserver: permission denied"`

// authDivergences, by step name.
var authDivergences = func() map[string]authDivergence {
	nested := authDivergence{
		"etcd 3.6.8 checks no operation of a nested txn (CheckTxnAuth skips RequestOp_RequestTxn), so any user may read and write " +
			"any key through one; troupe checks them as etcd's main branch does (server/etcdserver/apply/auth.go)",
		permissionDenied,
	}
	return map[string]authDivergence{
		"alice: txn nested": nested, "bob: txn nested": nested, "carol: txn nested": nested,
		"dave: txn nested": nested, "eve: txn nested": nested,
		"dave's kept watch after the revoke": {
			"etcd checks a watch's permission only at create; troupe cancels a watch whose user lost the permission (issue 9)",
			`"cancelReason": "rpc error: code = PermissionDenied desc = etcdserver: permission denied"`,
		},
	}
}()

// both runs ref and sut at once (each side is mostly waiting on its
// server) and returns their results; a t.Fatal in either ends only that
// goroutine, with the test failed.
func both[T any](ref, sut func() T) (want, got T) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); want = ref() }()
	go func() { defer wg.Done(); got = sut() }()
	wg.Wait()
	return want, got
}
