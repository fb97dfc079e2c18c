package etcdapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/troupedb/troupe/persistence/auth"
)

// tlsPeer is ctx of a request on a connection whose verified client
// certificate has common name cn, carrying md.
func tlsPeer(cn string, md metadata.MD) context.Context {
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: cn}}
	ctx := peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{
		State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}},
	}})
	return metadata.NewIncomingContext(ctx, md)
}

func TestCommonName(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		wantCN string
		wantOK bool
	}{
		{"verified certificate", tlsPeer("alice", metadata.Pairs("user-agent", "x")), "alice", true},
		{"etcd's gateway marker", tlsPeer("member", metadata.Pairs(gatewayMarker, "*/*")), "", false},
		{"troupe's gateway marker", tlsPeer("member", metadata.Pairs(gatewayCallKey, "1")), "", false},
		{"no peer", metadata.NewIncomingContext(context.Background(), metadata.Pairs("a", "b")), "", false},
		{"no verified chain", peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{}}), "", false},
	} {
		cn, ok := commonName(tc.ctx)
		if cn != tc.wantCN || ok != tc.wantOK {
			t.Errorf("%s: commonName = %q, %v; want %q, %v", tc.name, cn, ok, tc.wantCN, tc.wantOK)
		}
	}
}

func TestTokenOf(t *testing.T) {
	for _, tc := range []struct {
		md   metadata.MD
		want string
		ok   bool
	}{
		{metadata.Pairs(rpctypes.TokenFieldNameGRPC, "a.1"), "a.1", true},
		{metadata.Pairs(rpctypes.TokenFieldNameSwagger, "b.2"), "b.2", true}, // the gateway's Authorization header
		{metadata.Pairs(rpctypes.TokenFieldNameGRPC, "a.1", rpctypes.TokenFieldNameSwagger, "b.2"), "a.1", true},
		{metadata.Pairs("other", "x"), "", false},
	} {
		got, ok := tokenOf(metadata.NewIncomingContext(context.Background(), tc.md))
		if got != tc.want || ok != tc.ok {
			t.Errorf("tokenOf(%v) = %q, %v; want %q, %v", tc.md, got, ok, tc.want, tc.ok)
		}
	}
	if _, ok := tokenOf(context.Background()); ok {
		t.Error("a context without metadata has a token")
	}
}

func TestForwardToken(t *testing.T) {
	in := metadata.NewIncomingContext(context.Background(), metadata.Pairs(rpctypes.TokenFieldNameSwagger, "t.9"))
	out := forwardToken(in, context.Background())
	md, _ := metadata.FromOutgoingContext(out)
	if got := md.Get(rpctypes.TokenFieldNameGRPC); len(got) != 1 || got[0] != "t.9" {
		t.Fatalf("forwarded metadata %v, want token t.9", md)
	}
	if out := forwardToken(context.Background(), context.Background()); out != context.Background() {
		t.Fatal("a request without a token forwards metadata")
	}
}

func TestWatchDenied(t *testing.T) {
	for err, want := range map[error]error{
		auth.ErrPermissionDenied:         rpctypes.ErrGRPCPermissionDenied,
		auth.ErrUserEmpty:                rpctypes.ErrGRPCUserEmpty,
		auth.ErrAuthOldRevision:          rpctypes.ErrGRPCAuthOldRevision,
		rpctypes.ErrGRPCInvalidAuthToken: rpctypes.ErrGRPCInvalidAuthToken,
		auth.ErrUserNotFound:             rpctypes.ErrGRPCPermissionDenied, // etcd: anything else
		errors.New("boom"):               rpctypes.ErrGRPCPermissionDenied,
	} {
		if got := watchDenied(err); got != want.Error() {
			t.Errorf("watchDenied(%v) = %q, want %q", err, got, want.Error())
		}
	}
}
