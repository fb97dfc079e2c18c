package e2etest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/troupedb/troupe/internal/bench"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Bounds on cluster-wide waits.
const (
	leaderTimeout   = 30 * time.Second
	clusterPollStep = 50 * time.Millisecond
)

// ClusterConfig describes a cluster of members started as real processes on
// 127.0.0.1. The zero value starts three members of the kind selected by
// Kind.
type ClusterConfig struct {
	Kind string   // Troupe, Etcd or Etcd34; empty means Kind()
	Size int      // number of members; 0 means 3
	Env  []string // extra environment for every member, "K=V"
	Args []string // extra command-line flags for every member
	// SnapshotCount, if > 0, is passed as --snapshot-count.
	SnapshotCount int
	// Token is --initial-cluster-token; empty means one unique to the test.
	Token string
	// EtcdFlagsOnly starts troupe members with etcd's flags alone (no
	// --listen-actor-url): each member's actor API then listens at its
	// client port minus one, which the cluster keeps free.
	EtcdFlagsOnly bool
	// ClientTLS and PeerTLS put every member's client and peer URLs on
	// https with etcd's TLS flags (the same files for every member, so one
	// certificate names 127.0.0.1 for all); nil leaves them on http.
	ClientTLS, PeerTLS *TLS
}

// Cluster is a set of members started together with one --initial-cluster.
// Its methods that change processes return errors instead of failing the
// test, so that they can be called from any goroutine (a chaos schedule, for
// example); the ones taking a testing.TB fail it.
type Cluster struct {
	t         testing.TB
	kind      string
	members   []*Server
	clientTLS *TLS
	initial   []string // --initial-cluster entries, name=peerURL

	mu     sync.Mutex
	paused map[int]bool
}

