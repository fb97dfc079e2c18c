// Package node runs one troupe member: it turns a Config (etcd's flags,
// validated as etcd validates them) into a running member and is the root
// of its actor tree.
//
// Contract:
//   - Start decides who the member is, as etcd's start-up does (a data dir
//     with a WAL names itself and the --initial-* flags are ignored; a new
//     member of a new cluster derives its ids from the flags; a member
//     joining with --initial-cluster-state=existing asks the others), starts
//     the peer remote before any actor, then spawns the tree: peers, the
//     watch hub, the core (whose Started runs the start-up sequence from
//     disk), the corruption checker (with InitialCorruptCheck, a member
//     that had data compares its hash with the others' first, and a
//     mismatch stops the start-up with corruptcheck.ErrInconsistent), then
//     the listeners and the auto compactor. It returns once the member
//     serves clients, or with the error that stopped the start-up (a
//     *core.StartupError or *listeners.ListenError names the file or
//     address and the fix).
//   - The node actor supervises: a start-up error, a listen error or
//     core.ErrRemoved stops the member; any other failure restarts the
//     failed child (the core as a whole) within a budget of 10 failures a
//     minute, past which the member stops. Done reports why it stopped.
//   - The node makes the member's raftclient.Client and memberview.View
//     once; they outlive core restarts, so clients keep their handles while
//     the core recovers.
//   - Stop hands leadership to the most caught-up voter first, then stops
//     the tree and the remote.
//   - Restore (restore.go) makes a data dir from an etcd or troupe snapshot
//     file, as `etcdctl snapshot restore` does.
package node
