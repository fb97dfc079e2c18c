// Package e2etest starts a single-member etcd-compatible server as a real
// process for end-to-end tests: troupe (built once per test binary from
// ./cmd/troupe), real etcd 3.6.8 (the reference, see EnvEtcd36) or Debian's
// etcd 3.4 (a source of 3.4 data), chosen by -e2e.server=troupe|etcd|etcd34
// or the TROUPE_E2E_SERVER environment variable (the flag wins; default
// troupe).
//
// Config.ClientTLS and Config.PeerTLS (ClusterConfig's too) put a member's
// client and peer URLs on https with etcd's TLS flags; the harness's own
// clients (the ready check, Client, etcdctl's flags from EtcdctlArgs) then
// use the CA and client certificate they name.
//
// Every server gets free ports on 127.0.0.1 and a data dir of its own; its
// stdout and stderr go to a log file whose tail is dumped when the test fails.
// Cleanup is registered with t.Cleanup, so tests never stop servers by hand
// unless the stop is what they test.
package e2etest

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/troupedb/troupe/internal/bench"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Server kinds.
const (
	Troupe = "troupe"
	Etcd   = "etcd"   // etcd 3.6.8, the reference
	Etcd34 = "etcd34" // Debian's etcd 3.4, for 3.4 data
)

// EnvServer names the environment variable that selects the server kind when
// -e2e.server is not given.
const EnvServer = "TROUPE_E2E_SERVER"

var serverFlag = flag.String("e2e.server", "", "server under test: troupe, etcd (3.6.8) or etcd34 (default $"+EnvServer+", else troupe)")

// Bounds on waiting for a process; generous for a loaded 2-core machine.
const (
	readyTimeout = 30 * time.Second
	stopTimeout  = 15 * time.Second
	logTailBytes = 64 << 10
)

// Kind returns the server kind selected for this test binary.
func Kind() string {
	k := *serverFlag
	if k == "" {
		k = os.Getenv(EnvServer)
	}
	if k == "" {
		k = Troupe
	}
	return k
}

// Config describes one server to start. The zero value starts the kind
// selected by Kind on a fresh temp data dir.
type Config struct {
	Kind    string   // Troupe, Etcd or Etcd34; empty means Kind()
	DataDir string   // empty means a new t.TempDir()
	Env     []string // extra environment, "K=V"
	Args    []string // extra command-line flags
	// ClientTLS and PeerTLS put the client and peer URLs on https with
	// etcd's TLS flags; nil leaves them on http.
	ClientTLS, PeerTLS *TLS
}

// Server is one running (or stopped) server process.
type Server struct {
	t       testing.TB
	kind    string
	name    string
	bin     string
	args    []string
	env     []string
	dataDir string
	logPath string

	clientURL string
	clientTLS *TLS   // nil: plain http
	actorAddr string // troupe's actor API, host:port; empty for etcd

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current process has exited
	werr error
}

