package auth

import (
	"bytes"
	"encoding/base64"
	"errors"
	"maps"
	"slices"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/proto"
)

// ErrNotAuthRequest is Apply's answer to an entry that carries no auth
// request (a caller's bug).
var ErrNotAuthRequest = errors.New("auth: not an auth request")

// IsAuthRequest reports whether req carries one of the requests Apply
// applies.
func IsAuthRequest(req *pb.InternalRaftRequest) bool {
	return req.Authenticate != nil || req.AuthUserGet != nil || req.AuthRoleGet != nil || needAdmin(req)
}

// needAdmin is etcd's needAdminPermission: the auth requests only a root
// user may send (UserGet and RoleGet are checked by themselves).
func needAdmin(r *pb.InternalRaftRequest) bool {
	return r.AuthEnable != nil || r.AuthDisable != nil || r.AuthStatus != nil ||
		r.AuthUserAdd != nil || r.AuthUserDelete != nil || r.AuthUserChangePassword != nil ||
		r.AuthUserGrantRole != nil || r.AuthUserRevokeRole != nil || r.AuthRoleAdd != nil ||
		r.AuthRoleGrantPermission != nil || r.AuthRoleRevokePermission != nil || r.AuthRoleDelete != nil ||
		r.AuthUserList != nil || r.AuthRoleList != nil
}

// InfoOf is the sender of req as its header names it (etcd's
// authApplierV3 takes it from the header; none: no user).
func InfoOf(req *pb.InternalRaftRequest) Info {
	return Info{Username: req.GetHeader().GetUsername(), Revision: req.GetHeader().GetAuthRevision()}
}

// Apply applies the auth request of req as etcd's authApplierV3 and
// authStore do, with the sender from req.Header: the admin check first,
// then the request. It returns the next state (s itself when nothing
// changed, always on error), etcd's response without its header, and the
// bucket writes to store with the entry (none when nothing changed).
//
// Authenticate answers an *pb.AuthenticateResponse without a token: a
// simple token depends on the entry's index (SimpleToken), a JWT is signed
// by the API layer; the caller fills it in.
func (s *State) Apply(req *pb.InternalRaftRequest) (next *State, resp any, ops []Op, err error) {
	ai := InfoOf(req)
	if needAdmin(req) {
		if err := s.IsAdminPermitted(ai); err != nil {
			return s, nil, nil, err
		}
	}
	switch {
	case req.Authenticate != nil:
		return s.authenticate(req.Authenticate)
	case req.AuthEnable != nil:
		return s.authEnable()
	case req.AuthDisable != nil:
		return s.authDisable()
	case req.AuthStatus != nil:
		return s, &pb.AuthStatusResponse{Enabled: s.enabled, AuthRevision: s.revision}, nil, nil
	case req.AuthUserAdd != nil:
		return s.userAdd(req.AuthUserAdd)
	case req.AuthUserDelete != nil:
		return s.userDelete(req.AuthUserDelete)
	case req.AuthUserChangePassword != nil:
		return s.userChangePassword(req.AuthUserChangePassword)
	case req.AuthUserGrantRole != nil:
		return s.userGrantRole(req.AuthUserGrantRole)
	case req.AuthUserGet != nil:
		if err := s.IsAdminPermitted(ai); err != nil && req.AuthUserGet.Name != ai.Username {
			return s, nil, nil, err
		}
		return s.userGet(req.AuthUserGet)
	case req.AuthUserRevokeRole != nil:
		return s.userRevokeRole(req.AuthUserRevokeRole)
	case req.AuthRoleAdd != nil:
		return s.roleAdd(req.AuthRoleAdd)
	case req.AuthRoleGrantPermission != nil:
		return s.roleGrantPermission(req.AuthRoleGrantPermission)
	case req.AuthRoleGet != nil:
		if err := s.IsAdminPermitted(ai); err != nil && !s.HasRole(ai.Username, req.AuthRoleGet.Role) {
			return s, nil, nil, err
		}
		return s.roleGet(req.AuthRoleGet)
	case req.AuthRoleRevokePermission != nil:
		return s.roleRevokePermission(req.AuthRoleRevokePermission)
	case req.AuthRoleDelete != nil:
		return s.roleDelete(req.AuthRoleDelete)
	case req.AuthUserList != nil:
		return s, &pb.AuthUserListResponse{Users: s.userNames()}, nil, nil
	case req.AuthRoleList != nil:
		return s, &pb.AuthRoleListResponse{Roles: s.roleNames()}, nil, nil
	}
	return s, nil, nil, ErrNotAuthRequest
}

