package etcdapi

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/troupedb/troupe/internal/authtoken"
	"github.com/troupedb/troupe/persistence/auth"
)

// maxAuthenticateRounds bounds how often Authenticate checks the password
// again because the auth state changed between the check and the apply
// of its entry; etcd retries without a bound.
const maxAuthenticateRounds = 8

// AuthConfig configures the Auth service.
type AuthConfig struct {
	KV            *KV
	Authenticator *Authenticator
	Tokens        authtoken.Provider
	// BcryptCost hashes new passwords (etcd's --bcrypt-cost; out of
	// bcrypt's range: bcrypt.DefaultCost, as etcd).
	BcryptCost int
	// Hashers bounds the bcrypt computations (hashes and password checks)
	// running at once: each takes tens of milliseconds of a core at the
	// default cost, so a flood of Authenticate requests would otherwise
	// take every core from the member. Waiters wait as long as their
	// request may. <= 0: one.
	Hashers int
	Logger  *slog.Logger
}

// Auth is etcd's Auth service: every request goes through raft (the
// applier decides with the auth state in log order, as etcd's), after
// the passwords were hashed or checked here, never in the log.
type Auth struct {
	pb.UnimplementedAuthServer
	cfg     AuthConfig
	hashing chan struct{} // one token per bcrypt computation running
}

