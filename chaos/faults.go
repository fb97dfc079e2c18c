package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Fault is a kind of fault the injector can apply.
type Fault string

// Faults. Each one is applied, held for a seeded while, and healed before
// the next one starts, so at most a minority of members is disturbed at a
// time except under KillMajority.
const (
	KillMember     Fault = "kill"           // kill -9 a random member, restart it
	KillLeader     Fault = "kill-leader"    // kill -9 the leader, restart it
	StopMember     Fault = "stop"           // SIGTERM a random member, restart it (Stopper)
	PauseMember    Fault = "pause"          // SIGSTOP a random member, SIGCONT it (Pauser)
	PauseLeader    Fault = "pause-leader"   // SIGSTOP the leader, SIGCONT it (Pauser)
	KillMajority   Fault = "kill-majority"  // kill -9 a majority: no quorum, then restart all
	FailpointPanic Fault = "failpoint"      // restart a member with a fault point armed (FailpointRestarter)
	FailpointSlow  Fault = "failpoint-slow" // restart a member with a slow fsync (FailpointRestarter)
)

// Supported returns the faults c can apply, in a fixed order.
func Supported(c Cluster) []Fault {
	fs := []Fault{KillMember, KillLeader, KillMajority}
	if _, ok := c.(Stopper); ok {
		fs = append(fs, StopMember)
	}
	if _, ok := c.(Pauser); ok {
		fs = append(fs, PauseMember, PauseLeader)
	}
	if _, ok := c.(FailpointRestarter); ok {
		fs = append(fs, FailpointPanic, FailpointSlow)
	}
	return fs
}

// panicPoints are troupe's fault points that panic an actor; each is armed
// to fire once, after a seeded number of hits.
var panicPoints = []string{"raftPanic", "walPanic", "applierPanic", "snapshotterPanic", "kvRangePanic"}

// injector applies a seeded sequence of faults.
type injector struct {
	c      Cluster
	cfg    Config
	rng    *rand.Rand
	faults []Fault
	logf   func(string, ...any)
	now    func() time.Duration // time on the history's clock

	mu     sync.Mutex
	counts map[Fault]int
	errs   []error
}

// run applies faults until ctx is done; the fault in progress is healed
// before it returns.
func (in *injector) run(ctx context.Context) {
	for {
		sleepCtx(ctx, in.between())
		if ctx.Err() != nil {
			return
		}
		f := in.faults[in.rng.IntN(len(in.faults))]
		hold := in.hold()
		at := in.now()
		desc, err := in.apply(f, hold)
		if err != nil {
			in.fail(fmt.Errorf("%s at %v: %w", f, at, err))
			continue
		}
		if desc != "" {
			in.mu.Lock()
			in.counts[f]++
			in.mu.Unlock()
			in.logf("chaos: at %v %s %s, held %v, healed at %v", at, f, desc, hold.Round(time.Millisecond), in.now())
		}
	}
}

func (in *injector) between() time.Duration {
	lo, hi := in.cfg.FaultInterval/2, in.cfg.FaultInterval*3/2
	return lo + time.Duration(in.rng.Int64N(int64(hi-lo)+1))
}

func (in *injector) hold() time.Duration {
	return in.cfg.HoldMin + time.Duration(in.rng.Int64N(int64(in.cfg.HoldMax-in.cfg.HoldMin)+1))
}

func (in *injector) fail(err error) {
	in.logf("chaos: fault failed: %v", err)
	in.mu.Lock()
	in.errs = append(in.errs, err)
	in.mu.Unlock()
}

// apply applies fault f for hold and heals it. It returns a description of
// what was done, "" when the fault was skipped (no leader to target).
func (in *injector) apply(f Fault, hold time.Duration) (string, error) {
	n := in.c.Size()
	target := in.rng.IntN(n)
	// Draw everything from the rng before acting, so that the sequence
	// of draws does not depend on timing.
	spec := in.failpointSpec(f)
	others := in.rng.Perm(n)
	switch f {
	case KillLeader, PauseLeader:
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		l, err := in.c.Leader(ctx)
		cancel()
		if err != nil {
			in.logf("chaos: %s skipped: %v", f, err)
			return "", nil
		}
		target = l
	}
	switch f {
	case KillMember, KillLeader:
		if err := in.c.Kill(target); err != nil {
			return "", err
		}
		time.Sleep(hold)
		return member(target), in.c.Restart(target)
	case StopMember:
		if err := in.c.(Stopper).Stop(target); err != nil {
			return "", err
		}
		time.Sleep(hold)
		return member(target), in.c.Restart(target)
	case PauseMember, PauseLeader:
		p := in.c.(Pauser)
		if err := p.Pause(target); err != nil {
			return "", err
		}
		time.Sleep(hold)
		return member(target), p.Resume(target)
	case KillMajority:
		victims := others[:n/2+1]
		for _, i := range victims {
			if err := in.c.Kill(i); err != nil {
				return "", err
			}
		}
		time.Sleep(hold)
		return fmt.Sprint(victims), in.restartAll(victims)
	case FailpointPanic, FailpointSlow:
		fr := in.c.(FailpointRestarter)
		if err := in.c.Kill(target); err != nil {
			return "", err
		}
		if err := fr.RestartWithFailpoints(target, spec); err != nil {
			// A fault point may well take the member down; that is
			// the point. What must work is the clean restart below.
			in.logf("chaos: %s %s with %q: %v", f, member(target), spec, err)
		}
		time.Sleep(hold)
		if err := in.c.Kill(target); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s %q", member(target), spec), in.c.Restart(target)
	}
	return "", fmt.Errorf("unknown fault %q", f)
}

func (in *injector) failpointSpec(f Fault) string {
	p := panicPoints[in.rng.IntN(len(panicPoints))]
	after := in.rng.IntN(50)
	switch f {
	case FailpointPanic:
		return fmt.Sprintf("%s=after(%d):1*panic", p, after)
	case FailpointSlow:
		return fmt.Sprintf("walBeforeFsync=sleep(%dms)", 5+in.rng.IntN(30))
	}
	return ""
}

// restartAll restarts members concurrently: each one's readiness may need
// the others (a quorum) up.
func (in *injector) restartAll(ms []int) error {
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for k, i := range ms {
		wg.Go(func() { errs[k] = in.c.Restart(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// heal resumes every member and restarts the dead ones.
func heal(c Cluster) error {
	var dead []int
	for i := range c.Size() {
		if p, ok := c.(Pauser); ok {
			if err := p.Resume(i); err != nil {
				return err
			}
		}
		if !c.Alive(i) {
			dead = append(dead, i)
		}
	}
	in := &injector{c: c}
	return in.restartAll(dead)
}

func member(i int) string { return fmt.Sprintf("m%d", i) }

func newRand(seed int64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), stream))
}