// Start starts a server as described by cfg and waits until it serves
// clients. It fails the test if the server does not become ready in time.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := launch(t, cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Spawn starts a server as described by cfg without waiting for it to
// serve, for tests of a server that must refuse to start or to join: they
// watch it with Alive, WaitExit and Log.
func Spawn(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := launch(t, cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func launch(t testing.TB, cfg Config, wait bool) (*Server, error) {
	kind := cfg.Kind
	if kind == "" {
		kind = Kind()
	}
	bin, err := binary(kind)
	if err != nil {
		return nil, err
	}
	dataDir := cfg.DataDir
	if dataDir == "" {
		dataDir = filepath.Join(t.TempDir(), "data")
	}
	ports, err := bench.FreePorts(3)
	if err != nil {
		return nil, err
	}
	name := "e2e"
	client := fmt.Sprintf("%s://127.0.0.1:%d", cfg.ClientTLS.scheme(), ports[0])
	peer := fmt.Sprintf("%s://127.0.0.1:%d", cfg.PeerTLS.scheme(), ports[1])
	args := []string{
		"--name", name,
		"--data-dir", dataDir,
		"--listen-client-urls", client,
		"--advertise-client-urls", client,
		"--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer,
		"--initial-cluster", name + "=" + peer,
	}
	var actorAddr string
	if kind == Troupe {
		actorAddr = fmt.Sprintf("127.0.0.1:%d", ports[2])
		args = append([]string{"serve"}, args...)
		args = append(args, "--listen-actor-url", actorAddr)
	}
	args = append(args, cfg.ClientTLS.clientArgs()...)
	args = append(args, cfg.PeerTLS.peerArgs()...)
	args = append(args, cfg.Args...)
	logDir := t.TempDir()
	s := &Server{
		t: t, kind: kind, name: name, bin: bin, args: args, actorAddr: actorAddr,
		env:       append(os.Environ(), cfg.Env...),
		dataDir:   dataDir,
		logPath:   filepath.Join(logDir, kind+".log"),
		clientURL: client,
		clientTLS: cfg.ClientTLS,
	}
	t.Cleanup(s.cleanup)
	if err := s.startProcess(); err != nil {
		return nil, err
	}
	if !wait {
		return s, nil
	}
	if err := s.waitReady(); err != nil {
		return nil, err
	}
	return s, nil
}

// Kind reports whether this is Troupe, Etcd or Etcd34.
func (s *Server) Kind() string { return s.kind }

// Name is the member name.
func (s *Server) Name() string { return s.name }

// Endpoint is the client URL, e.g. http://127.0.0.1:23790 (https with
// ClientTLS).
func (s *Server) Endpoint() string { return s.clientURL }

// ClientTLS is the client side TLS the server was started with (nil: http).
func (s *Server) ClientTLS() *TLS { return s.clientTLS }

// EtcdctlArgs are etcdctl's flags to reach the server: --endpoints and,
// with ClientTLS, --cacert/--cert/--key.
func (s *Server) EtcdctlArgs() []string {
	return append([]string{"--endpoints=" + s.clientURL}, s.clientTLS.EtcdctlArgs()...)
}

// PeerURL is the advertised peer URL.
func (s *Server) PeerURL() string {
	for i, a := range s.args {
		if a == "--initial-advertise-peer-urls" {
			return s.args[i+1]
		}
	}
	return ""
}

// DataDir is the server's data directory; it survives Kill and Restart.
func (s *Server) DataDir() string { return s.dataDir }

// ActorAddress returns troupe's actor API address (host:port), or "" for
// etcd, which has none.
func (s *Server) ActorAddress() string { return s.actorAddr }

// LogPath is the file holding the server's stdout and stderr of every run.
func (s *Server) LogPath() string { return s.logPath }

// Log returns everything the server printed so far, over all runs.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// PID returns the pid of the current process, or 0 if it is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil || s.exited() {
		return 0
	}
	return s.cmd.Process.Pid
}

// Alive reports whether the current process is still running.
func (s *Server) Alive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil && !s.exited()
}

func (s *Server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *Server) startProcess() error {
	f, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "=== e2etest: %s %s\n", s.bin, strings.Join(s.args, " "))
	cmd := exec.Command(s.bin, s.args...)
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("e2etest: start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.done, s.werr = cmd, done, nil
	s.mu.Unlock()
	go func() {
		werr := cmd.Wait()
		f.Close()
		s.mu.Lock()
		s.werr = werr
		s.mu.Unlock()
		close(done)
	}()
	return nil
}

