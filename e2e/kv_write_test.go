package e2e

import (
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
)

// missingLease is a lease id no server has granted: troupe has no leases yet
// and etcd has not granted it, so both answer "requested lease not found".
const missingLease clientv3.LeaseID = 0x7eadbeef1234

func TestPut(t *testing.T) {
	_, cli := startServer(t)
	m := newModel()

	t.Run("new key", func(t *testing.T) {
		resp, err := cli.Put(ctx(t), "k", "v1", clientv3.WithPrevKV())
		must(t, err)
		if want := m.put("k", "v1"); resp.Header.Revision != want {
			t.Fatalf("revision %d, want %d", resp.Header.Revision, want)
		}
		if resp.PrevKv != nil {
			t.Fatalf("prev_kv of a new key: %v", toKV(resp.PrevKv))
		}
		requireKVs(t, mustGet(t, cli, "k"), m.now("k"))
	})
	t.Run("overwrite with prev_kv", func(t *testing.T) {
		prev := m.now("k")[0]
		resp, err := cli.Put(ctx(t), "k", "v2", clientv3.WithPrevKV())
		must(t, err)
		if want := m.put("k", "v2"); resp.Header.Revision != want {
			t.Fatalf("revision %d, want %d", resp.Header.Revision, want)
		}
		if got := toKV(resp.PrevKv); got != prev {
			t.Fatalf("prev_kv %v, want %v", got, prev)
		}
		requireKVs(t, mustGet(t, cli, "k"), m.now("k"))
	})
	t.Run("overwrite without prev_kv", func(t *testing.T) {
		resp, err := cli.Put(ctx(t), "k", "v3")
		must(t, err)
		m.put("k", "v3")
		if resp.PrevKv != nil {
			t.Fatalf("prev_kv without asking: %v", toKV(resp.PrevKv))
		}
	})
	t.Run("ignore value", func(t *testing.T) {
		resp, err := cli.Put(ctx(t), "k", "", clientv3.WithIgnoreValue(), clientv3.WithPrevKV())
		must(t, err)
		prev := m.now("k")[0]
		m.put("k", prev.Value)
		if resp.Header.Revision != m.rev || toKV(resp.PrevKv) != prev {
			t.Fatalf("revision %d prev %v, want %d %v", resp.Header.Revision, toKV(resp.PrevKv), m.rev, prev)
		}
		requireKVs(t, mustGet(t, cli, "k"), m.now("k"))
	})
	t.Run("ignore lease", func(t *testing.T) {
		resp, err := cli.Put(ctx(t), "k", "v4", clientv3.WithIgnoreLease())
		must(t, err)
		if want := m.put("k", "v4"); resp.Header.Revision != want {
			t.Fatalf("revision %d, want %d", resp.Header.Revision, want)
		}
		requireKVs(t, mustGet(t, cli, "k"), m.now("k"))
	})
	t.Run("ignore value and lease", func(t *testing.T) {
		_, err := cli.Put(ctx(t), "k", "", clientv3.WithIgnoreValue(), clientv3.WithIgnoreLease())
		must(t, err)
		m.put("k", "v4")
		requireKVs(t, mustGet(t, cli, "k"), m.now("k"))
	})
	t.Run("empty value", func(t *testing.T) {
		_, err := cli.Put(ctx(t), "empty", "")
		must(t, err)
		m.put("empty", "")
		requireKVs(t, mustGet(t, cli, "empty"), m.now("empty"))
	})
	t.Run("binary key and value", func(t *testing.T) {
		k, v := "\x00\xff\x01bin", "\xff\x00\xfe"
		_, err := cli.Put(ctx(t), k, v)
		must(t, err)
		m.put(k, v)
		requireKVs(t, mustGet(t, cli, k), m.now(k))
	})

	errCases := []struct {
		name string
		key  string
		val  string
		opts []clientv3.OpOption
		want error
	}{
		{"empty key", "", "v", nil, rpctypes.ErrGRPCEmptyKey},
		{"ignore value on missing key", "missing", "", []clientv3.OpOption{clientv3.WithIgnoreValue()}, rpctypes.ErrGRPCKeyNotFound},
		{"ignore lease on missing key", "missing", "v", []clientv3.OpOption{clientv3.WithIgnoreLease()}, rpctypes.ErrGRPCKeyNotFound},
		{"ignore value with a value", "k", "v", []clientv3.OpOption{clientv3.WithIgnoreValue()}, rpctypes.ErrGRPCValueProvided},
		{"ignore lease with a lease", "k", "v", []clientv3.OpOption{clientv3.WithIgnoreLease(), clientv3.WithLease(missingLease)}, rpctypes.ErrGRPCLeaseProvided},
		{"lease not found", "k", "v", []clientv3.OpOption{clientv3.WithLease(missingLease)}, rpctypes.ErrGRPCLeaseNotFound},
		{"lease not found on new key", "newkey", "v", []clientv3.OpOption{clientv3.WithLease(missingLease)}, rpctypes.ErrGRPCLeaseNotFound},
		{"request too large", "big", strings.Repeat("x", 1600<<10), nil, rpctypes.ErrGRPCRequestTooLarge},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cli.Put(ctx(t), tc.key, tc.val, tc.opts...)
			requireErr(t, err, tc.want)
			requireRevision(t, cli, m.rev)
		})
	}
	t.Run("2 MiB value refused", func(t *testing.T) {
		// 2 MiB is above etcd's gRPC receive limit (--max-request-bytes
		// + 512 KiB), so gRPC refuses it before etcd's own check.
		_, err := cli.Put(ctx(t), "big", strings.Repeat("x", 2<<20))
		if err == nil {
			t.Fatal("2 MiB put succeeded")
		}
		c, msg := codeMsg(err)
		if c != codes.ResourceExhausted {
			t.Fatalf("2 MiB put: code %v msg %q", c, msg)
		}
		requireRevision(t, cli, m.rev)
	})
}