// NewAuth returns the Auth service.
func NewAuth(cfg AuthConfig) *Auth {
	if cfg.BcryptCost < bcrypt.MinCost || cfg.BcryptCost > bcrypt.MaxCost {
		if cfg.Logger != nil && cfg.BcryptCost != 0 {
			cfg.Logger.Warn("use default bcrypt cost instead of the invalid given cost",
				"min-cost", bcrypt.MinCost, "max-cost", bcrypt.MaxCost, "default-cost", bcrypt.DefaultCost, "given-cost", cfg.BcryptCost)
		}
		cfg.BcryptCost = bcrypt.DefaultCost
	}
	if cfg.Hashers <= 0 {
		cfg.Hashers = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Auth{cfg: cfg, hashing: make(chan struct{}, cfg.Hashers)}
}

// bounded runs f, a bcrypt computation, once one of the Hashers is free;
// a request whose context ends first gets etcd's error for it, and one
// that waited its whole request timeout gets "request timed out".
func (s *Auth) bounded(ctx context.Context, f func()) error {
	timeout := s.cfg.KV.cfg.Raft.RequestTimeout()
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	select {
	case s.hashing <- struct{}{}:
	case <-wctx.Done():
		if ctx.Err() != nil {
			return toGRPC(ctx.Err())
		}
		return rpctypes.ErrGRPCTimeout
	}
	defer func() { <-s.hashing }()
	f()
	return nil
}

// hash is the base64 bcrypt hash of password, as etcd puts into
// HashedPassword.
func (s *Auth) hash(ctx context.Context, password string) (string, error) {
	var (
		h   []byte
		err error
	)
	if berr := s.bounded(ctx, func() { h, err = bcrypt.GenerateFromPassword([]byte(password), s.cfg.BcryptCost) }); berr != nil {
		return "", berr
	}
	if err != nil {
		return "", status.Error(codes.Unknown, err.Error())
	}
	return base64.StdEncoding.EncodeToString(h), nil
}

// authPropose proposes an auth request and fills its response header.
func authPropose[T interface{ GetHeader() *pb.ResponseHeader }](ctx context.Context, s *Auth, r *pb.InternalRaftRequest) (T, error) {
	resp, err := proposeAs[T](ctx, s.cfg.KV, r)
	if err != nil {
		var zero T
		return zero, err
	}
	s.cfg.KV.fill(resp.GetHeader())
	return resp, nil
}

// AuthEnable turns auth on (root must exist with the root role).
func (s *Auth) AuthEnable(ctx context.Context, r *pb.AuthEnableRequest) (*pb.AuthEnableResponse, error) {
	return authPropose[*pb.AuthEnableResponse](ctx, s, &pb.InternalRaftRequest{AuthEnable: r})
}

// AuthDisable turns auth off (root only).
func (s *Auth) AuthDisable(ctx context.Context, r *pb.AuthDisableRequest) (*pb.AuthDisableResponse, error) {
	return authPropose[*pb.AuthDisableResponse](ctx, s, &pb.InternalRaftRequest{AuthDisable: r})
}

// AuthStatus reports whether auth is on and its revision, through raft as etcd.
func (s *Auth) AuthStatus(ctx context.Context, r *pb.AuthStatusRequest) (*pb.AuthStatusResponse, error) {
	return authPropose[*pb.AuthStatusResponse](ctx, s, &pb.InternalRaftRequest{AuthStatus: r})
}

// Authenticate checks a password here, with a bounded number of bcrypt
// checks at once, then proposes the Authenticate entry without it: the
// simple token is made when the entry is applied, a JWT after. As etcd,
// it checks again if the auth state changed meanwhile.
func (s *Auth) Authenticate(ctx context.Context, r *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error) {
	defer func() { r.Password = "" }() // as etcd (CVE-2021-28235): no password outlives the call
	if err := s.cfg.KV.linearizableRead(ctx); err != nil {
		return nil, err
	}
	view := s.cfg.KV.cfg.Raft.View()
	for range maxAuthenticateRounds {
		var (
			checked uint64
			err     error
		)
		if berr := s.bounded(ctx, func() { checked, err = view.Auth().CheckPassword(r.Name, r.Password) }); berr != nil {
			return nil, berr
		}
		if err != nil {
			if !errors.Is(err, auth.ErrAuthNotEnabled) {
				s.cfg.Logger.Warn("invalid authentication was requested", "user", r.Name, "error", err)
			}
			return nil, toGRPC(err)
		}
		prefix, err := s.cfg.Tokens.Prefix()
		if err != nil {
			return nil, status.Error(codes.Unknown, err.Error())
		}
		resp, err := authPropose[*pb.AuthenticateResponse](ctx, s, &pb.InternalRaftRequest{
			Authenticate: &pb.InternalAuthenticateRequest{Name: r.Name, SimpleToken: prefix},
		})
		if err != nil {
			return nil, err
		}
		if checked != view.Auth().Revision() {
			s.cfg.Logger.Info("revision when password checked became stale; retrying")
			continue
		}
		if s.cfg.Tokens.Signed() {
			if resp.Token, err = s.cfg.Tokens.Sign(r.Name, checked); err != nil {
				return nil, toGRPC(err)
			}
		}
		return resp, nil
	}
	return nil, rpctypes.ErrGRPCAuthOldRevision
}

// UserAdd adds a user; its password is hashed here, the log never holds it.
func (s *Auth) UserAdd(ctx context.Context, r *pb.AuthUserAddRequest) (*pb.AuthUserAddResponse, error) {
	if r.Options == nil || !r.Options.NoPassword {
		h, err := s.hash(ctx, r.Password)
		if err != nil {
			return nil, err
		}
		r.HashedPassword, r.Password = h, ""
	}
	return authPropose[*pb.AuthUserAddResponse](ctx, s, &pb.InternalRaftRequest{AuthUserAdd: r})
}

// UserDelete deletes a user.
func (s *Auth) UserDelete(ctx context.Context, r *pb.AuthUserDeleteRequest) (*pb.AuthUserDeleteResponse, error) {
	return authPropose[*pb.AuthUserDeleteResponse](ctx, s, &pb.InternalRaftRequest{AuthUserDelete: r})
}

// UserChangePassword changes a password, hashed here.
func (s *Auth) UserChangePassword(ctx context.Context, r *pb.AuthUserChangePasswordRequest) (*pb.AuthUserChangePasswordResponse, error) {
	if r.Password != "" {
		h, err := s.hash(ctx, r.Password)
		if err != nil {
			return nil, err
		}
		r.HashedPassword, r.Password = h, ""
	}
	return authPropose[*pb.AuthUserChangePasswordResponse](ctx, s, &pb.InternalRaftRequest{AuthUserChangePassword: r})
}

// UserGrantRole grants a role to a user.
func (s *Auth) UserGrantRole(ctx context.Context, r *pb.AuthUserGrantRoleRequest) (*pb.AuthUserGrantRoleResponse, error) {
	return authPropose[*pb.AuthUserGrantRoleResponse](ctx, s, &pb.InternalRaftRequest{AuthUserGrantRole: r})
}

// UserGet returns a user's roles.
func (s *Auth) UserGet(ctx context.Context, r *pb.AuthUserGetRequest) (*pb.AuthUserGetResponse, error) {
	return authPropose[*pb.AuthUserGetResponse](ctx, s, &pb.InternalRaftRequest{AuthUserGet: r})
}

// UserList lists the users.
func (s *Auth) UserList(ctx context.Context, r *pb.AuthUserListRequest) (*pb.AuthUserListResponse, error) {
	return authPropose[*pb.AuthUserListResponse](ctx, s, &pb.InternalRaftRequest{AuthUserList: r})
}

// UserRevokeRole revokes a role from a user.
func (s *Auth) UserRevokeRole(ctx context.Context, r *pb.AuthUserRevokeRoleRequest) (*pb.AuthUserRevokeRoleResponse, error) {
	return authPropose[*pb.AuthUserRevokeRoleResponse](ctx, s, &pb.InternalRaftRequest{AuthUserRevokeRole: r})
}

// RoleAdd adds a role.
func (s *Auth) RoleAdd(ctx context.Context, r *pb.AuthRoleAddRequest) (*pb.AuthRoleAddResponse, error) {
	return authPropose[*pb.AuthRoleAddResponse](ctx, s, &pb.InternalRaftRequest{AuthRoleAdd: r})
}

// RoleGrantPermission grants a key permission to a role.
func (s *Auth) RoleGrantPermission(ctx context.Context, r *pb.AuthRoleGrantPermissionRequest) (*pb.AuthRoleGrantPermissionResponse, error) {
	return authPropose[*pb.AuthRoleGrantPermissionResponse](ctx, s, &pb.InternalRaftRequest{AuthRoleGrantPermission: r})
}

// RoleGet returns a role's permissions.
func (s *Auth) RoleGet(ctx context.Context, r *pb.AuthRoleGetRequest) (*pb.AuthRoleGetResponse, error) {
	return authPropose[*pb.AuthRoleGetResponse](ctx, s, &pb.InternalRaftRequest{AuthRoleGet: r})
}

// RoleList lists the roles.
func (s *Auth) RoleList(ctx context.Context, r *pb.AuthRoleListRequest) (*pb.AuthRoleListResponse, error) {
	return authPropose[*pb.AuthRoleListResponse](ctx, s, &pb.InternalRaftRequest{AuthRoleList: r})
}

// RoleRevokePermission revokes a key permission from a role.
func (s *Auth) RoleRevokePermission(ctx context.Context, r *pb.AuthRoleRevokePermissionRequest) (*pb.AuthRoleRevokePermissionResponse, error) {
	return authPropose[*pb.AuthRoleRevokePermissionResponse](ctx, s, &pb.InternalRaftRequest{AuthRoleRevokePermission: r})
}

// RoleDelete deletes a role.
func (s *Auth) RoleDelete(ctx context.Context, r *pb.AuthRoleDeleteRequest) (*pb.AuthRoleDeleteResponse, error) {
	return authPropose[*pb.AuthRoleDeleteResponse](ctx, s, &pb.InternalRaftRequest{AuthRoleDelete: r})
}
