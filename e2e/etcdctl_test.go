package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// etcdctl runs etcd 3.6.8's etcdctl against s with stdin, returning
// stdout; it fails the test on a non-zero exit.
func etcdctl(t *testing.T, s *e2etest.Server, stdin string, args ...string) string {
	t.Helper()
	return runEtcdctl(t, etcdctlBinary(t), s, stdin, args...)
}

// etcdctl34 runs Debian's etcdctl 3.4, for what etcd 3.6's etcdctl no
// longer has: `snapshot status` and `snapshot restore`.
func etcdctl34(t *testing.T, s *e2etest.Server, stdin string, args ...string) string {
	t.Helper()
	bin, err := e2etest.Etcdctl34Binary()
	if err != nil {
		t.Fatal(err)
	}
	return runEtcdctl(t, bin, s, stdin, args...)
}

func etcdctlBinary(t *testing.T) string {
	t.Helper()
	bin, err := e2etest.EtcdctlBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// runEtcdctl runs bin against s (no endpoint when s is nil).
func runEtcdctl(t *testing.T, bin string, s *e2etest.Server, stdin string, args ...string) string {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	flags := []string{"--command-timeout=10s"}
	if s != nil {
		flags = append(flags, s.EtcdctlArgs()...)
	}
	cmd := exec.CommandContext(c, bin, append(flags, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", bin, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// sameAsEtcd runs script on real etcd and on the server under test and
// fails if their outputs differ; what names the script in the message.
func sameAsEtcd(t *testing.T, what string, script func(*testing.T, *e2etest.Server) string) {
	t.Helper()
	ref := e2etest.Start(t, e2etest.Config{Kind: e2etest.Etcd})
	sut := e2etest.Start(t, e2etest.Config{})
	want, got := script(t, ref), script(t, sut)
	if want != got {
		t.Fatalf("%s output differs:\n--- etcd\n%s\n--- %s\n%s", what, want, sut.Kind(), got)
	}
}

// jsonHeader and jsonKV mirror etcdctl's -w json output (field names of
// etcdserverpb's JSON tags; bytes in base64).
type jsonHeader struct {
	ClusterID uint64 `json:"cluster_id"`
	MemberID  uint64 `json:"member_id"`
	Revision  int64  `json:"revision"`
	RaftTerm  uint64 `json:"raft_term"`
}

type jsonKV struct {
	Key            string `json:"key"`
	CreateRevision int64  `json:"create_revision"`
	ModRevision    int64  `json:"mod_revision"`
	Version        int64  `json:"version"`
	Value          string `json:"value"`
}

type jsonGet struct {
	Header jsonHeader `json:"header"`
	KVs    []jsonKV   `json:"kvs"`
	Count  int64      `json:"count"`
	More   bool       `json:"more"`
}

func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestEtcdctl(t *testing.T) {
	s := e2etest.Start(t, e2etest.Config{})

	if out := etcdctl(t, s, "", "put", "foo", "bar"); out != "OK\n" {
		t.Fatalf("put: %q", out)
	}
	etcdctl(t, s, "", "put", "foo2", "bar2")
	etcdctl(t, s, "", "put", "foo", "baz") // rev 4

	t.Run("get json", func(t *testing.T) {
		var g jsonGet
		decodeJSON(t, etcdctl(t, s, "", "get", "foo", "--prefix", "-w", "json"), &g)
		want := []jsonKV{
			{Key: b64("foo"), CreateRevision: 2, ModRevision: 4, Version: 2, Value: b64("baz")},
			{Key: b64("foo2"), CreateRevision: 3, ModRevision: 3, Version: 1, Value: b64("bar2")},
		}
		if g.Header.Revision != 4 || g.Count != 2 || g.More || g.Header.MemberID == 0 || g.Header.ClusterID == 0 {
			t.Fatalf("get: %+v", g)
		}
		if len(g.KVs) != 2 || g.KVs[0] != want[0] || g.KVs[1] != want[1] {
			t.Fatalf("kvs %+v, want %+v", g.KVs, want)
		}
	})
	t.Run("get simple", func(t *testing.T) {
		if out := etcdctl(t, s, "", "get", "foo"); out != "foo\nbaz\n" {
			t.Fatalf("get: %q", out)
		}
		if out := etcdctl(t, s, "", "get", "foo", "--rev=2", "--print-value-only"); out != "bar\n" {
			t.Fatalf("get --rev=2: %q", out)
		}
	})
	t.Run("txn interactive", func(t *testing.T) {
		in := "value(\"foo\") = \"baz\"\nmod(\"foo2\") = \"3\"\n\nput foo qux\nget foo\n\nput foo nope\n\n"
		out := etcdctl(t, s, in, "txn", "-i")
		want := "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\nSUCCESS\n\nOK\n\nfoo\nqux\n"
		if out != want {
			t.Fatalf("txn -i output %q, want %q", out, want)
		}
		in = "version(\"foo\") = \"1\"\n\nput foo never\n\nput fail yes\nget foo\n\n"
		out = etcdctl(t, s, in, "txn", "-w", "json")
		var r struct {
			Header    jsonHeader `json:"header"`
			Succeeded bool       `json:"succeeded"`
			Responses []struct {
				Response struct {
					ResponsePut   *struct{ Header jsonHeader } `json:"response_put"`
					ResponseRange *jsonGet                     `json:"response_range"`
				} `json:"Response"`
			} `json:"responses"`
		}
		decodeJSON(t, out, &r)
		if r.Succeeded || r.Header.Revision != 6 || len(r.Responses) != 2 || r.Responses[0].Response.ResponsePut == nil || r.Responses[1].Response.ResponseRange == nil {
			t.Fatalf("txn json: %s", out)
		}
		if kvs := r.Responses[1].Response.ResponseRange.KVs; len(kvs) != 1 || kvs[0].Value != b64("qux") || kvs[0].ModRevision != 5 {
			t.Fatalf("txn json range: %s", out)
		}
	})
	t.Run("del prefix", func(t *testing.T) {
		if out := etcdctl(t, s, "", "del", "--prefix", "fo"); out != "2\n" {
			t.Fatalf("del: %q", out)
		}
		if out := etcdctl(t, s, "", "del", "--prev-kv", "fail"); out != "1\nfail\nyes\n" {
			t.Fatalf("del --prev-kv: %q", out)
		}
		var g jsonGet
		decodeJSON(t, etcdctl(t, s, "", "get", "", "--from-key", "-w", "json"), &g)
		if g.Count != 0 || len(g.KVs) != 0 || g.Header.Revision != 8 {
			t.Fatalf("after del: %+v", g)
		}
	})
	t.Run("compaction", func(t *testing.T) {
		if out := etcdctl(t, s, "", "compaction", "--physical", "5"); out != "compacted revision 5\n" {
			t.Fatalf("compaction: %q", out)
		}
		var g jsonGet
		decodeJSON(t, etcdctl(t, s, "", "get", "foo", "--rev=5", "-w", "json"), &g)
		if len(g.KVs) != 1 || g.KVs[0].Value != b64("qux") {
			t.Fatalf("get at compaction revision: %+v", g)
		}
	})
	t.Run("endpoint status", func(t *testing.T) {
		var st []struct {
			Endpoint string
			Status   struct {
				Header    jsonHeader `json:"header"`
				Version   string     `json:"version"`
				DBSize    int64      `json:"dbSize"`
				Leader    uint64     `json:"leader"`
				RaftIndex uint64     `json:"raftIndex"`
				RaftTerm  uint64     `json:"raftTerm"`
			}
		}
		out := etcdctl(t, s, "", "endpoint", "status", "-w", "json")
		decodeJSON(t, out, &st)
		if len(st) != 1 || st[0].Endpoint != s.Endpoint() {
			t.Fatalf("endpoint status: %s", out)
		}
		x := st[0].Status
		if x.Version == "" || x.DBSize <= 0 || x.Leader == 0 || x.Leader != x.Header.MemberID || x.RaftIndex == 0 || x.RaftTerm == 0 || x.Header.Revision != 8 {
			t.Fatalf("endpoint status: %s", out)
		}
	})
	t.Run("member list", func(t *testing.T) {
		var ml struct {
			Header  jsonHeader `json:"header"`
			Members []struct {
				ID         uint64   `json:"ID"`
				Name       string   `json:"name"`
				PeerURLs   []string `json:"peerURLs"`
				ClientURLs []string `json:"clientURLs"`
			} `json:"members"`
		}
		out := etcdctl(t, s, "", "member", "list", "-w", "json")
		decodeJSON(t, out, &ml)
		if len(ml.Members) != 1 {
			t.Fatalf("member list: %s", out)
		}
		m := ml.Members[0]
		if m.ID == 0 || m.ID != ml.Header.MemberID || m.Name != s.Name() ||
			len(m.PeerURLs) != 1 || m.PeerURLs[0] != s.PeerURL() || len(m.ClientURLs) != 1 || m.ClientURLs[0] != s.Endpoint() {
			t.Fatalf("member list: %s", out)
		}
		if simple := etcdctl(t, s, "", "member", "list"); !strings.Contains(simple, ", started, "+s.Name()+", "+s.PeerURL()+", "+s.Endpoint()+", false") {
			t.Fatalf("member list: %q", simple)
		}
	})
}
