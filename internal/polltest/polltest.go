// Package polltest waits, in tests of real processes and real sockets,
// until a condition holds: members that talk over loopback TCP (protoactor
// remote, gRPC) cannot run in a testing/synctest bubble, so their tests
// wait in real time. Every such wait goes through Eventually, which
// bounds it and names what did not happen; tests of a single actor use
// synctest instead and never need this package.
package polltest

import (
	"testing"
	"time"
)

// Interval is the pause between two checks of a condition.
const Interval = 20 * time.Millisecond

// Eventually checks cond until it returns true, and fails t with what
// (and the last detail cond gave, if any) when within passes first.
func Eventually(t testing.TB, within time.Duration, what string, cond func() (done bool, detail string)) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for {
		done, detail := cond()
		if done {
			return
		}
		select {
		case <-deadline.C:
			if detail != "" {
				t.Fatalf("%s: not within %s (%s)", what, within, detail)
			}
			t.Fatalf("%s: not within %s", what, within)
		case <-tick.C:
		}
	}
}
