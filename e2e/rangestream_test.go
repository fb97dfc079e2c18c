package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// RangeStream is etcd 3.7's (etcd 3.6.8 answers Unimplemented), so these
// tests check troupe against 3.7's documented semantics with clientv3
// v3.7's GetStream, and against troupe's own unary Range.

// putValues writes n keys prefix%05d with values of size bytes from 16
// clients at once.
func putValues(t testing.TB, cli *clientv3.Client, prefix string, n, size int) {
	t.Helper()
	value := strings.Repeat("v", size)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < n; i += 16 {
				c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := cli.Put(c, fmt.Sprintf("%s%05d", prefix, i), value)
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatalf("put: %v", err)
	}
}

// streamChunks reads a whole GetStream into its chunks.
func streamChunks(t testing.TB, cli *clientv3.Client, key string, opts ...clientv3.OpOption) ([]*pb.RangeResponse, error) {
	t.Helper()
	ch, err := cli.GetStream(ctx(t), key, opts...)
	if err != nil {
		return nil, err
	}
	var out []*pb.RangeResponse
	for r := range ch {
		if err := r.Err(); err != nil {
			return out, err
		}
		out = append(out, r.RangeResponse)
	}
	return out, nil
}

// merged is what clientv3.GetStreamToGetResponse makes of chunks.
func merged(chunks []*pb.RangeResponse) *pb.RangeResponse {
	out := &pb.RangeResponse{}
	for _, c := range chunks {
		proto.Merge(out, c)
	}
	return out
}

func TestRangeStream(t *testing.T) {
	s := e2etest.Start(t, e2etest.Config{Kind: e2etest.Troupe})
	cli := s.Client(t)
	// 6 MiB: several chunks of --max-request-bytes (1.5 MiB).
	putValues(t, cli, "big/", 300, 20<<10)
	putValues(t, cli, "small/", 50, 10)

	cases := []struct {
		name   string
		key    string
		opts   []clientv3.OpOption
		chunks int // at least
	}{
		{name: "prefix of large values", key: "big/", opts: []clientv3.OpOption{clientv3.WithPrefix()}, chunks: 4},
		{name: "limit", key: "big/", opts: []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithLimit(150)}, chunks: 2},
		{name: "limit equal count", key: "small/", opts: []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithLimit(50)}, chunks: 1},
		{name: "keys only", key: "big/", opts: []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithKeysOnly()}, chunks: 1},
		{name: "single key", key: "small/00007", chunks: 1},
		{name: "missing key", key: "nope", chunks: 1},
		{name: "from key", key: "small/00040", opts: []clientv3.OpOption{clientv3.WithFromKey()}, chunks: 1},
		{name: "sort by key ascending", key: "small/", opts: []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)}, chunks: 1},
		{name: "serializable at a revision", key: "big/", opts: []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSerializable(), clientv3.WithRev(100)}, chunks: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			chunks, err := streamChunks(t, cli, tc.key, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if len(chunks) < tc.chunks {
				t.Fatalf("%d chunks, want at least %d", len(chunks), tc.chunks)
			}
			for i, c := range chunks[:len(chunks)-1] {
				if c.Header != nil || c.Count != 0 || c.More || len(c.Kvs) == 0 {
					t.Fatalf("chunk %d of %d: header %v count %d more %v, %d keys: only the last carries header, count and more", i, len(chunks), c.Header, c.Count, c.More, len(c.Kvs))
				}
				if proto.Size(c) > 2*(1536<<10) {
					t.Fatalf("chunk %d is %d bytes", i, proto.Size(c))
				}
			}
			got := merged(chunks)
			if got.Header == nil {
				t.Fatal("no header on the last chunk")
			}
			// The unary Range at the stream's revision is the reference
			// (a case with a revision of its own reads at that one).
			opts := tc.opts
			if !strings.Contains(tc.name, "at a revision") {
				opts = append(append([]clientv3.OpOption(nil), tc.opts...), clientv3.WithRev(got.Header.Revision))
			}
			want, err := cli.Get(ctx(t), tc.key, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, (*pb.RangeResponse)(want)) {
				t.Fatalf("merged stream: %d keys count %d more %v header %v\nrange: %d keys count %d more %v header %v",
					len(got.Kvs), got.Count, got.More, got.Header, len(want.Kvs), want.Count, want.More, want.Header)
			}
		})
	}

	t.Run("count only is one answer", func(t *testing.T) {
		chunks, err := streamChunks(t, cli, "big/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if len(chunks) != 1 || chunks[0].Count != 300 || len(chunks[0].Kvs) != 0 || chunks[0].Header == nil || chunks[0].Header.MemberId == 0 {
			t.Fatalf("count only: %v", chunks)
		}
	})

	errCases := []struct {
		name string
		key  string
		opts []clientv3.OpOption
		want error
	}{
		{name: "empty key", key: "", want: rpctypes.ErrGRPCEmptyKey},
		{name: "custom sort", key: "big/", opts: []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend)},
			want: status.Error(codes.Unimplemented, "RangeStream does not support custom sort orders")},
		{name: "sort by key descending", key: "big/", opts: []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend)},
			want: status.Error(codes.Unimplemented, "RangeStream does not support custom sort orders")},
		{name: "revision filter", key: "big/", opts: []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithMinModRev(3)},
			want: status.Error(codes.Unimplemented, "RangeStream does not support revision filters")},
		{name: "future revision", key: "big/", opts: []clientv3.OpOption{clientv3.WithRev(1 << 40)}, want: rpctypes.ErrGRPCFutureRev},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			chunks, err := streamChunks(t, cli, tc.key, tc.opts...)
			if len(chunks) != 0 {
				t.Fatalf("%d chunks before the error", len(chunks))
			}
			requireErr(t, err, tc.want)
		})
	}
}

