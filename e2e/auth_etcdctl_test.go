package e2e

// etcdctl's user, role and auth commands against etcd 3.6.8 and the server
// under test: the same output and exit status, and the same error line.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// etcdctlAnswer runs etcd 3.6.8's etcdctl against s and returns its exit
// status, stdout and the "Error:" lines of stderr (the rest of stderr is
// the client's log, with times).
func etcdctlAnswer(t *testing.T, s *e2etest.Server, stdin string, args ...string) string {
	t.Helper()
	return etcdctlAnswerArgs(t, []string{"--endpoints=" + s.Endpoint()}, stdin, args...)
}

// etcdctlAnswerArgs is etcdctlAnswer with the connection flags given.
func etcdctlAnswerArgs(t *testing.T, conn []string, stdin string, args ...string) string {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(c, etcdctlBinary(t), append(append([]string{"--command-timeout=5s"}, conn...), args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	code := 0
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("etcdctl %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	var errLines []string
	for _, l := range strings.Split(errb.String(), "\n") {
		if strings.HasPrefix(l, "Error:") {
			errLines = append(errLines, l)
		}
	}
	stdout := etcdctlLeaseIDs.ReplaceAllString(out.String(), "lease <id>")
	return fmt.Sprintf("exit=%d\n%s%s", code, stdout, strings.Join(errLines, "\n"))
}

// etcdctlLeaseIDs matches the lease id etcdctl prints (random on etcd).
var etcdctlLeaseIDs = regexp.MustCompile(`lease [0-9a-f]{16}`)

// etcdctlAuthScript: args of each etcdctl run, with stdin after "<<".
var etcdctlAuthScript = [][]string{
	{"auth", "status"},
	{"auth", "enable"},
	{"user", "add", "root", "--new-user-password=rootpw"},
	{"user", "add", "root:other"},
	{"user", "list"},
	{"auth", "enable"}, // etcdctl adds the root role and grants it
	{"auth", "status"},
	{"--user=root:wrong", "get", "k1"},
	{"--user=nobody:pw", "get", "k1"},
	{"get", "k1"},
	{"--user=root:rootpw", "role", "add", "r1"},
	{"--user=root:rootpw", "role", "add", "r1"},
	{"--user=root:rootpw", "role", "grant-permission", "r1", "read", "k1"},
	{"--user=root:rootpw", "role", "grant-permission", "--prefix=true", "r1", "readwrite", "p/"},
	{"--user=root:rootpw", "role", "grant-permission", "--from-key", "r1", "write", "z"},
	{"--user=root:rootpw", "role", "grant-permission", "r1", "write", "a", "c"},
	{"--user=root:rootpw", "role", "grant-permission", "r1", "bogus", "k1"},
	{"--user=root:rootpw", "role", "grant-permission", "nope", "read", "k1"},
	{"--user=root:rootpw", "user", "add", "alice:alicepw"},
	{"--user=root:rootpw", "user", "add", "--no-password", "frank"},
	{"--user=root:rootpw", "user", "grant-role", "alice", "r1"},
	{"--user=root:rootpw", "user", "grant-role", "alice", "nope"},
	{"--user=root:rootpw", "user", "list"},
	{"--user=root:rootpw", "role", "list"},
	{"--user=root:rootpw", "role", "get", "r1"},
	{"--user=root:rootpw", "role", "get", "root"},
	{"--user=root:rootpw", "user", "get", "alice"},
	{"--user=root:rootpw", "user", "get", "alice", "--detail"},
	{"--user=root:rootpw", "user", "get", "frank"},
	{"--user=root:rootpw", "user", "get", "nobody"},
	{"--user=root:rootpw", "put", "k1", "v1"},
	{"--user=root:rootpw", "put", "p/1", "v1"},
	{"--user=alice:alicepw", "get", "k1"},
	{"--user=alice:alicepw", "get", "k2"},
	{"--user=alice:alicepw", "put", "k1", "x"},
	{"--user=alice:alicepw", "put", "p/2", "v2"},
	{"--user=alice:alicepw", "get", "p/", "--prefix"},
	{"--user=alice:alicepw", "put", "zz", "v"},
	{"--user=alice:alicepw", "get", "zz"},
	{"--user=alice:alicepw", "del", "b"},
	{"--user=alice:alicepw", "del", "p/", "--prefix"},
	{"--user=alice:alicepw", "user", "list"},
	{"--user=alice:alicepw", "endpoint", "hashkv"},
	{"--user=alice:alicepw", "defrag"},
	{"--user=alice:alicepw", "alarm", "list"},
	{"--user=alice:alicepw", "lease", "grant", "100"},
	{"--user=alice:alicepw", "txn", "<<", "value(\"k1\") = \"v1\"\n\nput p/t yes\n\nput k1 no\n\n"},
	{"--user=alice:alicepw", "txn", "<<", "value(\"k1\") = \"v1\"\n\nput k1 no\n\nput p/t yes\n\n"},
	{"--user=root:rootpw", "user", "passwd", "alice", "--interactive=false", "<<", "alicepw2\n"},
	{"--user=alice:alicepw", "get", "k1"},
	{"--user=alice:alicepw2", "get", "k1"},
	{"--user=root:rootpw", "role", "revoke-permission", "r1", "k1"},
	{"--user=root:rootpw", "role", "revoke-permission", "r1", "k1"},
	{"--user=alice:alicepw2", "get", "k1"},
	{"--user=root:rootpw", "role", "revoke-permission", "--prefix=true", "r1", "p/"},
	{"--user=root:rootpw", "role", "get", "r1"},
	{"--user=root:rootpw", "user", "revoke-role", "alice", "r1"},
	{"--user=root:rootpw", "user", "revoke-role", "alice", "r1"},
	{"--user=root:rootpw", "user", "get", "alice"},
	{"--user=root:rootpw", "user", "revoke-role", "root", "root"},
	{"--user=root:rootpw", "role", "delete", "root"},
	{"--user=root:rootpw", "user", "delete", "root"},
	{"--user=root:rootpw", "user", "delete", "alice"},
	{"--user=root:rootpw", "user", "delete", "alice"},
	{"--user=root:rootpw", "role", "delete", "r1"},
	{"--user=root:rootpw", "role", "list"},
	{"--user=root:rootpw", "user", "list"},
	{"--user=alice:alicepw2", "auth", "disable"},
	{"--user=root:rootpw", "auth", "status"},
	{"--user=root:rootpw", "auth", "disable"},
	{"auth", "status"},
	{"auth", "disable"},
	{"get", "k1"},
}

// runEtcdctlAuth runs etcdctlAuthScript against s.
func runEtcdctlAuth(t *testing.T, s *e2etest.Server) []string {
	var out []string
	for _, args := range etcdctlAuthScript {
		stdin := ""
		if n := len(args); n >= 2 && args[n-2] == "<<" {
			args, stdin = args[:n-2], args[n-1]
		}
		out = append(out, etcdctlAnswer(t, s, stdin, args...))
	}
	return out
}

// TestAuthEtcdctlAsEtcd: etcdctl's user, role and auth commands, with
// --user, answer on the server under test as on etcd 3.6.8.
func TestAuthEtcdctlAsEtcd(t *testing.T) {
	fast := []string{"--bcrypt-cost", "4"}
	ref := e2etest.Start(t, e2etest.Config{Kind: e2etest.Etcd, Args: fast})
	sut := e2etest.Start(t, e2etest.Config{Args: fast})
	want, got := both(func() []string { return runEtcdctlAuth(t, ref) }, func() []string { return runEtcdctlAuth(t, sut) })
	bad := 0
	for i := range want {
		if got[i] != want[i] {
			bad++
			t.Errorf("etcdctl %s differs:\n--- etcd\n%s\n--- %s\n%s", strings.Join(etcdctlAuthScript[i], " "), want[i], sut.Kind(), got[i])
		}
		if dumpAnswers() {
			t.Logf("etcdctl %s:\n%s", strings.Join(etcdctlAuthScript[i], " "), want[i])
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d etcdctl runs differ", bad, len(want))
	}
}
