package e2e

import (
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// TestLogFileAndSocketReuseAsEtcd starts etcd 3.6.8 and troupe with a
// rotated log file beside stderr and SO_REUSEPORT: both write the same
// lines to the file and to stderr, and another socket with SO_REUSEPORT
// binds their client port. etcd's peer port takes it too; troupe's peer
// listener is protoactor's, which takes no socket options (the warning
// says so).
func TestLogFileAndSocketReuseAsEtcd(t *testing.T) {
	for _, kind := range []string{e2etest.Etcd, e2etest.Troupe} {
		t.Run(kind, func(t *testing.T) {
			logFile := filepath.Join(t.TempDir(), "server.log")
			s := e2etest.Start(t, e2etest.Config{Kind: kind, Args: []string{
				"--log-outputs=" + logFile + ",stderr", "--enable-log-rotation", `--log-rotation-config-json={"maxsize": 1}`,
				"--socket-reuse-port", "--socket-reuse-address",
			}})
			b, err := os.ReadFile(logFile)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(b), "\n")
			if first == "" || !strings.Contains(s.Log(), first) {
				t.Fatalf("log file starts %q; not in stderr:\n%s", first, s.Log())
			}
			if err := bindReusePort(s.Endpoint()); err != nil {
				t.Errorf("client port: %v", err)
			}
			err = bindReusePort(s.PeerURL())
			switch {
			case kind == e2etest.Etcd && err != nil:
				t.Errorf("etcd's peer port: %v", err)
			case kind == e2etest.Troupe && err == nil:
				t.Error("troupe's peer port took SO_REUSEPORT; drop the warning and the README's exception")
			case kind == e2etest.Troupe && !strings.Contains(s.Log(), "--socket-reuse-port applies to the client, client http and metrics listeners only"):
				t.Errorf("no warning about the peer listener:\n%s", s.Log())
			}
		})
	}
}

// bindReusePort listens on rawURL's host:port with SO_REUSEPORT and
// closes the listener at once.
func bindReusePort(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	lis, err := lc.Listen(context.Background(), "tcp", u.Host)
	if err != nil {
		return err
	}
	return lis.Close()
}
