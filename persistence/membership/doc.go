// Package membership is the cluster's member list as etcd 3.4 keeps it:
// the Member record (with etcd's JSON, stored under the member id in hex in
// the backend's "members" bucket; removed ids go to "members_removed"),
// member and cluster ids derived as etcd derives them, the raft conf change
// context etcd proposes, and Cluster, the in-memory view the applier changes
// when a conf change commits.
//
// The checks etcd runs before proposing a change (--strict-reconfig-check,
// on by default) are here too, as pure functions of the view and of what the
// caller knows about its peers (Health) and raft progress; the checks it
// runs when the change is applied are Cluster.ValidateConfChange. The
// errors are this package's sentinels; the API layer maps them to etcd's
// gRPC errors.
//
// Plain Go: no actors, no disk (persistence/mvcc stores the records).
package membership