// change is a State being derived from s: copy-on-write maps.
type change struct {
	s   *State
	ops []Op
}

func (s *State) edit() *change {
	n := *s
	n.users = maps.Clone(s.users)
	n.roles = maps.Clone(s.roles)
	return &change{s: &n}
}

func (c *change) putUser(u *authpb.User) {
	c.s.users[string(u.Name)] = u
	c.ops = append(c.ops, userOp(u))
}

func (c *change) deleteUser(name string) {
	delete(c.s.users, name)
	c.ops = append(c.ops, Op{Bucket: BucketUsers, Key: []byte(name)})
}

func (c *change) putRole(r *authpb.Role) {
	c.s.roles[string(r.Name)] = r
	c.ops = append(c.ops, roleOp(r))
}

func (c *change) deleteRole(name string) {
	delete(c.s.roles, name)
	c.ops = append(c.ops, Op{Bucket: BucketRoles, Key: []byte(name)})
}

// done bumps the revision (etcd's commitRevision) and rebuilds the
// permissions (refreshRangePermCache).
func (c *change) done(resp any) (*State, any, []Op, error) {
	c.s.revision++
	c.ops = append(c.ops, revisionOp(c.s.revision))
	c.s.refreshPerms()
	return c.s, resp, c.ops, nil
}

func (s *State) authenticate(r *pb.InternalAuthenticateRequest) (*State, any, []Op, error) {
	if !s.enabled {
		return s, nil, nil, ErrAuthNotEnabled
	}
	u, ok := s.users[r.Name]
	if !ok || u.Options.GetNoPassword() {
		return s, nil, nil, ErrAuthFailed
	}
	// The password was checked before the proposal (CheckPassword); a
	// change since shows as an older revision in the token.
	return s, &pb.AuthenticateResponse{}, nil, nil
}

// authEnable needs user root with role root; it does not bump the
// revision (etcd's AuthEnable only re-reads it). Enabling twice is a no-op.
func (s *State) authEnable() (*State, any, []Op, error) {
	if s.enabled {
		return s, &pb.AuthEnableResponse{}, nil, nil
	}
	u, ok := s.users[rootUser]
	if !ok {
		return s, nil, nil, ErrRootUserNotExist
	}
	if !hasRootRole(u) {
		return s, nil, nil, ErrRootRoleNotExist
	}
	c := s.edit()
	c.s.enabled = true
	c.s.refreshPerms()
	return c.s, &pb.AuthEnableResponse{}, []Op{enabledOp(true)}, nil
}

func (s *State) authDisable() (*State, any, []Op, error) {
	if !s.enabled {
		return s, &pb.AuthDisableResponse{}, nil, nil
	}
	c := s.edit()
	c.s.enabled = false
	c.ops = append(c.ops, enabledOp(false))
	return c.done(&pb.AuthDisableResponse{})
}

// selectPassword is etcd's: a plaintext password without a hash comes
// from an entry written before 3.5 and is hashed here (bcrypt's default
// cost); otherwise the hash the API layer computed, base64.
func selectPassword(password, hashed string) ([]byte, error) {
	if password != "" && hashed == "" {
		return bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	}
	return base64.StdEncoding.DecodeString(hashed)
}

func (s *State) userAdd(r *pb.AuthUserAddRequest) (*State, any, []Op, error) {
	if r.Name == "" {
		return s, nil, nil, ErrUserEmpty
	}
	if _, ok := s.users[r.Name]; ok {
		return s, nil, nil, ErrUserAlreadyExist
	}
	opts := r.Options
	if opts == nil {
		opts = &authpb.UserAddOptions{}
	}
	var password []byte
	if !opts.NoPassword {
		var err error
		if password, err = selectPassword(r.Password, r.HashedPassword); err != nil {
			return s, nil, nil, ErrNoPasswordUser
		}
	}
	c := s.edit()
	c.putUser(&authpb.User{Name: []byte(r.Name), Password: password, Options: proto.Clone(opts).(*authpb.UserAddOptions)})
	return c.done(&pb.AuthUserAddResponse{})
}

