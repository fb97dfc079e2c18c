package e2e

import (
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestTxnCompare(t *testing.T) {
	_, cli := startServer(t)
	m := newModel()
	// a: "1" c2 m2 v1; b: "22" c3 m4 v2; p/1: "x" c5 m5; p/2: "y" c6 m6
	applyPuts(t, cli, m, "a", "1", "b", "2", "b", "22", "p/1", "x", "p/2", "y")
	cmp := clientv3.Compare
	V, C, M, Val, L := clientv3.Version, clientv3.CreateRevision, clientv3.ModRevision, clientv3.Value, clientv3.LeaseValue
	cases := []struct {
		name string
		cmps []clientv3.Cmp
		want bool
	}{
		{"version =", []clientv3.Cmp{cmp(V("a"), "=", 1)}, true},
		{"version >", []clientv3.Cmp{cmp(V("b"), ">", 1)}, true},
		{"version <", []clientv3.Cmp{cmp(V("b"), "<", 2)}, false},
		{"version !=", []clientv3.Cmp{cmp(V("a"), "!=", 1)}, false},
		{"create =", []clientv3.Cmp{cmp(C("b"), "=", 3)}, true},
		{"create >", []clientv3.Cmp{cmp(C("b"), ">", 3)}, false},
		{"create <", []clientv3.Cmp{cmp(C("b"), "<", 4)}, true},
		{"create !=", []clientv3.Cmp{cmp(C("b"), "!=", 3)}, false},
		{"mod =", []clientv3.Cmp{cmp(M("b"), "=", 4)}, true},
		{"mod >", []clientv3.Cmp{cmp(M("b"), ">", 3)}, true},
		{"mod <", []clientv3.Cmp{cmp(M("b"), "<", 4)}, false},
		{"mod !=", []clientv3.Cmp{cmp(M("b"), "!=", 2)}, true},
		{"value =", []clientv3.Cmp{cmp(Val("a"), "=", "1")}, true},
		{"value >", []clientv3.Cmp{cmp(Val("b"), ">", "2")}, true},
		{"value <", []clientv3.Cmp{cmp(Val("b"), "<", "3")}, true},
		{"value !=", []clientv3.Cmp{cmp(Val("a"), "!=", "1")}, false},
		{"lease =", []clientv3.Cmp{cmp(L("a"), "=", 0)}, true},
		{"lease !=", []clientv3.Cmp{cmp(L("a"), "!=", 0)}, false},
		{"lease >", []clientv3.Cmp{cmp(L("a"), ">", 0)}, false},
		{"lease <", []clientv3.Cmp{cmp(L("a"), "<", 1)}, true},
		{"missing version = 0", []clientv3.Cmp{cmp(V("zz"), "=", 0)}, true},
		{"missing create = 0", []clientv3.Cmp{cmp(C("zz"), "=", 0)}, true},
		{"missing mod < 1", []clientv3.Cmp{cmp(M("zz"), "<", 1)}, true},
		{"missing value = empty", []clientv3.Cmp{cmp(Val("zz"), "=", "")}, false},
		{"missing value != x", []clientv3.Cmp{cmp(Val("zz"), "!=", "x")}, false},
		{"prefix version =", []clientv3.Cmp{cmp(V("p/"), "=", 1).WithPrefix()}, true},
		{"prefix mod > 5", []clientv3.Cmp{cmp(M("p/"), ">", 5).WithPrefix()}, false},
		{"prefix create < 7", []clientv3.Cmp{cmp(C("p/"), "<", 7).WithPrefix()}, true},
		{"prefix value != x", []clientv3.Cmp{cmp(Val("p/"), "!=", "x").WithPrefix()}, false},
		{"range mod > 1", []clientv3.Cmp{cmp(M("a"), ">", 1).WithRange("c")}, true},
		{"range version = 1", []clientv3.Cmp{cmp(V("a"), "=", 1).WithRange("c")}, false},
		{"empty prefix version = 0", []clientv3.Cmp{cmp(V("q/"), "=", 0).WithPrefix()}, true},
		{"empty prefix value = empty", []clientv3.Cmp{cmp(Val("q/"), "=", "").WithPrefix()}, false},
		{"all true", []clientv3.Cmp{cmp(V("a"), "=", 1), cmp(Val("b"), "=", "22"), cmp(M("p/2"), "=", 6)}, true},
		{"one false", []clientv3.Cmp{cmp(V("a"), "=", 1), cmp(Val("b"), "=", "nope")}, false},
		{"no compares", nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := cli.Txn(ctx(t)).If(tc.cmps...).Then(clientv3.OpGet("a")).Else(clientv3.OpGet("b")).Commit()
			must(t, err)
			if resp.Succeeded != tc.want {
				t.Fatalf("succeeded %v, want %v", resp.Succeeded, tc.want)
			}
			if resp.Header.Revision != m.rev {
				t.Fatalf("read-only txn: revision %d, want %d", resp.Header.Revision, m.rev)
			}
			if len(resp.Responses) != 1 {
				t.Fatalf("%d responses, want 1", len(resp.Responses))
			}
			want := m.now("b")
			if tc.want {
				want = m.now("a")
			}
			requireKVs(t, resp.Responses[0].GetResponseRange().Kvs, want)
		})
	}
}

