package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// ctx returns a context bounded for one request round.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// startServer starts the server under test with default options.
func startServer(t testing.TB) (*e2etest.Server, *clientv3.Client) {
	t.Helper()
	s := e2etest.Start(t, e2etest.Config{})
	return s, s.Client(t)
}

// codeMsg extracts the gRPC code and message of err, whether it is a gRPC
// status or clientv3's rpctypes.EtcdError.
func codeMsg(err error) (codes.Code, string) {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code(), ee.Error()
	}
	st := status.Convert(err)
	return st.Code(), st.Message()
}

// requireErr fails unless err has the code and message of want (an
// rpctypes.ErrGRPC* value).
func requireErr(t testing.TB, err, want error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", want)
	}
	gc, gm := codeMsg(err)
	wc, wm := codeMsg(want)
	if gc != wc || gm != wm {
		t.Fatalf("got error code=%v msg=%q, want code=%v msg=%q", gc, gm, wc, wm)
	}
}

// freeURL is a scheme://127.0.0.1:port URL on a port free now.
func freeURL(t testing.TB, scheme string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	return scheme + "://" + l.Addr().String()
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// kv is the comparable content of an mvccpb.KeyValue.
type kv struct {
	Key, Value           string
	Create, Mod, Version int64
	Lease                int64
}

func (k kv) String() string {
	return fmt.Sprintf("{%q=%q c=%d m=%d v=%d l=%d}", k.Key, k.Value, k.Create, k.Mod, k.Version, k.Lease)
}

func toKV(p *mvccpb.KeyValue) kv {
	if p == nil {
		return kv{}
	}
	return kv{string(p.Key), string(p.Value), p.CreateRevision, p.ModRevision, p.Version, p.Lease}
}

func toKVs(ps []*mvccpb.KeyValue) []kv {
	out := make([]kv, 0, len(ps))
	for _, p := range ps {
		out = append(out, toKV(p))
	}
	return out
}

func requireKVs(t testing.TB, got []*mvccpb.KeyValue, want []kv) {
	t.Helper()
	g := toKVs(got)
	if fmt.Sprint(g) != fmt.Sprint(want) {
		t.Fatalf("kvs:\n got  %v\n want %v", g, want)
	}
}

// model tracks what a sequence of puts and deletes does to the store, so
// tests can state expected key-values at any revision.
type model struct {
	rev   int64
	state map[string]kv
	hist  map[int64]map[string]kv
}

func newModel() *model {
	return &model{rev: 1, state: map[string]kv{}, hist: map[int64]map[string]kv{1: {}}}
}

func (m *model) commit() {
	snap := make(map[string]kv, len(m.state))
	for k, v := range m.state {
		snap[k] = v
	}
	m.hist[m.rev] = snap
}

// put records puts of all pairs (key, value, key, value...) in one revision.
func (m *model) put(pairs ...string) int64 {
	m.rev++
	for i := 0; i < len(pairs); i += 2 {
		k, v := pairs[i], pairs[i+1]
		old, ok := m.state[k]
		n := kv{Key: k, Value: v, Create: m.rev, Mod: m.rev, Version: 1}
		if ok {
			n.Create, n.Version = old.Create, old.Version+1
		}
		m.state[k] = n
	}
	m.commit()
	return m.rev
}

// del records deleting keys in one revision.
func (m *model) del(keys ...string) int64 {
	m.rev++
	for _, k := range keys {
		delete(m.state, k)
	}
	m.commit()
	return m.rev
}

// at returns the kvs of keys as of rev, in the given order.
func (m *model) at(rev int64, keys ...string) []kv {
	out := make([]kv, 0, len(keys))
	for _, k := range keys {
		v, ok := m.hist[rev][k]
		if !ok {
			panic(fmt.Sprintf("model: key %q absent at revision %d", k, rev))
		}
		out = append(out, v)
	}
	return out
}

func (m *model) now(keys ...string) []kv { return m.at(m.rev, keys...) }

// applyPuts puts pairs one by one through cli and the model, checking every
// response revision.
func applyPuts(t testing.TB, cli *clientv3.Client, m *model, pairs ...string) {
	t.Helper()
	for i := 0; i < len(pairs); i += 2 {
		resp, err := cli.Put(ctx(t), pairs[i], pairs[i+1])
		must(t, err)
		if want := m.put(pairs[i], pairs[i+1]); resp.Header.Revision != want {
			t.Fatalf("put %q: revision %d, want %d", pairs[i], resp.Header.Revision, want)
		}
	}
}
