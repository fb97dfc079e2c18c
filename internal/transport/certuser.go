package transport

import (
	"context"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Stamp rewrites the encoded data of an accepted remote message of type
// typeName (a protobuf full name) so that it carries commonName, the CN of
// the verified client certificate of the connection it came in on ("" when
// the connection has none). It must overwrite whatever the sender put, so
// that a caller cannot name a user its certificate does not. The actor API
// supplies one (actorapi.StampCertUser); a remote without one (the peers')
// pays nothing.
type Stamp func(typeName string, data []byte, commonName string) []byte

// VerifiedCommonName is the CN of the first verified client certificate of
// the connection ctx's gRPC call or stream came in on, as etcd's
// AuthInfoFromTLS reads it; false without TLS or without a verified
// client certificate.
func VerifiedCommonName(ctx context.Context) (string, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok || p == nil || p.AuthInfo == nil {
		return "", false
	}
	tlsInfo, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return "", false
	}
	for _, chain := range tlsInfo.State.VerifiedChains {
		if len(chain) > 0 {
			return chain[0].Subject.CommonName, true
		}
	}
	return "", false
}

type certUserKey struct{}

// WithCertUser returns ctx carrying cn, the verified certificate CN of a
// request that did not arrive as a gRPC call (an actor API message, which
// its remote's Stamp marked); "" adds nothing. Only code of this process
// can set it: a gRPC client cannot, unlike metadata.
func WithCertUser(ctx context.Context, cn string) context.Context {
	if cn == "" {
		return ctx
	}
	return context.WithValue(ctx, certUserKey{}, cn)
}

// CertUser is the CN WithCertUser put in ctx.
func CertUser(ctx context.Context) (string, bool) {
	cn, ok := ctx.Value(certUserKey{}).(string)
	return cn, ok
}
