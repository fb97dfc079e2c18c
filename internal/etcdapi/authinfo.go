package etcdapi

import (
	"context"
	"log/slog"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/metadata"

	"github.com/troupedb/troupe/internal/authtoken"
	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/internal/transport"
	"github.com/troupedb/troupe/persistence/auth"
)

// A call carrying either key comes from this member's own JSON gateway,
// whose certificate must not name the user: grpc-gateway's copy of the
// client's Accept header (what etcd looks at), and the key troupe's
// gateway adds to every call. A client that sends either itself only
// loses its certificate's identity.
const (
	gatewayMarker  = "grpcgateway-accept"
	gatewayCallKey = "troupe-gateway"
)

// Authenticator finds who sent a request, as etcd's AuthInfoFromCtx: the
// token of the request (gRPC metadata "token", which the actor API sets
// too, or the gateway's "authorization" header), else, with
// --client-cert-auth, the common name of the verified client certificate:
// of the gRPC call's connection, or, for an actor API request, the one its
// remote stamped on the message (transport.CertUser; a context value, so
// a gRPC client cannot set it).
type Authenticator struct {
	view           *memberview.View
	tokens         authtoken.Provider
	clientCertAuth bool
	logger         *slog.Logger
}

// NewAuthenticator returns the authenticator of a member; tokens nil
// means no token is ever valid (etcd's --auth-token="").
func NewAuthenticator(view *memberview.View, tokens authtoken.Provider, clientCertAuth bool, logger *slog.Logger) *Authenticator {
	if tokens == nil {
		tokens, _ = authtoken.New("", authtoken.Options{Logger: logger})
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Authenticator{view: view, tokens: tokens, clientCertAuth: clientCertAuth, logger: logger}
}

// noAuth is the state of a nil Authenticator: auth disabled.
var noAuth = auth.Empty()

// state is the member's auth state. A nil Authenticator (a service built
// without one: tests, the actor API's fakes) is a member whose auth is
// off: every request is anonymous and every check passes.
func (a *Authenticator) state() *auth.State {
	if a == nil {
		return noAuth
	}
	return a.view.Auth()
}

// Info returns who sent ctx's request and the auth state that answer is
// valid for. Without auth, or without any credential, the Info is empty
// (the permission checks then say "user name is empty" as etcd's); a
// token nobody issued is ErrGRPCInvalidAuthToken.
func (a *Authenticator) Info(ctx context.Context) (auth.Info, *auth.State, error) {
	st := a.state()
	if !st.Enabled() {
		return auth.Info{}, st, nil
	}
	token, ok := tokenOf(ctx)
	if ok {
		user, rev, valid := a.tokens.Info(ctx, token, st.Revision())
		if !valid {
			a.logger.Warn("invalid auth token", "token-fingerprint", authtoken.Redact(token))
			return auth.Info{}, st, rpctypes.ErrGRPCInvalidAuthToken
		}
		return auth.Info{Username: user, Revision: rev}, st, nil
	}
	if a.clientCertAuth {
		if cn, ok := commonName(ctx); ok {
			return auth.Info{Username: cn, Revision: st.Revision()}, st, nil
		}
		if cn, ok := transport.CertUser(ctx); ok {
			return auth.Info{Username: cn, Revision: st.Revision()}, st, nil
		}
	}
	return auth.Info{}, st, nil
}

// tokenOf returns the token a request carries, as etcd reads it.
func tokenOf(ctx context.Context) (string, bool) {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return "", false
	}
	ts, ok := md[rpctypes.TokenFieldNameGRPC]
	if !ok {
		ts, ok = md[rpctypes.TokenFieldNameSwagger]
	}
	if !ok || len(ts) == 0 {
		return "", false
	}
	return ts[0], true
}

// commonName is the CN of the verified client certificate of ctx's
// connection (etcd's AuthInfoFromTLS): none for a call of this member's
// own gateway, which presents the member's certificate, not the user's.
func commonName(ctx context.Context) (string, bool) {
	cn, ok := transport.VerifiedCommonName(ctx)
	if !ok {
		return "", false
	}
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok || len(md[gatewayMarker]) > 0 || len(md[gatewayCallKey]) > 0 {
		return "", false
	}
	return cn, true
}

// check runs chk with ctx's auth info: etcd's permission check of a read
// served locally. The caller reads, then calls fresh with the returned
// info to refuse an answer computed while the auth state changed.
func (a *Authenticator) check(ctx context.Context, chk func(*auth.State, auth.Info) error) (auth.Info, error) {
	ai, st, err := a.Info(ctx)
	if err != nil {
		return ai, err
	}
	return ai, authErr(chk(st, ai))
}

// fresh is etcd's check after a serialized read (doSerialize): a reader
// with an auth revision gets ErrGRPCAuthOldRevision if the auth state
// changed while it read.
func (a *Authenticator) fresh(ai auth.Info) error {
	if ai.Revision != 0 && ai.Revision != a.state().Revision() {
		return rpctypes.ErrGRPCAuthOldRevision
	}
	return nil
}

// admin is etcd's AuthAdmin.isPermitted: only users with the root role.
func (a *Authenticator) admin(ctx context.Context) error {
	_, err := a.check(ctx, func(st *auth.State, ai auth.Info) error { return st.IsAdminPermitted(ai) })
	return err
}

// stamp is the header of a proposal sent by ctx's user, as etcd's
// processInternalRaftRequestOnce fills it: the applier checks the
// permissions at the user's auth revision.
func (a *Authenticator) stamp(ctx context.Context) (user string, revision uint64, err error) {
	ai, _, err := a.Info(ctx)
	return ai.Username, ai.Revision, err
}

// authErr maps an error of persistence/auth to etcd's gRPC error.
func authErr(err error) error { return toGRPC(err) }

// forwardToken returns out carrying the token of in's request, for a
// request this member forwards to the leader's client endpoint, where
// the same permission checks apply. A user known by its certificate is
// not forwarded: the leader sees this member's certificate instead.
func forwardToken(in, out context.Context) context.Context {
	if t, ok := tokenOf(in); ok {
		return metadata.AppendToOutgoingContext(out, rpctypes.TokenFieldNameGRPC, t)
	}
	return out
}
