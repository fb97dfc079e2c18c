package e2e

// troupe answers as etcd 3.6.8 wherever a client reads who it is and how
// it feels: Maintenance.Status, /version, /health, /livez, /readyz (with
// their parameters, and failing), a linearizable MemberList. Each test asks
// etcd 3.6.8 and the server under test the same and compares.

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/troupedb/troupe/e2e/e2etest"
	"github.com/troupedb/troupe/internal/polltest"
)

// probePaths are the health and version requests compared with etcd; a
// check etcd does not know is ignored by ?exclude= (etcd logs it).
var probePaths = []probePath{
	{"GET", "/version"},
	{"GET", "/health"},
	{"GET", "/health?serializable=true"},
	{"GET", "/health?exclude=NOSPACE"},
	{"GET", "/livez"},
	{"GET", "/livez?verbose"},
	{"GET", "/livez?verbose&exclude=serializable_read"},
	{"GET", "/livez/serializable_read?verbose"},
	{"GET", "/readyz"},
	{"GET", "/readyz?verbose"},
	{"GET", "/readyz?verbose=1&exclude=linearizable_read&exclude=nope"},
	{"GET", "/readyz/linearizable_read"},
	{"GET", "/readyz/non_learner?verbose"},
	{"GET", "/readyz/data_corruption?verbose"},
	{"GET", "/readyz/nope"},
	{"POST", "/livez"},
	{"POST", "/readyz/non_learner"},
}

type probePath struct{ method, path string }

// probeAnswer is httpDo's answer with the check lines of /livez and
// /readyz sorted: etcd runs its checks in Go map order, a new one each
// request.
func probeAnswer(t *testing.T, s *e2etest.Server, method, path string) httpAnswer {
	t.Helper()
	a := httpDo(t, method, s.Endpoint()+path)
	lines := strings.SplitAfter(a.body, "\n")
	n := 0
	for n < len(lines) && strings.HasPrefix(lines[n], "[") {
		n++
	}
	slices.Sort(lines[:n])
	a.body = strings.Join(lines, "")
	return a
}

func compareProbes(t *testing.T, etcd, sut *e2etest.Server, what string, paths []probePath) {
	t.Helper()
	for _, r := range paths {
		want := probeAnswer(t, etcd, r.method, r.path)
		got := probeAnswer(t, sut, r.method, r.path)
		if got != want {
			t.Errorf("%s: %s %s: etcd answers %+v, %s answers %+v", what, r.method, r.path, want, sut.Kind(), got)
		}
	}
}

// memberIDs matches a member id where Status prints one.
var memberIDs = regexp.MustCompile(`memberID:\d+`)

// statusOf is s's Maintenance.Status as JSON, with what differs between
// members of different clusters masked: the header's ids and term, the
// leader, the raft indexes and term, the database sizes (required
// non-zero), the member ids in errors.
func statusOf(t *testing.T, s *e2etest.Server) string {
	t.Helper()
	st, err := pb.NewMaintenanceClient(s.Client(t).ActiveConnection()).Status(ctx(t), &pb.StatusRequest{})
	must(t, err)
	if st.Leader == 0 || st.RaftIndex == 0 || st.RaftAppliedIndex == 0 || st.RaftTerm == 0 || st.DbSize == 0 || st.DbSizeInUse == 0 {
		t.Errorf("%s: status has a zero: %v", s.Kind(), st)
	}
	normalize(st.ProtoReflect())
	st.Header.Revision = 0
	st.Leader, st.RaftIndex, st.RaftAppliedIndex, st.RaftTerm, st.DbSize, st.DbSizeInUse = 1, 1, 1, 1, 1, 1
	for i, e := range st.Errors {
		st.Errors[i] = memberIDs.ReplaceAllString(e, "memberID:<id>")
	}
	slices.Sort(st.Errors) // etcd lists alarms in Go map order
	b, err := protojson.Marshal(st)
	must(t, err)
	return string(b)
}

// TestIdentityAsEtcd: a healthy member's Status, /version, /health, /livez
// and /readyz (with verbose, exclude, serializable, a path per check, a
// check that does not exist, a method refused) are etcd 3.6.8's; with a
// backend quota given, Status reports it.
func TestIdentityAsEtcd(t *testing.T) {
	sut, _ := startServer(t)
	etcd := e2etest.Start(t, e2etest.Config{Kind: e2etest.Etcd})
	waitStorageVersions(t, etcd, sut)
	compareProbes(t, etcd, sut, "healthy", probePaths)
	if want, got := statusOf(t, etcd), statusOf(t, sut); got != want {
		t.Errorf("status:\n etcd %s\n %s %s", want, sut.Kind(), got)
	}
	if got := httpDo(t, "GET", sut.Endpoint()+"/version").body; got != `{"etcdserver":"3.6.8","etcdcluster":"3.6.0","storage":"3.6.0"}` {
		t.Errorf("/version = %s", got)
	}
}

