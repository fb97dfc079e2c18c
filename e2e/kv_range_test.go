package e2e

import (
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// seedRange writes the data set every Range case reads:
//
//	key  value  create mod version
//	a    v0     2      5   2
//	ab   v9     6      6   1
//	b    v3     3      3   1
//	c    v5     4      8   3
//	d    v7     9      9   1
//	p/1  p1     10     10  1
//	p/2  p2     11     11  1
//	p/3  p3     12     12  1
func seedRange(t *testing.T, cli *clientv3.Client) *model {
	m := newModel()
	applyPuts(t, cli, m,
		"a", "v1", "b", "v3", "c", "v2", "a", "v0", "ab", "v9", "c", "v4", "c", "v5",
		"d", "v7", "p/1", "p1", "p/2", "p2", "p/3", "p3")
	return m
}

func TestRange(t *testing.T) {
	_, cli := startServer(t)
	m := seedRange(t, cli)
	all := []string{"a", "ab", "b", "c", "d", "p/1", "p/2", "p/3"}
	rev := func(r int64, keys ...string) []kv { return m.at(r, keys...) }
	now := m.now

	cases := []struct {
		name  string
		key   string
		opts  []clientv3.OpOption
		want  []kv
		count int64
		more  bool
	}{
		{name: "single key", key: "a", want: now("a"), count: 1},
		{name: "missing key", key: "zz", want: nil, count: 0},
		{name: "range end", key: "a", opts: []clientv3.OpOption{clientv3.WithRange("c")}, want: now("a", "ab", "b"), count: 3},
		{name: "range end equal key is empty", key: "b", opts: []clientv3.OpOption{clientv3.WithRange("b")}, count: 0},
		{name: "from key (end \\x00)", key: "c", opts: []clientv3.OpOption{clientv3.WithFromKey()}, want: now("c", "d", "p/1", "p/2", "p/3"), count: 5},
		{name: "all keys (\\x00, \\x00)", key: "\x00", opts: []clientv3.OpOption{clientv3.WithFromKey()}, want: now(all...), count: 8},
		{name: "prefix p/", key: "p/", opts: []clientv3.OpOption{clientv3.WithPrefix()}, want: now("p/1", "p/2", "p/3"), count: 3},
		{name: "prefix a", key: "a", opts: []clientv3.OpOption{clientv3.WithPrefix()}, want: now("a", "ab"), count: 2},
		{name: "prefix none", key: "q", opts: []clientv3.OpOption{clientv3.WithPrefix()}, count: 0},
		{name: "limit", key: "\x00", opts: []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithLimit(2)}, want: now("a", "ab"), count: 8, more: true},
		{name: "limit prefix", key: "p/", opts: []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithLimit(2)}, want: now("p/1", "p/2"), count: 3, more: true},
		{name: "limit equal count", key: "p/", opts: []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithLimit(3)}, want: now("p/1", "p/2", "p/3"), count: 3},
		{name: "limit above count", key: "p/", opts: []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithLimit(10)}, want: now("p/1", "p/2", "p/3"), count: 3},
		{name: "revision 4", key: "\x00", opts: []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithRev(4)}, want: rev(4, "a", "b", "c"), count: 3},
		{name: "revision 5 single", key: "a", opts: []clientv3.OpOption{clientv3.WithRev(5)}, want: rev(5, "a"), count: 1},
		{name: "revision 1 empty", key: "\x00", opts: []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithRev(1)}, count: 0},
		{name: "revision 7 limit", key: "\x00", opts: []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithRev(7), clientv3.WithLimit(3)}, want: rev(7, "a", "ab", "b"), count: 4, more: true},
		{name: "sort key descend", key: "\x00", opts: []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend)},
			want: now("p/3", "p/2", "p/1", "d", "c", "b", "ab", "a"), count: 8},
		{name: "sort key ascend", key: "a", opts: []clientv3.OpOption{clientv3.WithRange("c"), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)},
			want: now("a", "ab", "b"), count: 3},
		{name: "sort value ascend", key: "\x00", opts: []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithSort(clientv3.SortByValue, clientv3.SortAscend)},
			want: now("p/1", "p/2", "p/3", "a", "b", "c", "d", "ab"), count: 8},
		{name: "sort value descend", key: "\x00", opts: []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithSort(clientv3.SortByValue, clientv3.SortDescend)},
			want: now("ab", "d", "c", "b", "a", "p/3", "p/2", "p/1"), count: 8},
		{name: "sort version descend", key: "a", opts: []clientv3.OpOption{clientv3.WithRange("e"), clientv3.WithSort(clientv3.SortByVersion, clientv3.SortDescend)},
			want: now("c", "a", "ab", "b", "d"), count: 5},
		{name: "sort version ascend", key: "a", opts: []clientv3.OpOption{clientv3.WithRange("e"), clientv3.WithSort(clientv3.SortByVersion, clientv3.SortAscend)},
			want: now("ab", "b", "d", "a", "c"), count: 5},
		{name: "sort create descend", key: "\x00", opts: []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortDescend)},
			want: now("p/3", "p/2", "p/1", "d", "ab", "c", "b", "a"), count: 8},
		{name: "sort create ascend", key: "a", opts: []clientv3.OpOption{clientv3.WithRange("e"), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend)},
			want: now("a", "b", "c", "ab", "d"), count: 5},
		{name: "sort mod descend", key: "a", opts: []clientv3.OpOption{clientv3.WithRange("e"), clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend)},
			want: now("d", "c", "ab", "a", "b"), count: 5},
		{name: "sort mod ascend", key: "a", opts: []clientv3.OpOption{clientv3.WithRange("e"), clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortAscend)},
			want: now("b", "a", "ab", "c", "d"), count: 5},
		{name: "sort mod descend limit", key: "\x00", opts: []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend), clientv3.WithLimit(2)},
			want: now("p/3", "p/2"), count: 8, more: true},
		{name: "last create (clientv3 helper)", key: "a", opts: append(clientv3.WithLastCreate(), clientv3.WithRange("e")),
			want: now("d"), count: 5, more: true},
		{name: "sort at revision", key: "\x00", opts: []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithRev(6), clientv3.WithSort(clientv3.SortByValue, clientv3.SortDescend)},
			want: rev(6, "ab", "b", "c", "a"), count: 4},
		{name: "count only", key: "\x00", opts: []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithCountOnly()}, count: 8},
		{name: "count only limit", key: "\x00", opts: []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithCountOnly(), clientv3.WithLimit(2)}, count: 8},
		{name: "serializable", key: "a", opts: []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSerializable()}, want: now("a", "ab"), count: 2},
		{name: "min mod revision", key: "\x00", opts: []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithMinModRev(8)},
			want: now("c", "d", "p/1", "p/2", "p/3"), count: 8},
		{name: "max mod revision", key: "\x00", opts: []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithMaxModRev(5)},
			want: now("a", "b"), count: 8},
		{name: "min and max create revision", key: "\x00", opts: []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithMinCreateRev(4), clientv3.WithMaxCreateRev(9)},
			want: now("ab", "c", "d"), count: 8},
		{name: "min mod revision limit", key: "\x00", opts: []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithMinModRev(6), clientv3.WithLimit(2)},
			want: now("ab", "c"), count: 8, more: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := cli.Get(ctx(t), tc.key, tc.opts...)
			must(t, err)
			if resp.Header.Revision != m.rev {
				t.Errorf("header revision %d, want %d", resp.Header.Revision, m.rev)
			}
			requireKVs(t, resp.Kvs, tc.want)
			if resp.Count != tc.count || resp.More != tc.more {
				t.Errorf("count=%d more=%v, want count=%d more=%v", resp.Count, resp.More, tc.count, tc.more)
			}
		})
	}

	t.Run("keys only", func(t *testing.T) {
		resp, err := cli.Get(ctx(t), "a", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		must(t, err)
		want := now("a", "ab")
		for i := range want {
			want[i].Value = ""
		}
		requireKVs(t, resp.Kvs, want)
		if resp.Count != 2 {
			t.Errorf("count %d, want 2", resp.Count)
		}
	})
}