// TestRangeStreamOneRevision: writes and a compaction made while a stream
// is half read. The client's flow-control windows are fixed at 64 KiB (no
// BDP growth), so a server that does not read ahead of what the client
// took is still reading the store when they land: overwrites, new keys
// and deletes do not show, and a compaction above the stream's revision
// ends it with ErrCompacted (etcd 3.7's next chunk fails the same way),
// which also shows the server had not read the whole range ahead.
func TestRangeStreamOneRevision(t *testing.T) {
	s := e2etest.Start(t, e2etest.Config{Kind: e2etest.Troupe})
	cli := s.Client(t)
	putValues(t, cli, "k/", 400, 50<<10) // 20 MiB

	conn, err := grpc.NewClient(strings.TrimPrefix(s.Endpoint(), "http://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	must(t, err)
	t.Cleanup(func() { conn.Close() })
	kv := pb.NewKVClient(conn)
	open := func() (pb.KV_RangeStreamClient, *pb.RangeResponse) {
		st, err := kv.RangeStream(ctx(t), &pb.RangeRequest{Key: []byte("k/"), RangeEnd: []byte("k0")})
		must(t, err)
		first, err := st.Recv()
		must(t, err)
		return st, first.RangeResponse
	}

	st, first := open()
	for i := range 400 {
		if _, err := cli.Put(ctx(t), fmt.Sprintf("k/%05d", 399-i), "new"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Put(ctx(t), "k/00399x", "inserted"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(ctx(t), "k/00200"); err != nil {
		t.Fatal(err)
	}
	kvs := first.Kvs
	var last *pb.RangeResponse
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		must(t, err)
		kvs = append(kvs, r.RangeResponse.Kvs...)
		last = r.RangeResponse
	}
	if len(kvs) != 400 || last == nil || last.Count != 400 {
		t.Fatalf("%d keys, last %v: writes during the stream showed", len(kvs), last)
	}
	for i, kv := range kvs {
		if string(kv.Key) != fmt.Sprintf("k/%05d", i) || len(kv.Value) != 50<<10 {
			t.Fatalf("key %d: %q with %d bytes: a write during the stream showed", i, kv.Key, len(kv.Value))
		}
	}

	putValues(t, cli, "k/", 400, 50<<10) // large values again
	st, _ = open()
	resp, err := cli.Put(ctx(t), "k/00000", "after")
	must(t, err)
	if _, err := cli.Compact(ctx(t), resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("stream never ended")
		}
		_, err := st.Recv()
		if errors.Is(err, io.EOF) {
			t.Fatal("stream read past a compaction above its revision: the server read the range ahead")
		}
		if err != nil {
			requireErr(t, err, rpctypes.ErrGRPCCompacted)
			break
		}
	}
}

// TestRangeStreamAuth: RangeStream checks permissions as Range does.
func TestRangeStreamAuth(t *testing.T) {
	s := e2etest.Start(t, e2etest.Config{Kind: e2etest.Troupe})
	cli := s.Client(t)
	for _, k := range []string{"a/1", "a/2", "b/1"} {
		_, err := cli.Put(ctx(t), k, "v")
		must(t, err)
	}
	for _, step := range []func() error{
		func() error { _, err := cli.UserAdd(ctx(t), "root", "rootpw"); return err },
		func() error { _, err := cli.UserGrantRole(ctx(t), "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx(t), "reader"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx(t), "reader", "a/", clientv3.GetPrefixRangeEnd("a/"), clientv3.PermissionType(clientv3.PermRead))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx(t), "u", "upw"); return err },
		func() error { _, err := cli.UserGrantRole(ctx(t), "u", "reader"); return err },
		func() error { _, err := cli.AuthEnable(ctx(t)); return err },
	} {
		must(t, step())
	}
	ucli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint()}, Username: "u", Password: "upw",
		DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	must(t, err)
	t.Cleanup(func() { ucli.Close() })

	chunks, err := streamChunks(t, ucli, "a/", clientv3.WithPrefix())
	must(t, err)
	if got := merged(chunks); len(got.Kvs) != 2 || got.Count != 2 {
		t.Fatalf("permitted prefix: %v", got)
	}
	_, err = streamChunks(t, ucli, "b/", clientv3.WithPrefix())
	requireErr(t, err, rpctypes.ErrGRPCPermissionDenied)
	_, err = streamChunks(t, ucli, "a/", clientv3.WithFromKey())
	requireErr(t, err, rpctypes.ErrGRPCPermissionDenied)
	_, err = streamChunks(t, cli, "a/", clientv3.WithPrefix())
	requireErr(t, err, rpctypes.ErrGRPCUserEmpty)
}
