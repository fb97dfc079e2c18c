package auth

import (
	"encoding/binary"
	"fmt"
	"slices"

	"go.etcd.io/etcd/api/v3/authpb"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/proto"
)

// Bucket and key names, as etcd 3.6 (server/storage/schema/bucket.go).
var (
	BucketAuth  = []byte("auth")
	BucketUsers = []byte("authUsers")
	BucketRoles = []byte("authRoles")
	KeyEnabled  = []byte("authEnabled")
	KeyRevision = []byte("authRevision")
)

const (
	rootUser = "root"
	rootRole = "root"
)

// Info is who sent a request, as etcd's AuthInfo: the user name and the
// auth revision its token or certificate was checked at.
type Info struct {
	Username string
	Revision uint64
}

// Op is one write to an auth bucket; a nil Value deletes Key.
type Op struct {
	Bucket, Key, Value []byte
}

// State is the auth store at one applied index. Immutable: share freely.
type State struct {
	enabled  bool
	revision uint64
	users    map[string]*authpb.User
	roles    map[string]*authpb.Role
	perms    map[string]*userPerms // user name -> merged permissions
}

// Empty is the auth state of a new backend: disabled, no users or roles,
// revision 1 (etcd's NewAuthStore bumps a backend's missing revision 0 to
// 1 when it opens it, see InitialRevision).
func Empty() *State {
	return &State{revision: InitialRevision, users: map[string]*authpb.User{}, roles: map[string]*authpb.Role{}, perms: map[string]*userPerms{}}
}

// InitialRevision is the auth revision etcd writes into a backend that has
// none.
const InitialRevision = 1

// Load builds the State from the contents of the three auth buckets (any
// order; keys of other buckets are an error).
func Load(kvs []Op) (*State, error) {
	s := Empty()
	s.revision = 0
	for _, kv := range kvs {
		switch string(kv.Bucket) {
		case string(BucketAuth):
			switch string(kv.Key) {
			case string(KeyEnabled):
				s.enabled = len(kv.Value) == 1 && kv.Value[0] == 1
			case string(KeyRevision):
				if len(kv.Value) != 8 {
					return nil, fmt.Errorf("auth: bucket %q key %q: %d bytes, want 8", BucketAuth, KeyRevision, len(kv.Value))
				}
				s.revision = binary.BigEndian.Uint64(kv.Value)
			}
		case string(BucketUsers):
			u := &authpb.User{}
			if err := proto.Unmarshal(kv.Value, u); err != nil {
				return nil, fmt.Errorf("auth: bucket %q user %q: %w", BucketUsers, kv.Key, err)
			}
			s.users[string(u.Name)] = u
		case string(BucketRoles):
			r := &authpb.Role{}
			if err := proto.Unmarshal(kv.Value, r); err != nil {
				return nil, fmt.Errorf("auth: bucket %q role %q: %w", BucketRoles, kv.Key, err)
			}
			s.roles[string(r.Name)] = r
		default:
			return nil, fmt.Errorf("auth: key %q of bucket %q is not an auth bucket", kv.Key, kv.Bucket)
		}
	}
	s.refreshPerms()
	return s, nil
}

// Ops returns the whole state as bucket writes (what Load reads back).
func (s *State) Ops() []Op {
	ops := []Op{enabledOp(s.enabled), revisionOp(s.revision)}
	for _, name := range s.userNames() {
		ops = append(ops, userOp(s.users[name]))
	}
	for _, name := range s.roleNames() {
		ops = append(ops, roleOp(s.roles[name]))
	}
	return ops
}

func enabledOp(on bool) Op {
	v := []byte{0}
	if on {
		v[0] = 1
	}
	return Op{Bucket: BucketAuth, Key: KeyEnabled, Value: v}
}

// RevisionOp is the write of auth revision rev.
func revisionOp(rev uint64) Op {
	return Op{Bucket: BucketAuth, Key: KeyRevision, Value: binary.BigEndian.AppendUint64(nil, rev)}
}

// InitialOps are the writes that make a backend without an auth revision
// look as etcd leaves it when it opens one: revision 1.
func InitialOps() []Op { return []Op{revisionOp(InitialRevision)} }

func marshal(m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("auth: marshal %T: %v", m, err)) // bytes and strings cannot fail
	}
	return b
}

func userOp(u *authpb.User) Op {
	return Op{Bucket: BucketUsers, Key: slices.Clone(u.Name), Value: marshal(u)}
}

func roleOp(r *authpb.Role) Op {
	return Op{Bucket: BucketRoles, Key: slices.Clone(r.Name), Value: marshal(r)}
}

// refreshPerms rebuilds every user's merged permissions, as etcd's
// refreshRangePermCache after each change.
func (s *State) refreshPerms() {
	s.perms = make(map[string]*userPerms, len(s.users))
	for name, u := range s.users {
		s.perms[name] = mergePerms(u, s.roles)
	}
}

// Enabled reports whether auth is on.
func (s *State) Enabled() bool { return s.enabled }

// Revision is the auth revision: bumped by every change of users, roles
// or permissions and by AuthDisable, as etcd.
func (s *State) Revision() uint64 { return s.revision }

// User returns the named user (do not modify it).
func (s *State) User(name string) (*authpb.User, bool) {
	u, ok := s.users[name]
	return u, ok
}

// Role returns the named role (do not modify it).
func (s *State) Role(name string) (*authpb.Role, bool) {
	r, ok := s.roles[name]
	return r, ok
}

// HasRole reports whether user has role.
func (s *State) HasRole(user, role string) bool {
	u, ok := s.users[user]
	return ok && slices.Contains(u.Roles, role)
}

func (s *State) userNames() []string {
	names := make([]string, 0, len(s.users))
	for n := range s.users {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (s *State) roleNames() []string {
	names := make([]string, 0, len(s.roles))
	for n := range s.roles {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func hasRootRole(u *authpb.User) bool {
	_, found := slices.BinarySearch(u.Roles, rootRole)
	return found
}

// CheckPassword checks name's password and returns the auth revision it
// was checked at, as etcd's CheckPassword: ErrAuthNotEnabled,
// ErrAuthFailed (no such user, wrong password), ErrNoPasswordUser. The
// bcrypt compare is deliberately slow; the caller bounds how many run.
func (s *State) CheckPassword(name, password string) (uint64, error) {
	if !s.enabled {
		return 0, ErrAuthNotEnabled
	}
	u, ok := s.users[name]
	if !ok {
		return 0, ErrAuthFailed
	}
	if u.Options.GetNoPassword() {
		return 0, ErrNoPasswordUser
	}
	if bcrypt.CompareHashAndPassword(u.Password, []byte(password)) != nil {
		return 0, ErrAuthFailed
	}
	return s.revision, nil
}