func TestDelete(t *testing.T) {
	_, cli := startServer(t)
	m := newModel()
	applyPuts(t, cli, m, "a", "1", "b", "2", "c", "3", "p/1", "x", "p/2", "y", "p/3", "z", "q", "q")

	t.Run("single", func(t *testing.T) {
		resp, err := cli.Delete(ctx(t), "a")
		must(t, err)
		if want := m.del("a"); resp.Header.Revision != want || resp.Deleted != 1 || len(resp.PrevKvs) != 0 {
			t.Fatalf("rev=%d deleted=%d prev=%d, want rev=%d deleted=1 prev=0", resp.Header.Revision, resp.Deleted, len(resp.PrevKvs), want)
		}
		requireKVs(t, mustGet(t, cli, "a"), nil)
	})
	t.Run("missing key does not bump the revision", func(t *testing.T) {
		resp, err := cli.Delete(ctx(t), "a", clientv3.WithPrevKV())
		must(t, err)
		if resp.Header.Revision != m.rev || resp.Deleted != 0 || len(resp.PrevKvs) != 0 {
			t.Fatalf("rev=%d deleted=%d prev=%d, want rev=%d deleted=0", resp.Header.Revision, resp.Deleted, len(resp.PrevKvs), m.rev)
		}
	})
	t.Run("prefix with prev_kv", func(t *testing.T) {
		prev := m.now("p/1", "p/2", "p/3")
		resp, err := cli.Delete(ctx(t), "p/", clientv3.WithPrefix(), clientv3.WithPrevKV())
		must(t, err)
		if want := m.del("p/1", "p/2", "p/3"); resp.Header.Revision != want || resp.Deleted != 3 {
			t.Fatalf("rev=%d deleted=%d, want rev=%d deleted=3", resp.Header.Revision, resp.Deleted, want)
		}
		requireKVs(t, resp.PrevKvs, prev)
		r, err := cli.Get(ctx(t), "p/", clientv3.WithPrefix())
		must(t, err)
		if r.Count != 0 {
			t.Fatalf("count after delete %d", r.Count)
		}
	})
	t.Run("range end", func(t *testing.T) {
		resp, err := cli.Delete(ctx(t), "b", clientv3.WithRange("q"))
		must(t, err)
		if want := m.del("b", "c"); resp.Header.Revision != want || resp.Deleted != 2 {
			t.Fatalf("rev=%d deleted=%d, want rev=%d deleted=2", resp.Header.Revision, resp.Deleted, want)
		}
	})
	t.Run("history still readable", func(t *testing.T) {
		r, err := cli.Get(ctx(t), "p/", clientv3.WithPrefix(), clientv3.WithRev(m.rev-2))
		must(t, err)
		requireKVs(t, r.Kvs, m.at(m.rev-2, "p/1", "p/2", "p/3"))
	})
	t.Run("recreate starts a new life", func(t *testing.T) {
		applyPuts(t, cli, m, "a", "again")
		requireKVs(t, mustGet(t, cli, "a"), m.now("a"))
		if k := m.now("a")[0]; k.Version != 1 || k.Create != m.rev {
			t.Fatalf("model: %v", k)
		}
	})
	t.Run("from key", func(t *testing.T) {
		resp, err := cli.Delete(ctx(t), "\x00", clientv3.WithFromKey())
		must(t, err)
		if want := m.del("a", "q"); resp.Header.Revision != want || resp.Deleted != 2 {
			t.Fatalf("rev=%d deleted=%d, want rev=%d deleted=2", resp.Header.Revision, resp.Deleted, want)
		}
	})
	t.Run("empty key", func(t *testing.T) {
		_, err := cli.Delete(ctx(t), "")
		requireErr(t, err, rpctypes.ErrGRPCEmptyKey)
	})
}

func mustGet(t testing.TB, cli *clientv3.Client, key string, opts ...clientv3.OpOption) []*mvccpb.KeyValue {
	t.Helper()
	resp, err := cli.Get(ctx(t), key, opts...)
	must(t, err)
	return resp.Kvs
}

// requireRevision checks the store's current revision with a Get.
func requireRevision(t testing.TB, cli *clientv3.Client, want int64) {
	t.Helper()
	resp, err := cli.Get(ctx(t), "any")
	must(t, err)
	if resp.Header.Revision != want {
		t.Fatalf("current revision %d, want %d", resp.Header.Revision, want)
	}
}
