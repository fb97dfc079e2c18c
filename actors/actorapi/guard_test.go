package actorapi

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/client/actorclient"
	"github.com/troupedb/troupe/internal/polltest"
	"github.com/troupedb/troupe/messages"
)

// rawPeer is a remote peer that speaks protoactor's wire protocol by hand,
// so it can send what a real peer never would.
type rawPeer struct {
	conn   *grpc.ClientConn
	stream remote.Remoting_ReceiveClient
}

func dialRaw(t *testing.T, address string) *rawPeer {
	t.Helper()
	conn, err := grpc.NewClient(address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	stream, err := remote.NewRemotingClient(conn).Receive(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	err = stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectRequest{
		ConnectRequest: &remote.ConnectRequest{ConnectionType: &remote.ConnectRequest_ServerConnection{
			ServerConnection: &remote.ServerConnection{SystemId: "raw", Address: "127.0.0.1:1"},
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil { // ConnectResponse
		t.Fatalf("connect: %v", err)
	}
	return &rawPeer{conn: conn, stream: stream}
}

func (p *rawPeer) send(t *testing.T, batch *remote.MessageBatch) {
	t.Helper()
	if err := p.stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: batch}}); err != nil {
		t.Fatal(err)
	}
}

// sendProbe sends a valid KVRequest whose sender is a probe actor in the
// server's own system and waits for the probe to get the reply.
func (p *rawPeer) sendProbe(t *testing.T, s *Server) {
	t.Helper()
	got := make(chan *messages.KVResponse, 1)
	probe := s.System().Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if r, ok := ctx.Message().(*messages.KVResponse); ok {
			got <- r
		}
	}))
	defer s.System().Root.Stop(probe)
	data, _ := proto.Marshal(&messages.KVRequest{Id: 42, Op: &messages.KVRequest_Range{Range: &etcdserverpb.RangeRequest{Key: []byte("k")}}})
	p.send(t, &remote.MessageBatch{
		TypeNames: []string{"troupe.v1.KVRequest"},
		Targets:   []*actor.PID{s.PID()},
		Senders:   []*actor.PID{probe},
		Envelopes: []*remote.MessageEnvelope{{Sender: 1, MessageData: data}},
	})
	select {
	case r := <-got:
		if r.GetId() != 42 || r.GetRange() == nil {
			t.Fatalf("probe reply = %v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reply to the probe on the same stream")
	}
}

// badBatches are what a garbled or foreign peer could send; each one made
// the unguarded reader panic or (the last) would stop the endpoint.
func badBatches(target *actor.PID) map[string]*remote.MessageBatch {
	kv, _ := proto.Marshal(&messages.KVRequest{Id: 1})
	targets := []*actor.PID{target}
	env := func(e *remote.MessageEnvelope) []*remote.MessageEnvelope { return []*remote.MessageEnvelope{e} }
	return map[string]*remote.MessageBatch{
		"unknown type": {TypeNames: []string{"no.such.Type"}, Targets: targets,
			Envelopes: env(&remote.MessageEnvelope{MessageData: []byte{1, 2, 3}})},
		"type index": {TypeNames: []string{"troupe.v1.KVRequest"}, Targets: targets,
			Envelopes: env(&remote.MessageEnvelope{TypeId: 7, MessageData: kv})},
		"target index": {TypeNames: []string{"troupe.v1.KVRequest"}, Targets: targets,
			Envelopes: env(&remote.MessageEnvelope{Target: 3, MessageData: kv})},
		"sender index": {TypeNames: []string{"troupe.v1.KVRequest"}, Targets: targets,
			Envelopes: env(&remote.MessageEnvelope{Sender: 2, MessageData: kv})},
		"serializer": {TypeNames: []string{"troupe.v1.KVRequest"}, Targets: targets,
			Envelopes: env(&remote.MessageEnvelope{SerializerId: 9, MessageData: kv})},
		"poison pill": {TypeNames: []string{"actor.PoisonPill"}, Targets: targets,
			Envelopes: env(&remote.MessageEnvelope{})},
		"garbled data": {TypeNames: []string{"troupe.v1.KVRequest"}, Targets: targets,
			Envelopes: env(&remote.MessageEnvelope{MessageData: []byte{0xff, 0xff, 0xff}})},
	}
}