func (s *State) userDelete(r *pb.AuthUserDeleteRequest) (*State, any, []Op, error) {
	if s.enabled && r.Name == rootUser {
		return s, nil, nil, ErrInvalidAuthMgmt
	}
	if _, ok := s.users[r.Name]; !ok {
		return s, nil, nil, ErrUserNotFound
	}
	c := s.edit()
	c.deleteUser(r.Name)
	return c.done(&pb.AuthUserDeleteResponse{})
}

func (s *State) userChangePassword(r *pb.AuthUserChangePasswordRequest) (*State, any, []Op, error) {
	u, ok := s.users[r.Name]
	if !ok {
		return s, nil, nil, ErrUserNotFound
	}
	var password []byte
	if !u.Options.GetNoPassword() {
		var err error
		if password, err = selectPassword(r.Password, r.HashedPassword); err != nil {
			return s, nil, nil, ErrNoPasswordUser
		}
	}
	c := s.edit()
	c.putUser(&authpb.User{Name: []byte(r.Name), Roles: u.Roles, Password: password, Options: u.Options})
	return c.done(&pb.AuthUserChangePasswordResponse{})
}

func (s *State) userGrantRole(r *pb.AuthUserGrantRoleRequest) (*State, any, []Op, error) {
	u, ok := s.users[r.User]
	if !ok {
		return s, nil, nil, ErrUserNotFound
	}
	if _, ok := s.roles[r.Role]; !ok && r.Role != rootRole {
		return s, nil, nil, ErrRoleNotFound
	}
	i, found := slices.BinarySearch(u.Roles, r.Role)
	if found {
		// etcd ignores a duplicate grant: no write, no new revision.
		return s, &pb.AuthUserGrantRoleResponse{}, nil, nil
	}
	c := s.edit()
	c.putUser(&authpb.User{Name: u.Name, Roles: slices.Insert(slices.Clone(u.Roles), i, r.Role), Password: u.Password, Options: u.Options})
	return c.done(&pb.AuthUserGrantRoleResponse{})
}

func (s *State) userGet(r *pb.AuthUserGetRequest) (*State, any, []Op, error) {
	u, ok := s.users[r.Name]
	if !ok {
		return s, nil, nil, ErrUserNotFound
	}
	return s, &pb.AuthUserGetResponse{Roles: slices.Clone(u.Roles)}, nil, nil
}

func (s *State) userRevokeRole(r *pb.AuthUserRevokeRoleRequest) (*State, any, []Op, error) {
	if s.enabled && r.Name == rootUser && r.Role == rootRole {
		return s, nil, nil, ErrInvalidAuthMgmt
	}
	u, ok := s.users[r.Name]
	if !ok {
		return s, nil, nil, ErrUserNotFound
	}
	roles := slices.DeleteFunc(slices.Clone(u.Roles), func(role string) bool { return role == r.Role })
	if len(roles) == len(u.Roles) {
		return s, nil, nil, ErrRoleNotGranted
	}
	if len(roles) == 0 {
		roles = nil
	}
	c := s.edit()
	c.putUser(&authpb.User{Name: u.Name, Roles: roles, Password: u.Password, Options: u.Options})
	return c.done(&pb.AuthUserRevokeRoleResponse{})
}

func (s *State) roleAdd(r *pb.AuthRoleAddRequest) (*State, any, []Op, error) {
	if r.Name == "" {
		return s, nil, nil, ErrRoleEmpty
	}
	if _, ok := s.roles[r.Name]; ok {
		return s, nil, nil, ErrRoleAlreadyExist
	}
	c := s.edit()
	c.putRole(&authpb.Role{Name: []byte(r.Name)})
	return c.done(&pb.AuthRoleAddResponse{})
}

// rootPerm is what RoleGet shows for the root role: everything.
func rootPerm() *authpb.Permission {
	return &authpb.Permission{PermType: authpb.Permission_READWRITE, Key: []byte{}, RangeEnd: []byte{0}}
}

