// Package auth is etcd's auth store as data: users, roles and their key
// permissions, whether auth is enabled, the auth revision, the permission
// checks every request passes, and how each auth request of a raft entry
// changes them. It knows nothing of actors or gRPC: the applier owns the
// one State a member applies to (Apply, in log order) and publishes it in
// the member view; the API layer checks requests against the published
// State and maps the sentinel errors to etcd's gRPC errors.
//
// A State is never changed once made (Apply returns the next one), so any
// goroutine may read a published State without locks.
//
// Format (etcd 3.6's server/storage/schema, so an etcd backend restored
// into troupe keeps its users and roles, and the reverse):
//   - bucket "auth": key "authEnabled" = one byte, 1 enabled, 0 disabled;
//     key "authRevision" = the auth revision, 8 bytes big-endian.
//   - bucket "authUsers": user name -> marshalled authpb.User (Password is
//     the bcrypt hash; Roles sorted).
//   - bucket "authRoles": role name -> marshalled authpb.Role
//     (KeyPermission sorted by key).
//
// Apply returns the bucket writes (Op) of a change; the caller stores them
// in the entry's batch with the applied index, so a replayed entry is
// skipped with them.
package auth