// waitReady polls Get until it succeeds (or a learner or auth refuses it), the
// process exits or readyTimeout.
func (s *Server) waitReady() error {
	cli, err := s.newClient(2 * time.Second)
	if err != nil {
		return err
	}
	defer cli.Close()
	deadline := time.Now().Add(readyTimeout)
	var last error
	for time.Now().Before(deadline) {
		if !s.Alive() {
			return fmt.Errorf("e2etest: %s exited before serving clients (%v); log:\n%s", s.kind, s.waitErr(), s.logTail())
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, last = cli.Get(ctx, "e2etest-ready")
		cancel()
		// a learner refuses a linearizable read, and so shows it serves;
		// so does a member with auth enabled, to a client without a user
		if last == nil || strings.Contains(last.Error(), "rpc not supported for learner") || strings.Contains(last.Error(), "user name is empty") {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("e2etest: %s not ready after %v: %v; log:\n%s", s.kind, readyTimeout, last, s.logTail())
}

func (s *Server) waitErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.werr
}

// Kill sends SIGKILL and waits for the process to exit.
func (s *Server) Kill() {
	s.t.Helper()
	s.signalAndWait(syscall.SIGKILL, stopTimeout)
}

// Stop sends SIGTERM and waits for exit; after stopTimeout it kills the
// process and fails the test.
func (s *Server) Stop() {
	s.t.Helper()
	if !s.signalAndWait(syscall.SIGTERM, stopTimeout) {
		s.t.Errorf("e2etest: %s did not exit %v after SIGTERM; killed", s.kind, stopTimeout)
		s.signalAndWait(syscall.SIGKILL, stopTimeout)
	}
}

func (s *Server) signalAndWait(sig syscall.Signal, d time.Duration) bool {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return true
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// Restart starts the server again on the same data dir and ports after Kill
// or Stop (stopping it first with SIGTERM if it still runs) and waits until
// it serves clients.
func (s *Server) Restart() {
	s.t.Helper()
	s.Relaunch()
	if err := s.waitReady(); err != nil {
		s.t.Fatal(err)
	}
}

// Relaunch starts the server again like Restart (stopping it first if it
// runs) but does not wait for it to serve: for a start that must fail,
// watched with WaitExit and Log.
func (s *Server) Relaunch() {
	s.t.Helper()
	if s.Alive() {
		s.Stop()
	}
	if err := s.startProcess(); err != nil {
		s.t.Fatal(err)
	}
}

// ExitError returns the result of the last process's Wait (nil while it
// runs or after a clean exit).
func (s *Server) ExitError() error { return s.waitErr() }

// WaitExit waits up to d for the current process to exit and reports
// whether it did.
func (s *Server) WaitExit(d time.Duration) bool {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// Client returns a new clientv3 client for the server, closed at cleanup.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := s.newClient(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func (s *Server) newClient(dial time.Duration) (*clientv3.Client, error) {
	return newClient([]string{s.clientURL}, s.clientTLS, dial)
}

// newClient is a clientv3 client of eps, over TLS configured by x (nil:
// plain).
func newClient(eps []string, x *TLS, dial time.Duration) (*clientv3.Client, error) {
	tc, err := x.ClientConfig()
	if err != nil {
		return nil, err
	}
	return clientv3.New(clientv3.Config{
		Endpoints:          eps,
		DialTimeout:        dial,
		TLS:                tc,
		MaxCallSendMsgSize: 8 << 20,
		MaxCallRecvMsgSize: 64 << 20,
		Logger:             zap.NewNop(),
	})
}

func (s *Server) cleanup() {
	if s.Alive() {
		if !s.signalAndWait(syscall.SIGTERM, stopTimeout) {
			s.signalAndWait(syscall.SIGKILL, stopTimeout)
		}
	}
	if s.t.Failed() {
		s.t.Logf("e2etest: %s log (%s), tail:\n%s", s.kind, s.logPath, s.logTail())
	}
}

func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(b) > logTailBytes {
		b = append([]byte("...\n"), b[len(b)-logTailBytes:]...)
	}
	return string(b)
}

// freePair returns port if it and port+1 are both free, as a member whose
// actor API listens at its client port minus one needs; else another port
// that is free with its successor. The successor, and a port other than
// the given one, may not be one of taken (ports handed out already and not
// bound yet). The ports are not held meanwhile.
func freePair(port int, taken []int) (int, error) {
	for range 50 {
		if !slices.Contains(taken, port+1) && pairFree(port) {
			return port, nil
		}
		ps, err := bench.FreePorts(1)
		if err != nil {
			return 0, err
		}
		port = ps[0]
		for slices.Contains(taken, port) || slices.Contains(taken, port+1) {
			port++ // released by FreePorts, still meant for another use
		}
	}
	return 0, fmt.Errorf("e2etest: no two consecutive free ports in 50 tries")
}

// pairFree reports whether port and port+1 can both be bound on 127.0.0.1.
func pairFree(port int) bool {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for _, p := range []int{port, port + 1} {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return false
		}
		ls = append(ls, l)
	}
	return true
}