// StartCluster starts cfg.Size members on fresh free ports and data dirs and
// waits until every member serves linearizable reads (which needs a leader).
// Cleanup stops every member and dumps their logs if the test failed.
func StartCluster(t testing.TB, cfg ClusterConfig) *Cluster {
	t.Helper()
	c, err := launchCluster(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func launchCluster(t testing.TB, cfg ClusterConfig) (*Cluster, error) {
	kind := cfg.Kind
	if kind == "" {
		kind = Kind()
	}
	bin, err := binary(kind)
	if err != nil {
		return nil, err
	}
	size := cfg.Size
	if size <= 0 {
		size = 3
	}
	ports, err := bench.FreePorts(3 * size)
	if err != nil {
		return nil, err
	}
	if cfg.EtcdFlagsOnly {
		for i := range size {
			// The actor API derives its port from the client port.
			if ports[3*i+2], err = freePair(ports[3*i+2], ports); err != nil {
				return nil, err
			}
			ports[3*i] = ports[3*i+2] + 1
		}
	}
	token := cfg.Token
	if token == "" {
		token = fmt.Sprintf("e2e-%d-%d", os.Getpid(), ports[0])
	}
	names := make([]string, size)
	peers := make([]string, size)
	initial := make([]string, size)
	for i := range size {
		names[i] = fmt.Sprintf("m%d", i)
		peers[i] = fmt.Sprintf("%s://127.0.0.1:%d", cfg.PeerTLS.scheme(), ports[3*i+1])
		initial[i] = names[i] + "=" + peers[i]
	}
	c := &Cluster{t: t, kind: kind, paused: map[int]bool{}, clientTLS: cfg.ClientTLS, initial: initial}
	root := t.TempDir()
	for i := range size {
		client := fmt.Sprintf("%s://127.0.0.1:%d", cfg.ClientTLS.scheme(), ports[3*i])
		dataDir := filepath.Join(root, names[i]+".data")
		args := memberArgs(names[i], dataDir, client, peers[i], initial, token)
		if cfg.SnapshotCount > 0 {
			args = append(args, "--snapshot-count", strconv.Itoa(cfg.SnapshotCount))
		}
		var actorAddr string
		if kind == Troupe {
			actorAddr = fmt.Sprintf("127.0.0.1:%d", ports[3*i+2])
			args = append([]string{"serve"}, args...)
			if !cfg.EtcdFlagsOnly {
				args = append(args, "--listen-actor-url", actorAddr)
			}
		}
		args = append(args, cfg.ClientTLS.clientArgs()...)
		args = append(args, cfg.PeerTLS.peerArgs()...)
		args = append(args, cfg.Args...)
		c.members = append(c.members, &Server{
			t: t, kind: kind, name: names[i], bin: bin, args: args, actorAddr: actorAddr,
			env:       append(os.Environ(), cfg.Env...),
			dataDir:   dataDir,
			logPath:   filepath.Join(root, names[i]+".log"),
			clientURL: client,
			clientTLS: cfg.ClientTLS,
		})
	}
	// One cleanup for the whole cluster, registered before any process
	// starts: resume paused members, kill all of them, then dump every log
	// if the test failed.
	t.Cleanup(c.cleanup)
	for _, m := range c.members {
		if err := m.startProcess(); err != nil {
			return nil, err
		}
	}
	if err := c.waitAllReady(); err != nil {
		return nil, err
	}
	return c, nil
}

// binary returns the executable for kind (shared with launch).
func binary(kind string) (string, error) {
	switch kind {
	case Troupe:
		return TroupeBinary()
	case Etcd:
		return EtcdBinary()
	case Etcd34:
		return Etcd34Binary()
	default:
		return "", fmt.Errorf("e2etest: unknown server kind %q (want %s, %s or %s)", kind, Troupe, Etcd, Etcd34)
	}
}

// waitAllReady waits for every member concurrently: each needs a quorum of
// the others to answer a linearizable read.
func (c *Cluster) waitAllReady() error {
	errs := make([]error, len(c.members))
	var wg sync.WaitGroup
	for i, m := range c.members {
		wg.Go(func() { errs[i] = m.waitReady() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Kind reports whether the members are Troupe, Etcd or Etcd34.
func (c *Cluster) Kind() string { return c.kind }

// Size is the number of members.
func (c *Cluster) Size() int { return len(c.members) }

// Members returns the members in start order; index i is member "m<i>".
func (c *Cluster) Members() []*Server { return c.members }

// Member returns member i.
func (c *Cluster) Member(i int) *Server { return c.members[i] }

// Endpoints returns every member's client URL, indexed like Members.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = m.Endpoint()
	}
	return eps
}

// Client returns a client balancing over every member's endpoint, closed at
// cleanup.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return c.clientFor(t, c.Endpoints())
}

// MemberClient returns a client talking to member i only, closed at
// cleanup.
func (c *Cluster) MemberClient(t testing.TB, i int) *clientv3.Client {
	t.Helper()
	return c.clientFor(t, []string{c.members[i].Endpoint()})
}

func (c *Cluster) clientFor(t testing.TB, eps []string) *clientv3.Client {
	t.Helper()
	cli, err := newClient(eps, c.clientTLS, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// ClientTLS is the members' client side TLS (nil: http).
func (c *Cluster) ClientTLS() *TLS { return c.clientTLS }

// InitialCluster is the --initial-cluster value the members started with
// (name=peerURL,...), for a member joining with --initial-cluster-state
// existing.
func (c *Cluster) InitialCluster() string { return strings.Join(c.initial, ",") }

// Leader returns the index of the member that is leader, waiting (bounded)
// until the live members agree on one. It fails the test otherwise.
func (c *Cluster) Leader(t testing.TB) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), leaderTimeout)
	defer cancel()
	i, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// WaitLeader polls Status on every live, unpaused member until all of them
// name the same leader and that leader is one of them, and returns its
// index.
func (c *Cluster) WaitLeader(ctx context.Context) (int, error) {
	return c.waitLeaderAmong(ctx, nil)
}

// waitLeaderAmong is WaitLeader that also leaves out the members skip
// reports (nil: none).
func (c *Cluster) waitLeaderAmong(ctx context.Context, skip func(i int) bool) (int, error) {
	var last error
	for {
		i, err := c.leaderAmong(ctx, skip)
		if err == nil {
			return i, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("e2etest: no leader: %w (last: %v)", ctx.Err(), last)
		case <-time.After(clusterPollStep):
		}
	}
}

// LeaderOnce asks every live, unpaused member for its Status once and
// returns the index of the leader they agree on.
func (c *Cluster) LeaderOnce(ctx context.Context) (int, error) {
	return c.leaderAmong(ctx, nil)
}

// leaderAmong is LeaderOnce that also leaves out the members skip reports
// (nil: none).
func (c *Cluster) leaderAmong(ctx context.Context, skip func(i int) bool) (int, error) {
	byID := map[uint64]int{}
	var leaders []uint64
	for i, m := range c.members {
		if !m.Alive() || c.Paused(i) || (skip != nil && skip(i)) {
			continue
		}
		st, err := c.status(ctx, i)
		if err != nil {
			return -1, fmt.Errorf("status of %s: %w", m.Name(), err)
		}
		byID[st.Header.MemberId] = i
		leaders = append(leaders, st.Leader)
	}
	if len(leaders) == 0 {
		return -1, errors.New("no live, reachable member")
	}
	for _, l := range leaders {
		if l != leaders[0] || l == 0 {
			return -1, fmt.Errorf("members disagree on the leader: %x", leaders)
		}
	}
	i, ok := byID[leaders[0]]
	if !ok {
		return -1, fmt.Errorf("leader %x is not a live, reachable member", leaders[0])
	}
	return i, nil
}

func (c *Cluster) status(ctx context.Context, i int) (*clientv3.StatusResponse, error) {
	m := c.members[i]
	cli, err := m.newClient(time.Second)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return cli.Status(sctx, m.Endpoint())
}

// Alive reports whether member i's process runs (paused counts as alive).
func (c *Cluster) Alive(i int) bool { return c.members[i].Alive() }

// Paused reports whether member i was stopped with Pause and not resumed.
func (c *Cluster) Paused(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.paused[i]
}

// Log returns everything member i printed so far, over all its runs.
func (c *Cluster) Log(i int) string { return c.members[i].Log() }

// Kill sends SIGKILL to member i and waits for it to exit.
func (c *Cluster) Kill(i int) error {
	c.resumeIfPaused(i)
	if !c.members[i].signalAndWait(syscall.SIGKILL, stopTimeout) {
		return fmt.Errorf("e2etest: %s did not exit %v after SIGKILL", c.members[i].Name(), stopTimeout)
	}
	return nil
}

// Stop sends SIGTERM to member i and waits for it to exit; after stopTimeout
// it kills it and returns an error.
func (c *Cluster) Stop(i int) error {
	c.resumeIfPaused(i)
	m := c.members[i]
	if !m.signalAndWait(syscall.SIGTERM, stopTimeout) {
		m.signalAndWait(syscall.SIGKILL, stopTimeout)
		return fmt.Errorf("e2etest: %s did not exit %v after SIGTERM; killed", m.Name(), stopTimeout)
	}
	return nil
}

// Restart starts member i again with the same flags and data dir (etcd and
// troupe ignore the --initial-cluster* flags once the data dir holds a
// member), stopping it first with SIGTERM if it still runs, and waits until
// it serves linearizable reads.
func (c *Cluster) Restart(i int) error {
	return c.RestartEnv(i, nil)
}

// RestartEnv is Restart with extra environment for this run only (for
// example TROUPE_FAILPOINTS=...); later restarts use the configured
// environment again.
func (c *Cluster) RestartEnv(i int, env []string) error {
	m := c.members[i]
	if m.Alive() {
		if err := c.Stop(i); err != nil {
			return err
		}
	}
	base := m.env
	m.env = append(append([]string(nil), base...), env...)
	err := m.startProcess()
	m.env = base
	if err != nil {
		return err
	}
	return m.waitReady()
}

// Pause stops member i with SIGSTOP: it neither answers peers nor clients
// nor notices time passing, a cheap partition of the member.
func (c *Cluster) Pause(i int) error {
	pid := c.members[i].PID()
	if pid == 0 {
		return fmt.Errorf("e2etest: %s is not running", c.members[i].Name())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return err
	}
	c.paused[i] = true
	return nil
}

// Resume continues member i after Pause with SIGCONT.
func (c *Cluster) Resume(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.paused, i)
	pid := c.members[i].PID()
	if pid == 0 {
		return nil
	}
	return syscall.Kill(pid, syscall.SIGCONT)
}

func (c *Cluster) resumeIfPaused(i int) {
	if c.Paused(i) {
		_ = c.Resume(i)
	}
}

// cleanup kills every member: a graceful stop of a whole cluster costs
// seconds per test (a stopping etcd leader first tries to hand leadership to
// followers that are stopping too), the data dirs are thrown away anyway,
// and graceful stops are what Stop and the single-server tests check.
func (c *Cluster) cleanup() {
	for i, m := range c.members {
		c.resumeIfPaused(i)
		m.signalAndWait(syscall.SIGKILL, stopTimeout)
	}
	if c.t.Failed() {
		for _, m := range c.members {
			c.t.Logf("e2etest: member %s (%s) log (%s), tail:\n%s", m.Name(), c.kind, m.LogPath(), m.logTail())
		}
	}
}

// memberArgs are the flags of a new cluster's member, the same for troupe
// and etcd.
func memberArgs(name, dataDir, clientURL, peerURL string, initial []string, token string) []string {
	return []string{
		"--name", name,
		"--data-dir", dataDir,
		"--listen-client-urls", clientURL,
		"--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL,
		"--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", strings.Join(initial, ","),
		"--initial-cluster-state", "new",
		"--initial-cluster-token", token,
	}
}