// TestGuardSurvivesBadTraffic sends every bad batch, a garbage gRPC frame
// and the unimplemented unary calls; the process must survive and the
// endpoint answer afterwards.
func TestGuardSurvivesBadTraffic(t *testing.T) {
	s := startServer(t, ServeConfig{KV: newFakeKV()})
	for name, batch := range badBatches(s.PID()) {
		t.Run(name, func(t *testing.T) {
			p := dialRaw(t, s.Address())
			p.send(t, batch)
			// A proper request follows on the same stream; its reply proves
			// the bad batch was read (in order) and the stream still works.
			// Undecodable data of a known type is the exception: the reader
			// ends that stream with an error (the peer reconnects).
			if name != "garbled data" {
				p.sendProbe(t, s)
			}
			assertServes(t, s)
		})
	}
	t.Run("garbage frame", func(t *testing.T) {
		conn, err := grpc.NewClient(s.Address(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		desc := &grpc.StreamDesc{StreamName: "Receive", ServerStreams: true, ClientStreams: true}
		st, err := conn.NewStream(context.Background(), desc, "/remote.Remoting/Receive", grpc.ForceCodecV2(rawCodec{}))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.SendMsg([]byte{0xff, 0xfe, 0x01, 0x80, 0x80}); err != nil {
			t.Fatal(err)
		}
		var reply []byte
		if err := st.RecvMsg(&reply); err == nil {
			t.Fatal("garbage frame answered")
		}
		assertServes(t, s)
	})
	t.Run("unimplemented calls", func(t *testing.T) {
		conn, err := grpc.NewClient(s.Address(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		rc := remote.NewRemotingClient(conn)
		if _, err := rc.ListProcesses(context.Background(), &remote.ListProcessesRequest{}); err == nil {
			t.Fatal("ListProcesses succeeded")
		}
		if _, err := rc.GetProcessDiagnostics(context.Background(), &remote.GetProcessDiagnosticsRequest{}); err == nil {
			t.Fatal("GetProcessDiagnostics succeeded")
		}
		assertServes(t, s)
	})
	waitStreamsEnded(t, s)
}

// waitStreamsEnded waits until only the server's stream from itself (the
// endpoint writer of assertServes' client) is left: protoactor's
// Remote.Shutdown and a stream's end race on that stream's channel (see
// ShutdownRemote), which the race detector reports.
func waitStreamsEnded(t *testing.T, s *Server) {
	t.Helper()
	polltest.Eventually(t, 5*time.Second, "inbound streams end after their clients closed", func() (bool, string) {
		n := s.guard.Streams()
		return n <= 1, fmt.Sprintf("%d open", n)
	})
}

// assertServes checks that the remote accepts a new peer and the endpoint
// answers.
func assertServes(t *testing.T, s *Server) {
	t.Helper()
	dialRaw(t, s.Address())
	c := actorclient.New(s.System(), s.Address(), actorclient.WithTimeout(5*time.Second))
	if _, err := c.Put(context.Background(), &etcdserverpb.PutRequest{Key: []byte("alive")}); err != nil {
		t.Fatalf("endpoint does not answer: %v", err)
	}
}

// TestUnguardedRemotePanics shows why the guard exists: in a child process
// a plain protoactor remote receives a message of a type the process has not
// linked in, and the process dies.
func TestUnguardedRemotePanics(t *testing.T) {
	if os.Getenv("ACTORAPI_UNGUARDED") == "1" {
		system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quietLogger() }))
		r := remote.NewRemote(system, remote.Configure("127.0.0.1", 0))
		r.Start()
		p := dialRaw(t, system.ProcessRegistry.Address)
		p.send(t, badBatches(actor.NewPID(system.ProcessRegistry.Address, "kv"))["unknown type"])
		// Wall clock on purpose: this is the child process, kept alive
		// until protoactor's reader panics (long before).
		time.Sleep(5 * time.Second)
		return
	}
	if testing.Short() {
		t.Skip("runs a child process")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestUnguardedRemotePanics$")
	cmd.Env = append(os.Environ(), "ACTORAPI_UNGUARDED=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("unguarded remote survived:\n%s", out)
	}
	if !strings.Contains(string(out), "nil pointer dereference") {
		t.Fatalf("child failed otherwise: %v\n%s", err, out)
	}
}

// rawCodec sends bytes as they are, to put garbage on the wire.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*(v.(*[]byte)) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }
