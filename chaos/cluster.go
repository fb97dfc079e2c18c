package chaos

import "context"

// Cluster is what the harness drives: a set of members addressed by index
// 0..Size()-1, each a process that can be killed and restarted on its own
// data. Every method may be called from any goroutine and must not block
// longer than its own bounded waits.
type Cluster interface {
	// Size is the number of members.
	Size() int
	// Endpoints returns the client URLs of every member, indexed by member.
	Endpoints() []string
	// Alive reports whether member i's process runs (a paused one counts).
	Alive(i int) bool
	// Kill stops member i abruptly (SIGKILL) and returns once it exited.
	Kill(i int) error
	// Restart starts member i again on its data dir and returns once it
	// serves clients (or an error after a bounded wait).
	Restart(i int) error
	// Leader returns the index of the current leader, waiting until ctx is
	// done for the live members to agree on one.
	Leader(ctx context.Context) (int, error)
}

// Pauser is a Cluster that can freeze a member (SIGSTOP) and continue it
// (SIGCONT): a frozen member neither sends nor answers, like a partition
// that also stops its clock.
type Pauser interface {
	Pause(i int) error
	Resume(i int) error
}

// Stopper is a Cluster that can stop a member gracefully (SIGTERM).
type Stopper interface {
	Stop(i int) error
}

// FailpointRestarter is a Cluster whose members can be restarted with fault
// points armed (troupe's TROUPE_FAILPOINTS syntax, e.g.
// "applierPanic=after(20):1*panic"). The armed points hold for that run of
// the process only; Restart starts it clean.
type FailpointRestarter interface {
	RestartWithFailpoints(i int, failpoints string) error
}
