package actorapi

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/troupedb/troupe/internal/transport"
	"github.com/troupedb/troupe/messages"
)

// The stamp overrides whatever cert_user the sender encoded, clears it
// for a connection without a verified certificate, keeps every other
// field, and leaves types without cert_user alone.
func TestStampCertUserOverridesSender(t *testing.T) {
	reqs := []proto.Message{
		&messages.KVRequest{Id: 7, Token: "tok", CertUser: "root", Op: &messages.KVRequest_Put{Put: &etcdserverpb.PutRequest{Key: []byte("k"), Value: []byte("v")}}},
		&messages.LeaseRequest{Id: 8, Token: "tok", CertUser: "root", Op: &messages.LeaseRequest_Grant{Grant: &etcdserverpb.LeaseGrantRequest{TTL: 5}}},
		&messages.WatchRequest{Token: "tok", CertUser: "root", Request: &etcdserverpb.WatchRequest{}},
		&messages.KVRequest{Id: 9}, // no cert_user encoded at all
	}
	for _, req := range reqs {
		name := string(req.ProtoReflect().Descriptor().FullName())
		data, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		for _, cn := range []string{"alice", ""} {
			got := req.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(StampCertUser(name, bytes.Clone(data), cn), got); err != nil {
				t.Fatalf("%s stamped with %q: %v", name, cn, err)
			}
			want := proto.Clone(req)
			want.ProtoReflect().Set(want.ProtoReflect().Descriptor().Fields().ByName("cert_user"), protoreflect.ValueOfString(cn))
			if !proto.Equal(got, want) {
				t.Errorf("%s stamped with %q = %v, want %v", name, cn, got, want)
			}
		}
	}
	ack, _ := proto.Marshal(&messages.WatchAck{})
	if got := StampCertUser("troupe.v1.WatchAck", bytes.Clone(ack), "alice"); !bytes.Equal(got, ack) {
		t.Errorf("WatchAck changed by the stamp: %x, was %x", got, ack)
	}
}

// certUserKV records the cert user each Range's context carries.
type certUserKV struct {
	*fakeKV
	seen chan string
}

func (k certUserKV) Range(ctx context.Context, r *etcdserverpb.RangeRequest) (*etcdserverpb.RangeResponse, error) {
	cn, ok := transport.CertUser(ctx)
	if !ok {
		cn = "(none)"
	}
	k.seen <- cn
	return k.fakeKV.Range(ctx, r)
}

// An endpoint hands a request's cert_user to the services only when its
// remote stamps it (Config.StampedCertUser).
func TestCertUserReachesServicesOnlyWhenStamped(t *testing.T) {
	for stamped, want := range map[bool]string{true: "alice", false: "(none)"} {
		system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quietLogger() }))
		kv := certUserKV{fakeKV: newFakeKV(), seen: make(chan string, 1)}
		pid := system.Root.Spawn(Props(Config{KV: kv, StampedCertUser: stamped, Logger: quietLogger()}))
		req := &messages.KVRequest{Id: 1, CertUser: "alice", Op: &messages.KVRequest_Range{Range: &etcdserverpb.RangeRequest{Key: []byte("k")}}}
		if _, err := system.Root.RequestFuture(pid, req, 10*time.Second).Result(); err != nil {
			t.Fatalf("stamped=%v: %v", stamped, err)
		}
		if got := <-kv.seen; got != want {
			t.Errorf("stamped=%v: KV saw cert user %q, want %q", stamped, got, want)
		}
		if err := system.Root.StopFuture(pid).Wait(); err != nil {
			t.Fatal(err)
		}
		system.Shutdown()
	}
}
