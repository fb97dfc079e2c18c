package mvcc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

var recordEtcd = flag.Bool("etcd", false, "run the script against a real etcd 3.6.8 ($TROUPE_ETCD36/etcd, else etcd in PATH; scripts/etcd36.sh builds it) and rewrite testdata/etcd36.golden")

const goldenPath = "testdata/etcd36.golden"

// goldenStep is what etcd answered to one script step.
type goldenStep struct {
	Name string          `json:"name"`
	Err  string          `json:"err,omitempty"`
	Resp json.RawMessage `json:"resp,omitempty"`
}

// errString is how the golden file writes a gRPC error of etcd.
func errString(err error) string {
	if err == nil {
		return ""
	}
	st := status.Convert(err)
	return fmt.Sprintf("%s: %s", st.Code(), st.Message())
}

// etcdErrors is etcd's answer (as errString writes it) for each error
// the store gives a client; the API layer sends exactly these
// (actors/listeners toGRPC, whose table test pins the same pairs).
var etcdErrors = []struct {
	err  error
	etcd string
}{
	{ErrEmptyKey, "InvalidArgument: etcdserver: key is not provided"},
	{ErrKeyNotFound, "InvalidArgument: etcdserver: key not found"},
	{ErrValueProvided, "InvalidArgument: etcdserver: value is provided"},
	{ErrLeaseProvided, "InvalidArgument: etcdserver: lease is provided"},
	{ErrTooManyOps, "InvalidArgument: etcdserver: too many operations in txn request"},
	{ErrDuplicateKey, "InvalidArgument: etcdserver: duplicate key given in txn request"},
	{ErrInvalidSortOption, "InvalidArgument: etcdserver: invalid sort option"},
	{ErrCompacted, "OutOfRange: etcdserver: mvcc: required revision has been compacted"},
	{ErrFutureRev, "OutOfRange: etcdserver: mvcc: required revision is a future revision"},
	{ErrLeaseNotFound, "NotFound: etcdserver: requested lease not found"},
	{ErrLeaseExists, "FailedPrecondition: etcdserver: lease already exists"},
	{ErrLeaseTTLTooLarge, "OutOfRange: etcdserver: too large lease TTL"},
}

// storeErrString is errString of what a client gets for the store's err.
func storeErrString(err error) string {
	if err == nil {
		return ""
	}
	for _, e := range etcdErrors {
		if errors.Is(err, e.err) {
			return e.etcd
		}
	}
	return "not a client error: " + err.Error()
}

func newResp(req proto.Message) proto.Message {
	switch req.(type) {
	case *pb.RangeRequest:
		return &pb.RangeResponse{}
	case *pb.PutRequest:
		return &pb.PutResponse{}
	case *pb.DeleteRangeRequest:
		return &pb.DeleteRangeResponse{}
	case *pb.TxnRequest:
		return &pb.TxnResponse{}
	case *pb.CompactionRequest:
		return &pb.CompactionResponse{}
	}
	panic(fmt.Sprintf("unknown request %T", req))
}

// clearHeader drops the fields the caller of the store fills in.
func clearHeader(m proto.Message) {
	type headered interface{ GetHeader() *pb.ResponseHeader }
	if h, ok := m.(headered); ok && h.GetHeader() != nil {
		hd := h.GetHeader()
		hd.ClusterId, hd.MemberId, hd.RaftTerm = 0, 0, 0
	}
}

// TestEtcdScript runs etcdScript on a store and checks every response and
// error against what etcd 3.6.8 answered (testdata/etcd36.golden; 3.4.23
// answered the same but for an unknown sort order, which it did not
// refuse). With -etcd it first records the golden file from a real etcd.
func TestEtcdScript(t *testing.T) {
	if *recordEtcd {
		recordGolden(t)
	}
	f, err := os.Open(goldenPath)
	if err != nil {
		t.Fatalf("%v (record it with: go test -run TestEtcdScript -etcd)", err)
	}
	defer f.Close()
	var golden []goldenStep
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var g goldenStep
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			t.Fatal(err)
		}
		golden = append(golden, g)
	}
	ts := openTest(t, Options{})
	gi := 0
	for _, st := range etcdScript() {
		switch {
		case st.commit:
			if err := ts.Commit(); err != nil {
				t.Fatal(err)
			}
			continue
		case st.reopen:
			ts.reopen(Options{})
			continue
		}
		if gi >= len(golden) || golden[gi].Name != st.name {
			t.Fatalf("golden file out of date at %q; rerun with -etcd", st.name)
		}
		g := golden[gi]
		gi++
		resp, err := ts.do(st.req)
		if got := storeErrString(err); got != g.Err {
			t.Errorf("%s: error %q, etcd %q", st.name, got, g.Err)
			continue
		}
		if err != nil {
			continue
		}
		want := newResp(st.req)
		if err := protojson.Unmarshal(g.Resp, want); err != nil {
			t.Fatal(err)
		}
		got := wire(t, resp)
		if !proto.Equal(got, want) {
			t.Errorf("%s:\n got %v\nwant %v", st.name, got, want)
		}
	}
}

// recordGolden runs the script against a fresh etcd and writes the golden
// file.
func recordGolden(t *testing.T) {
	kv := pb.NewKVClient(startEtcd(t))
	out, err := os.Create(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	ctx := context.Background()
	for _, st := range etcdScript() {
		if st.req == nil {
			continue
		}
		var resp proto.Message
		switch r := st.req.(type) {
		case *pb.RangeRequest:
			resp, err = kv.Range(ctx, r)
		case *pb.PutRequest:
			resp, err = kv.Put(ctx, r)
		case *pb.DeleteRangeRequest:
			resp, err = kv.DeleteRange(ctx, r)
		case *pb.TxnRequest:
			resp, err = kv.Txn(ctx, r)
		case *pb.CompactionRequest:
			r.Physical = true
			resp, err = kv.Compact(ctx, r)
			r.Physical = false
		}
		g := goldenStep{Name: st.name, Err: errString(err)}
		if err == nil {
			clearHeader(resp)
			b, err := protojson.Marshal(resp)
			if err != nil {
				t.Fatal(err)
			}
			g.Resp = b
		}
		line, _ := json.Marshal(g)
		fmt.Fprintf(out, "%s\n", line)
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startEtcd runs a single-member etcd in a temp dir until the test ends.
func startEtcd(t *testing.T) *grpc.ClientConn {
	bin := filepath.Join(os.Getenv("TROUPE_ETCD36"), "etcd")
	if os.Getenv("TROUPE_ETCD36") == "" {
		var err error
		if bin, err = exec.LookPath("etcd"); err != nil {
			t.Fatalf("-etcd needs etcd 3.6.8: set TROUPE_ETCD36 to the directory scripts/etcd36.sh builds it into, or put it in PATH: %v", err)
		}
	}
	client, peer := "http://"+freeAddr(t), "http://"+freeAddr(t)
	cmd := exec.Command(bin, "--data-dir", t.TempDir(), "--name", "default",
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "default="+peer)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	conn, err := grpc.NewClient(client[len("http://"):], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	kv := pb.NewKVClient(conn)
	for i := 0; ; i++ { // the real process needs real time to elect itself
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("ready")})
		cancel()
		if err == nil {
			return conn
		}
		if i == 100 {
			t.Fatalf("etcd did not start: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // wall clock on purpose: a real etcd process (only with -etcd) elects itself in real time
	}
}