func (s *State) roleGet(r *pb.AuthRoleGetRequest) (*State, any, []Op, error) {
	role, ok := s.roles[r.Role]
	if !ok {
		return s, nil, nil, ErrRoleNotFound
	}
	resp := &pb.AuthRoleGetResponse{}
	if r.Role == rootRole {
		resp.Perm = []*authpb.Permission{rootPerm()}
	} else {
		for _, p := range role.KeyPermission {
			resp.Perm = append(resp.Perm, proto.Clone(p).(*authpb.Permission))
		}
	}
	return s, resp, nil, nil
}

func (s *State) roleGrantPermission(r *pb.AuthRoleGrantPermissionRequest) (*State, any, []Op, error) {
	if r.Perm == nil {
		return s, nil, nil, ErrPermissionNotGiven
	}
	if !isValidPermissionRange(r.Perm.Key, r.Perm.RangeEnd) {
		return s, nil, nil, ErrInvalidAuthMgmt
	}
	role, ok := s.roles[r.Name]
	if !ok {
		return s, nil, nil, ErrRoleNotFound
	}
	perms := make([]*authpb.Permission, len(role.KeyPermission))
	for i, p := range role.KeyPermission {
		perms[i] = proto.Clone(p).(*authpb.Permission)
	}
	// etcd looks only at the first permission with the same key: one with
	// the same range is updated, otherwise a new one is added.
	i, _ := slices.BinarySearchFunc(perms, r.Perm.Key, func(p *authpb.Permission, k []byte) int { return bytes.Compare(p.Key, k) })
	if i < len(perms) && bytes.Equal(perms[i].Key, r.Perm.Key) && bytes.Equal(perms[i].RangeEnd, r.Perm.RangeEnd) {
		perms[i].PermType = r.Perm.PermType
	} else {
		perms = append(perms, &authpb.Permission{Key: slices.Clone(r.Perm.Key), RangeEnd: slices.Clone(r.Perm.RangeEnd), PermType: r.Perm.PermType})
		slices.SortStableFunc(perms, func(a, b *authpb.Permission) int { return bytes.Compare(a.Key, b.Key) })
	}
	c := s.edit()
	c.putRole(&authpb.Role{Name: role.Name, KeyPermission: perms})
	return c.done(&pb.AuthRoleGrantPermissionResponse{})
}

func (s *State) roleRevokePermission(r *pb.AuthRoleRevokePermissionRequest) (*State, any, []Op, error) {
	role, ok := s.roles[r.Role]
	if !ok {
		return s, nil, nil, ErrRoleNotFound
	}
	var kept []*authpb.Permission
	for _, p := range role.KeyPermission {
		if !bytes.Equal(p.Key, r.Key) || !bytes.Equal(p.RangeEnd, r.RangeEnd) {
			kept = append(kept, p)
		}
	}
	if len(kept) == len(role.KeyPermission) {
		return s, nil, nil, ErrPermissionNotGranted
	}
	c := s.edit()
	c.putRole(&authpb.Role{Name: role.Name, KeyPermission: kept})
	return c.done(&pb.AuthRoleRevokePermissionResponse{})
}

func (s *State) roleDelete(r *pb.AuthRoleDeleteRequest) (*State, any, []Op, error) {
	if s.enabled && r.Role == rootRole {
		return s, nil, nil, ErrInvalidAuthMgmt
	}
	if _, ok := s.roles[r.Role]; !ok {
		return s, nil, nil, ErrRoleNotFound
	}
	c := s.edit()
	c.deleteRole(r.Role)
	for _, name := range s.userNames() {
		u := s.users[name]
		if !slices.Contains(u.Roles, r.Role) {
			continue
		}
		roles := slices.DeleteFunc(slices.Clone(u.Roles), func(role string) bool { return role == r.Role })
		if len(roles) == 0 {
			roles = nil
		}
		c.putUser(&authpb.User{Name: u.Name, Roles: roles, Password: u.Password, Options: u.Options})
	}
	return c.done(&pb.AuthRoleDeleteResponse{})
}
