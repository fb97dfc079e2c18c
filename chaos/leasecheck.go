package chaos

import (
	"fmt"
	"sort"
	"sync"
	"time"
)

// LeaseOpKind is the kind of a client operation on leases.
type LeaseOpKind uint8

// Lease operation kinds.
const (
	LeaseGrant     LeaseOpKind = iota // Grant: TTL is the granted one
	LeaseKeepAlive                    // KeepAliveOnce: TTL is the answer's (0: lease not found)
	LeaseRevoke                       // Revoke
	LeasePut                          // Put(Key, WithLease(Lease))
	LeaseRead                         // linearizable Get(Key): Present says if it was there
)

func (k LeaseOpKind) String() string {
	switch k {
	case LeaseGrant:
		return "grant"
	case LeaseKeepAlive:
		return "keepalive"
	case LeaseRevoke:
		return "revoke"
	case LeasePut:
		return "put"
	case LeaseRead:
		return "read"
	}
	return fmt.Sprintf("leaseop(%d)", uint8(k))
}

// LeaseOp is one operation of a lease workload. The checker relies on the
// workload writing each leased key once, with its lease, and never
// deleting or overwriting it: only the lease's end removes it.
type LeaseOp struct {
	Kind  LeaseOpKind
	Lease int64
	Key   string        // LeasePut, LeaseRead
	TTL   time.Duration // LeaseGrant, LeaseKeepAlive: from the answer

	Call, Return time.Duration // since the start of the history
	Outcome      Outcome
	Present      bool // LeaseRead
}

func (o LeaseOp) String() string {
	s := fmt.Sprintf("%s(%x", o.Kind, o.Lease)
	if o.Key != "" {
		s += ", " + o.Key
	}
	s += ") -> " + o.Outcome.String()
	switch {
	case o.Outcome != OK:
	case o.Kind == LeaseGrant || o.Kind == LeaseKeepAlive:
		s += fmt.Sprintf(" ttl=%v", o.TTL)
	case o.Kind == LeaseRead:
		s += fmt.Sprintf(" present=%v", o.Present)
	}
	return s + fmt.Sprintf(" [%v, %v]", o.Call, o.Return)
}

// LeaseHistory collects lease operations from concurrent workers, on the
// clock of a History so that both can be read together.
type LeaseHistory struct {
	clock *History
	mu    sync.Mutex
	ops   []LeaseOp
}

// NewLeaseHistory records lease operations timed by h's clock.
func NewLeaseHistory(h *History) *LeaseHistory { return &LeaseHistory{clock: h} }

// Now is the time since the start of the history.
func (h *LeaseHistory) Now() time.Duration { return h.clock.Now() }

// Add records a finished operation.
func (h *LeaseHistory) Add(op LeaseOp) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns the operations sorted by call time.
func (h *LeaseHistory) Ops() []LeaseOp {
	h.mu.Lock()
	ops := append([]LeaseOp(nil), h.ops...)
	h.mu.Unlock()
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
	return ops
}

// leaseFacts is what the operations prove about one lease.
type leaseFacts struct {
	renewals []LeaseOp      // acknowledged grants and keepalives with a TTL
	revoke   *LeaseOp       // the earliest revoke that may have happened
	revoked  *LeaseOp       // the earliest acknowledged revoke
	notFound []LeaseOp      // acknowledged keepalives that found no lease
	puts     map[string]int // key -> index in ops of its acknowledged put
}

// CheckLeases checks that no lease ended early: a lease granted or
// renewed by a request sent at time c with TTL t was renewed by the server
// at c or later, so it lives at least until c+t unless revoked. A read
// that returned before that deadline must find the lease's keys, and a
// keepalive that returned before it must find the lease. It also checks
// that a revoke, once acknowledged, removed the keys: a read started after
// it must not find them. It returns one line per violation.
func CheckLeases(ops []LeaseOp) []string {
	facts := map[int64]*leaseFacts{}
	get := func(id int64) *leaseFacts {
		f, ok := facts[id]
		if !ok {
			f = &leaseFacts{puts: map[string]int{}}
			facts[id] = f
		}
		return f
	}
	for i, op := range ops {
		f := get(op.Lease)
		switch {
		case (op.Kind == LeaseGrant || op.Kind == LeaseKeepAlive) && op.Outcome == OK && op.TTL > 0:
			f.renewals = append(f.renewals, op)
		case op.Kind == LeaseKeepAlive && op.Outcome == OK:
			f.notFound = append(f.notFound, op)
		case op.Kind == LeaseRevoke && op.Outcome != Failed:
			if f.revoke == nil || op.Call < f.revoke.Call {
				f.revoke = &ops[i]
			}
			if op.Outcome == OK && (f.revoked == nil || op.Return < f.revoked.Return) {
				f.revoked = &ops[i]
			}
		case op.Kind == LeasePut && op.Outcome == OK:
			f.puts[op.Key] = i
		}
	}
	var out []string
	for _, op := range ops {
		if op.Kind != LeaseRead || op.Outcome != OK {
			continue
		}
		f := get(op.Lease)
		put, ok := f.puts[op.Key]
		if !ok || ops[put].Return > op.Call {
			continue // the key may not have been written yet
		}
		switch {
		case !op.Present:
			if v := f.early(op, fmt.Sprintf("key %s is gone", op.Key)); v != "" {
				out = append(out, v)
			}
		case f.revoked != nil && f.revoked.Return < op.Call:
			out = append(out, fmt.Sprintf("lease %x: key %s still there at %v after %v", op.Lease, op.Key, op, *f.revoked))
		}
	}
	for _, f := range facts {
		for _, nf := range f.notFound {
			if v := f.early(nf, "keepalive found no lease"); v != "" {
				out = append(out, v)
			}
		}
	}
	sort.Strings(out)
	return out
}

// early reports a violation if op, which saw the lease ended, returned
// before the lease's deadline and after no revoke could have started.
func (f *leaseFacts) early(op LeaseOp, what string) string {
	if f.revoke != nil && f.revoke.Call < op.Return {
		return "" // the revoke may have come first
	}
	var best *LeaseOp
	for i, r := range f.renewals {
		if op.Return < r.Call+r.TTL && (best == nil || r.Call+r.TTL > best.Call+best.TTL) {
			best = &f.renewals[i]
		}
	}
	if best == nil {
		return ""
	}
	return fmt.Sprintf("lease %x ended early: %s at %v, but %v keeps it until %v", op.Lease, what, op, *best, best.Call+best.TTL)
}
