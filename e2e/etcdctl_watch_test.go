package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"sync"
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

// etcdctlWatchFor is how long an etcdctl watch runs once it printed
// something (the history it replays arrives together), and
// etcdctlWatchBound how long it may take to print anything: starting
// etcdctl and connecting take what a loaded machine gives them.
const (
	etcdctlWatchFor   = 1500 * time.Millisecond
	etcdctlWatchBound = 20 * time.Second
)

// etcdctlWatch runs an etcdctl watch for a moment after it first printed
// (it never ends by itself, unless its watch is canceled) and returns what
// it printed, stdout then stderr.
func etcdctlWatch(t *testing.T, s *e2etest.Server, args ...string) string {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), etcdctlWatchBound)
	defer cancel()
	cmd := exec.CommandContext(c, etcdctlBinary(t), append(s.EtcdctlArgs(), args...)...)
	printed := make(chan struct{})
	var once sync.Once
	stdout := &notifyingBuffer{notify: func() { once.Do(func() { close(printed) }) }}
	stderr := &notifyingBuffer{notify: stdout.notify}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("etcdctl %s: %v", strings.Join(args, " "), err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // killed below, or ended by a canceled watch
		close(done)
	}()
	select {
	case <-printed:
		select {
		case <-done:
		case <-time.After(etcdctlWatchFor):
		}
	case <-done:
	case <-c.Done():
	}
	cancel()
	<-done
	return stdout.String() + stderr.String()
}

// notifyingBuffer collects what is written to it and calls notify after
// every write; read it once the command that writes it has been waited
// for. (It does not embed bytes.Buffer: io.Copy would use the buffer's
// ReadFrom and never call Write.)
type notifyingBuffer struct {
	buf    bytes.Buffer
	notify func()
}

func (b *notifyingBuffer) Write(p []byte) (int, error) {
	n, err := b.buf.Write(p)
	b.notify()
	return n, err
}

func (b *notifyingBuffer) String() string { return b.buf.String() }
