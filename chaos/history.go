package chaos

import (
	"fmt"
	"sort"
	"sync"
	"time"
)

// OpKind is the kind of a client operation.
type OpKind uint8

// Operation kinds of the workload.
const (
	Get OpKind = iota // linearizable Range of one key
	Put               // Put of a value no other operation writes
	CAS               // Txn: if value(key) == Expect then put(key, Value)
)

func (k OpKind) String() string {
	switch k {
	case Get:
		return "get"
	case Put:
		return "put"
	case CAS:
		return "cas"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// Outcome says what a client knows about an operation after it returned.
type Outcome uint8

// Outcomes.
const (
	OK      Outcome = iota // acknowledged; the result fields hold the answer
	Failed                 // a read that failed: it had no effect, not checked
	Unknown                // a write that failed ambiguously: it may or may not have happened
)

func (o Outcome) String() string {
	switch o {
	case OK:
		return "ok"
	case Failed:
		return "failed"
	case Unknown:
		return "unknown"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// Op is one operation of the history. Values are unique per write, so a
// value read names the write that produced it; "" means the key is absent.
type Op struct {
	Process int // porcupine client id: a worker takes a new one after an Unknown
	Worker  int
	Kind    OpKind
	Key     string
	Value   string // value written by Put and CAS
	Expect  string // value CAS compares against

	Call, Return time.Duration // since the start of the schedule
	Outcome      Outcome
	Read         string // Get: value read ("" if absent)
	Succeeded    bool   // CAS: the comparison held and Value was written
	Revision     int64  // header revision of an acknowledged answer
	Err          string
}

func (o Op) String() string {
	var in string
	switch o.Kind {
	case Get:
		in = fmt.Sprintf("get(%s)", o.Key)
	case Put:
		in = fmt.Sprintf("put(%s, %s)", o.Key, o.Value)
	case CAS:
		in = fmt.Sprintf("cas(%s, %s -> %s)", o.Key, o.Expect, o.Value)
	}
	out := o.Outcome.String()
	switch {
	case o.Outcome != OK:
		out += " " + o.Err
	case o.Kind == Get:
		out = fmt.Sprintf("%q", o.Read)
	case o.Kind == CAS:
		out = fmt.Sprint(o.Succeeded)
	}
	if o.Outcome == OK {
		out += fmt.Sprintf(" rev=%d", o.Revision)
	}
	return fmt.Sprintf("p%d w%d %s -> %s [%v, %v]", o.Process, o.Worker, in, out, o.Call, o.Return)
}

// writes reports whether the op wrote its value for sure (acknowledged Put,
// acknowledged successful CAS).
func (o Op) wrote() bool {
	return o.Outcome == OK && (o.Kind == Put || (o.Kind == CAS && o.Succeeded))
}

// mayWrite reports whether the op may have written its value.
func (o Op) mayWrite() bool {
	return o.wrote() || (o.Outcome == Unknown && o.Kind != Get)
}

// History collects operations from concurrent workers.
type History struct {
	start time.Time
	mu    sync.Mutex
	ops   []Op
}

// NewHistory starts a history whose times count from now.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the time since the start of the history.
func (h *History) Now() time.Duration { return time.Since(h.start) }

// Add records a finished operation.
func (h *History) Add(op Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns the operations sorted by call time.
func (h *History) Ops() []Op {
	h.mu.Lock()
	ops := append([]Op(nil), h.ops...)
	h.mu.Unlock()
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
	return ops
}
