package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// TestEtcdctlWatch compares etcdctl watch on etcd and on the server under
// test: replay from a revision with previous values, one key, a range, and
// a start revision that was compacted.
func TestEtcdctlWatch(t *testing.T) {
	sameAsEtcd(t, "etcdctl watch", etcdctlWatchScript)
}

func etcdctlWatchScript(t *testing.T, s *e2etest.Server) string {
	etcdctl(t, s, "", "put", "w/a", "1")                                           // rev 2
	etcdctl(t, s, "", "put", "w/b", "2")                                           // 3
	etcdctl(t, s, "", "put", "w/a", "3")                                           // 4
	etcdctl(t, s, "", "del", "w/b")                                                // 5
	etcdctl(t, s, "", "put", "x/other", "9")                                       // 6
	etcdctl(t, s, "version(\"w/c\") = \"0\"\n\nput w/c 5\nput w/d 6\n\n\n", "txn") // 7: two events, one revision
	var out strings.Builder
	watch := func(args ...string) {
		out.WriteString("$ " + strings.Join(args, " ") + "\n" + etcdctlWatch(t, s, args...))
	}
	watch("watch", "--rev=2", "--prefix", "w/", "--prev-kv")
	watch("watch", "--rev=3", "w/a")
	watch("watch", "--rev=2", "w/a", "w/c")
	etcdctl(t, s, "", "compaction", "4")
	watch("watch", "--rev=3", "--prefix", "w/")
	return out.String()
}

// etcdctlWatch runs an etcdctl watch for a moment (it never ends by
// itself) and returns what it printed, stdout then stderr.
func etcdctlWatch(t *testing.T, s *e2etest.Server, args ...string) string {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	cmd := exec.CommandContext(c, "etcdctl", append([]string{"--endpoints=" + s.Endpoint()}, args...)...)
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run() // killed at the deadline, or ended by a canceled watch
	return stdout.String() + stderr.String()
}
