package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

func TestGuardRejectsUnlinkedAcceptedType(t *testing.T) {
	g := newGuard([]string{"no.such.Type"}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	batch := &remote.MessageBatch{TypeNames: []string{"no.such.Type"}, Targets: []*actor.PID{actor.NewPID("x", "kv")},
		Envelopes: []*remote.MessageEnvelope{{MessageData: []byte{1, 2, 3}}}}
	if reason := g.reject(batch, batch.Envelopes[0]); !strings.Contains(reason, "not linked in") {
		t.Fatalf("reject = %q", reason)
	}
	g.filter(batch, "")
	if len(batch.Envelopes) != 0 {
		t.Fatalf("filter kept %d envelopes", len(batch.Envelopes))
	}
}

// batchStream is a remote stream on a connection described by ctx that
// delivers one batch.
type batchStream struct {
	grpc.ServerStream
	ctx   context.Context
	batch *remote.MessageBatch
}

func (s *batchStream) Context() context.Context { return s.ctx }

func (s *batchStream) RecvMsg(m any) error {
	if s.batch == nil {
		return io.EOF
	}
	m.(*remote.RemoteMessage).MessageType = &remote.RemoteMessage_MessageBatch{MessageBatch: s.batch}
	s.batch = nil
	return nil
}

// The stamp sees every accepted envelope with the verified CN of its
// stream's connection, "" without one, and never a dropped envelope.
func TestGuardStampsVerifiedCommonName(t *testing.T) {
	verified := credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{Subject: pkix.Name{CommonName: "alice"}}}}}}
	unverified := credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{CommonName: "mallory"}}}}}
	for name, tc := range map[string]struct {
		peer   *peer.Peer
		wantCN string
	}{
		"verified certificate":   {&peer.Peer{AuthInfo: verified}, "alice"},
		"unverified certificate": {&peer.Peer{AuthInfo: unverified}, ""},
		"plaintext":              {&peer.Peer{}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			var seen []string
			stamp := func(typeName string, data []byte, cn string) []byte {
				seen = append(seen, typeName+"/"+cn)
				return append(data, cn...)
			}
			g := newGuard([]string{"actor.Terminated"}, stamp, slog.New(slog.DiscardHandler))
			batch := &remote.MessageBatch{
				TypeNames: []string{"actor.Terminated", "actor.Stop"}, Targets: []*actor.PID{actor.NewPID("x", "kv")},
				Envelopes: []*remote.MessageEnvelope{{MessageData: []byte("a")}, {TypeId: 1, MessageData: []byte("b")}},
			}
			ss := &batchStream{ctx: peer.NewContext(context.Background(), tc.peer), batch: batch}
			err := g.stream(nil, ss, &grpc.StreamServerInfo{FullMethod: "/remote.Remoting/Receive"}, func(_ any, s grpc.ServerStream) error {
				return s.RecvMsg(&remote.RemoteMessage{})
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(seen) != 1 || seen[0] != "actor.Terminated/"+tc.wantCN {
				t.Errorf("stamp calls = %q, want [actor.Terminated/%s]", seen, tc.wantCN)
			}
			if len(batch.Envelopes) != 1 || string(batch.Envelopes[0].MessageData) != "a"+tc.wantCN {
				t.Errorf("envelopes after the guard = %v", batch.Envelopes)
			}
		})
	}
}