// TestIdentityAlarmsAsEtcd: with a NOSPACE alarm (a 1 MiB quota filled)
// and then a CORRUPT one too, /health names the alarm unless ?exclude=
// does, /readyz fails its data_corruption check, and Status lists both
// alarms and the quota, as etcd 3.6.8.
func TestIdentityAlarmsAsEtcd(t *testing.T) {
	quota := []string{"--quota-backend-bytes", "1048576"}
	sut := e2etest.Start(t, e2etest.Config{Args: quota})
	etcd := e2etest.Start(t, e2etest.Config{Kind: e2etest.Etcd, Args: quota})
	waitStorageVersions(t, etcd, sut)
	for _, s := range []*e2etest.Server{etcd, sut} {
		requireErr(t, fillQuota(t, s.Client(t)), rpctypes.ErrGRPCNoSpace)
		waitAlarms(t, s, 1) // etcd may raise it after the refusal
	}
	compareProbes(t, etcd, sut, "NOSPACE", probePaths)
	if want, got := statusOf(t, etcd), statusOf(t, sut); got != want {
		t.Errorf("status with NOSPACE:\n etcd %s\n %s %s", want, sut.Kind(), got)
	}
	for _, s := range []*e2etest.Server{etcd, sut} {
		_, err := pb.NewMaintenanceClient(s.Client(t).ActiveConnection()).Alarm(ctx(t), &pb.AlarmRequest{
			Action: pb.AlarmRequest_ACTIVATE, MemberID: memberID(t, s), Alarm: pb.AlarmType_CORRUPT,
		})
		must(t, err)
	}
	// With two alarms etcd names either in /health (it reads them in Go
	// map order): compare the answers that exclude one.
	var twoAlarms []probePath
	for _, p := range probePaths {
		if !strings.HasPrefix(p.path, "/health") || strings.Contains(p.path, "exclude=") {
			twoAlarms = append(twoAlarms, p)
		}
	}
	twoAlarms = append(twoAlarms, probePath{"GET", "/health?exclude=CORRUPT"}, probePath{"GET", "/health?exclude=CORRUPT&exclude=NOSPACE"})
	compareProbes(t, etcd, sut, "NOSPACE and CORRUPT", twoAlarms)
	if want, got := statusOf(t, etcd), statusOf(t, sut); got != want {
		t.Errorf("status with NOSPACE and CORRUPT:\n etcd %s\n %s %s", want, sut.Kind(), got)
	}
	if a := httpDo(t, "GET", sut.Endpoint()+"/readyz"); a.code != 503 || !strings.Contains(a.body, "[-]data_corruption failed: alarm activated: CORRUPT\n") {
		t.Errorf("/readyz with a CORRUPT alarm: %d %q", a.code, a.body)
	}
}

// waitAlarms waits until s's Status lists n errors (its alarms).
func waitAlarms(t *testing.T, s *e2etest.Server, n int) {
	t.Helper()
	cli := s.Client(t)
	var errs []string
	for range 100 {
		st, err := cli.Status(ctx(t), s.Endpoint())
		must(t, err)
		if errs = st.Errors; len(errs) == n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: status errors %q, want %d", s.Kind(), errs, n)
}

func memberID(t *testing.T, s *e2etest.Server) uint64 {
	t.Helper()
	st, err := s.Client(t).Status(ctx(t), s.Endpoint())
	must(t, err)
	return st.Header.MemberId
}

// TestMemberListLinearizableAsEtcd: MemberList with and without etcd 3.6's
// linearizable option answers the same members and header.
func TestMemberListLinearizableAsEtcd(t *testing.T) {
	sut, _ := startServer(t)
	etcd := e2etest.Start(t, e2etest.Config{Kind: e2etest.Etcd})
	list := func(s *e2etest.Server, linearizable bool) string {
		resp, err := pb.NewClusterClient(s.Client(t).ActiveConnection()).MemberList(ctx(t), &pb.MemberListRequest{Linearizable: linearizable})
		must(t, err)
		normalize(resp.ProtoReflect())
		for _, m := range resp.Members {
			m.ID, m.PeerURLs, m.ClientURLs = 0, nil, nil
		}
		return fmt.Sprint(resp)
	}
	for _, lin := range []bool{false, true} {
		if want, got := list(etcd, lin), list(sut, lin); got != want {
			t.Errorf("linearizable %v: etcd %s, %s %s", lin, want, sut.Kind(), got)
		}
	}
}

// startLearner adds a learner to the one-member cluster of s and starts
// it (etcd's flags, the later ones winning over Start's).
func startLearner(t *testing.T, s *e2etest.Server) *e2etest.Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	peer := "http://" + l.Addr().String()
	_ = l.Close()
	_, err = s.Client(t).MemberAddAsLearner(ctx(t), []string{peer})
	must(t, err)
	return e2etest.Start(t, e2etest.Config{Kind: s.Kind(), Args: []string{
		"--name", "learner", "--initial-cluster-state", "existing",
		"--initial-cluster", s.Name() + "=" + s.PeerURL() + ",learner=" + peer,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
	}})
}

// TestLearnerProbesAsEtcd: on a learner, /readyz fails its non_learner
// check, /livez and /health pass, and Status says it is a learner, as
// etcd 3.6.8 answers.
func TestLearnerProbesAsEtcd(t *testing.T) {
	etcd := startLearner(t, e2etest.Start(t, e2etest.Config{Kind: e2etest.Etcd}))
	sut := startLearner(t, e2etest.Start(t, e2etest.Config{}))
	compareProbes(t, etcd, sut, "learner", []probePath{
		{"GET", "/readyz"}, {"GET", "/readyz?verbose"}, {"GET", "/readyz/non_learner"},
		{"GET", "/readyz?exclude=non_learner"}, {"GET", "/livez?verbose"}, {"GET", "/health"},
	})
	if a := httpDo(t, "GET", sut.Endpoint()+"/readyz/non_learner"); a.code != 503 || a.body != "[-]non_learner failed: not supported for learner\n\n" {
		t.Errorf("/readyz/non_learner on a learner: %d %q", a.code, a.body)
	}
	waitStorageVersions(t, etcd, sut)
	if want, got := statusOf(t, etcd), statusOf(t, sut); got != want {
		t.Errorf("learner status:\n etcd %s\n %s %s", want, sut.Kind(), got)
	}
}

// waitStorageVersions waits until each server's Status reports storage
// version 3.6.0. etcd writes it a little after it applied the cluster
// version (its monitor runs on that change); until then its Status and
// /version say 3.5.0, so a comparison made too early fails under load.
func waitStorageVersions(t *testing.T, servers ...*e2etest.Server) {
	t.Helper()
	for _, s := range servers {
		cli := pb.NewMaintenanceClient(s.Client(t).ActiveConnection())
		polltest.Eventually(t, 15*time.Second, s.Kind()+" storage version 3.6.0", func() (bool, string) {
			st, err := cli.Status(ctx(t), &pb.StatusRequest{})
			if err != nil {
				return false, err.Error()
			}
			return st.StorageVersion == "3.6.0", "storage version " + st.StorageVersion
		})
	}
}

// TestNoLeaderProbesAsEtcd: a member of two whose peer is down has no
// leader: /health says so, /readyz fails its linearizable read after the
// request timeout with "etcdserver: request timed out", while /livez and
// a serializable /health pass, as on etcd 3.6.8.
func TestNoLeaderProbesAsEtcd(t *testing.T) {
	t.Parallel() // mostly waiting out request timeouts; runs beside the other no-leader tests
	_, etcd := aloneMember(t, e2etest.Etcd)
	_, sut := aloneMember(t, e2etest.Kind())
	compareProbes(t, etcd, sut, "no leader", []probePath{
		{"GET", "/health"}, {"GET", "/health?serializable=true"}, {"GET", "/livez?verbose"},
		{"GET", "/readyz?verbose&exclude=linearizable_read"},
		{"GET", "/readyz?verbose"}, {"GET", "/readyz/linearizable_read"},
	})
	if a := probeAnswer(t, sut, "GET", "/readyz/linearizable_read?verbose"); !strings.Contains(a.body, "[-]linearizable_read failed: etcdserver: request timed out") {
		t.Errorf("no leader: /readyz/linearizable_read?verbose answers %+v, want the read's request timeout", a)
	}
}

// aloneMember starts a two-member cluster of kind, kills member 1 and
// returns the cluster and member 0 once /health says it has no leader.
func aloneMember(t *testing.T, kind string) (*e2etest.Cluster, *e2etest.Server) {
	t.Helper()
	c := e2etest.StartCluster(t, e2etest.ClusterConfig{Kind: kind, Size: 2})
	must(t, c.Kill(1))
	s := c.Member(0)
	for range 100 {
		if a := httpDo(t, "GET", s.Endpoint()+"/health"); strings.Contains(a.body, "RAFT NO LEADER") {
			return c, s
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: still a leader 10 s after its peer was killed", kind)
	return nil, nil
}