func TestTxnWrites(t *testing.T) {
	_, cli := startServer(t)
	m := newModel()
	applyPuts(t, cli, m, "a", "1", "b", "2")

	t.Run("success branch, one revision, reads see writes", func(t *testing.T) {
		prevB := m.now("b")
		resp, err := cli.Txn(ctx(t)).
			If(clientv3.Compare(clientv3.Version("a"), "=", 1)).
			Then(clientv3.OpPut("c", "3"), clientv3.OpPut("a", "11", clientv3.WithPrevKV()), clientv3.OpGet("c"),
				clientv3.OpDelete("b", clientv3.WithPrevKV()), clientv3.OpGet("b")).
			Else(clientv3.OpPut("never", "x")).Commit()
		must(t, err)
		prevA := m.now("a")[0]
		m.put("c", "3", "a", "11")
		m.rev--
		m.del("b")
		if !resp.Succeeded || resp.Header.Revision != m.rev {
			t.Fatalf("succeeded=%v rev=%d, want true %d", resp.Succeeded, resp.Header.Revision, m.rev)
		}
		if len(resp.Responses) != 5 {
			t.Fatalf("%d responses, want 5", len(resp.Responses))
		}
		if p := resp.Responses[1].GetResponsePut(); p == nil || toKV(p.PrevKv) != prevA {
			t.Fatalf("put response %v, want prev_kv %v", p, prevA)
		}
		requireKVs(t, resp.Responses[2].GetResponseRange().Kvs, m.now("c"))
		d := resp.Responses[3].GetResponseDeleteRange()
		if d == nil || d.Deleted != 1 {
			t.Fatalf("delete response %v", d)
		}
		requireKVs(t, d.PrevKvs, prevB)
		requireKVs(t, resp.Responses[4].GetResponseRange().Kvs, nil)
		r, err := cli.Get(ctx(t), "\x00", clientv3.WithFromKey())
		must(t, err)
		requireKVs(t, r.Kvs, m.now("a", "c"))
		if k := m.now("a", "c"); k[0].Mod != k[1].Mod || k[1].Create != m.rev {
			t.Fatalf("model: %v", k)
		}
	})
	t.Run("failure branch", func(t *testing.T) {
		resp, err := cli.Txn(ctx(t)).
			If(clientv3.Compare(clientv3.Value("a"), "=", "nope")).
			Then(clientv3.OpPut("x", "1")).
			Else(clientv3.OpPut("y", "2"), clientv3.OpGet("y"), clientv3.OpGet("x")).Commit()
		must(t, err)
		m.put("y", "2")
		if resp.Succeeded || resp.Header.Revision != m.rev || len(resp.Responses) != 3 {
			t.Fatalf("succeeded=%v rev=%d responses=%d, want false %d 3", resp.Succeeded, resp.Header.Revision, len(resp.Responses), m.rev)
		}
		requireKVs(t, resp.Responses[1].GetResponseRange().Kvs, m.now("y"))
		requireKVs(t, resp.Responses[2].GetResponseRange().Kvs, nil)
	})
	t.Run("failed compare with empty else does not bump", func(t *testing.T) {
		resp, err := cli.Txn(ctx(t)).If(clientv3.Compare(clientv3.Version("a"), "=", 99)).Then(clientv3.OpPut("x", "1")).Commit()
		must(t, err)
		if resp.Succeeded || resp.Header.Revision != m.rev || len(resp.Responses) != 0 {
			t.Fatalf("succeeded=%v rev=%d responses=%d, want false %d 0", resp.Succeeded, resp.Header.Revision, len(resp.Responses), m.rev)
		}
		requireRevision(t, cli, m.rev)
	})
	t.Run("read-only txn does not bump", func(t *testing.T) {
		resp, err := cli.Txn(ctx(t)).Then(clientv3.OpGet("a"), clientv3.OpGet("\x00", clientv3.WithFromKey(), clientv3.WithCountOnly())).Commit()
		must(t, err)
		if resp.Header.Revision != m.rev || resp.Responses[1].GetResponseRange().Count != 3 {
			t.Fatalf("rev=%d count=%d, want %d 3", resp.Header.Revision, resp.Responses[1].GetResponseRange().Count, m.rev)
		}
		requireRevision(t, cli, m.rev)
	})
	t.Run("delete of nothing does not bump", func(t *testing.T) {
		resp, err := cli.Txn(ctx(t)).Then(clientv3.OpDelete("nothing"), clientv3.OpGet("a")).Commit()
		must(t, err)
		if resp.Header.Revision != m.rev || resp.Responses[0].GetResponseDeleteRange().Deleted != 0 {
			t.Fatalf("rev=%d, want %d", resp.Header.Revision, m.rev)
		}
	})
	t.Run("nested txn", func(t *testing.T) {
		inner := clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.Value("y"), "=", "2")},
			[]clientv3.Op{clientv3.OpPut("n1", "in"), clientv3.OpGet("n0")},
			[]clientv3.Op{clientv3.OpPut("n2", "out")})
		inner2 := clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.Version("n1"), ">", 0)},
			nil,
			[]clientv3.Op{clientv3.OpGet("n1")})
		resp, err := cli.Txn(ctx(t)).Then(clientv3.OpPut("n0", "first"), inner, inner2).Commit()
		must(t, err)
		m.put("n0", "first", "n1", "in")
		if !resp.Succeeded || resp.Header.Revision != m.rev || len(resp.Responses) != 3 {
			t.Fatalf("succeeded=%v rev=%d responses=%d", resp.Succeeded, resp.Header.Revision, len(resp.Responses))
		}
		in := resp.Responses[1].GetResponseTxn()
		if in == nil || !in.Succeeded || len(in.Responses) != 2 {
			t.Fatalf("inner txn response %v", in)
		}
		requireKVs(t, in.Responses[1].GetResponseRange().Kvs, m.now("n0"))
		in2 := resp.Responses[2].GetResponseTxn()
		if in2 == nil || in2.Succeeded || len(in2.Responses) != 1 {
			t.Fatalf("second inner txn response %v", in2)
		}
		requireKVs(t, in2.Responses[0].GetResponseRange().Kvs, m.now("n1"))
		r, err := cli.Get(ctx(t), "n", clientv3.WithPrefix())
		must(t, err)
		requireKVs(t, r.Kvs, m.now("n0", "n1"))
	})
	t.Run("128 ops in one revision", func(t *testing.T) {
		ops := make([]clientv3.Op, 128)
		pairs := make([]string, 0, 256)
		for i := range ops {
			k := fmt.Sprintf("many/%03d", i)
			ops[i] = clientv3.OpPut(k, "v")
			pairs = append(pairs, k, "v")
		}
		resp, err := cli.Txn(ctx(t)).Then(ops...).Commit()
		must(t, err)
		if want := m.put(pairs...); resp.Header.Revision != want {
			t.Fatalf("rev %d, want %d", resp.Header.Revision, want)
		}
		r, err := cli.Get(ctx(t), "many/", clientv3.WithPrefix(), clientv3.WithMinModRev(m.rev), clientv3.WithMaxModRev(m.rev), clientv3.WithCountOnly())
		must(t, err)
		if r.Count != 128 {
			t.Fatalf("count %d", r.Count)
		}
	})
	t.Run("same key in both branches", func(t *testing.T) {
		resp, err := cli.Txn(ctx(t)).Then(clientv3.OpPut("both", "then")).Else(clientv3.OpPut("both", "else")).Commit()
		must(t, err)
		if want := m.put("both", "then"); resp.Header.Revision != want {
			t.Fatalf("rev %d, want %d", resp.Header.Revision, want)
		}
	})

	tooMany := make([]clientv3.Op, 129)
	for i := range tooMany {
		tooMany[i] = clientv3.OpPut(fmt.Sprintf("many/%03d", i), "v")
	}
	errCases := []struct {
		name      string
		cmps      []clientv3.Cmp
		then, els []clientv3.Op
		want      error
	}{
		{"too many ops", nil, tooMany, nil, rpctypes.ErrGRPCTooManyOps},
		{"too many ops in else", nil, nil, tooMany, rpctypes.ErrGRPCTooManyOps},
		{"duplicate put", nil, []clientv3.Op{clientv3.OpPut("d", "1"), clientv3.OpPut("d", "2")}, nil, rpctypes.ErrGRPCDuplicateKey},
		{"put inside deleted range", nil, []clientv3.Op{clientv3.OpDelete("d/", clientv3.WithPrefix()), clientv3.OpPut("d/1", "2")}, nil, rpctypes.ErrGRPCDuplicateKey},
		{"deleted range over a put", nil, []clientv3.Op{clientv3.OpPut("d/1", "2"), clientv3.OpDelete("d/", clientv3.WithPrefix())}, nil, rpctypes.ErrGRPCDuplicateKey},
		{"duplicate in nested txn", nil, []clientv3.Op{clientv3.OpPut("d", "1"), clientv3.OpTxn(nil, []clientv3.Op{clientv3.OpPut("d", "2")}, nil)}, nil, rpctypes.ErrGRPCDuplicateKey},
		{"duplicate in else", nil, nil, []clientv3.Op{clientv3.OpPut("d", "1"), clientv3.OpPut("d", "2")}, rpctypes.ErrGRPCDuplicateKey},
		{"empty key put", nil, []clientv3.Op{clientv3.OpPut("", "1")}, nil, rpctypes.ErrGRPCEmptyKey},
		{"empty key get", nil, []clientv3.Op{clientv3.OpGet("")}, nil, rpctypes.ErrGRPCEmptyKey},
		{"lease not found", nil, []clientv3.Op{clientv3.OpPut("l", "1", clientv3.WithLease(missingLease))}, nil, rpctypes.ErrGRPCLeaseNotFound},
		{"key not found (ignore value)", nil, []clientv3.Op{clientv3.OpPut("missing", "", clientv3.WithIgnoreValue())}, nil, rpctypes.ErrGRPCKeyNotFound},
		{"future revision get", nil, []clientv3.Op{clientv3.OpGet("a", clientv3.WithRev(1000))}, nil, rpctypes.ErrGRPCFutureRev},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cli.Txn(ctx(t)).If(tc.cmps...).Then(tc.then...).Else(tc.els...).Commit()
			requireErr(t, err, tc.want)
			requireRevision(t, cli, m.rev)
		})
	}
}
