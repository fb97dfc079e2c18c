// Package alarm is etcd's alarm store as data: the set of active alarms
// (which member raised which alarm), their record in the backend's
// "alarm" bucket, and the rule of which requests an active alarm refuses.
// It knows nothing of actors; the applier owns the one Set a member
// applies to, and publishes copies for the client listeners.
//
// Format (etcd's v3alarm): one key per active alarm in the "alarm" bucket,
// the key being the marshalled etcdserverpb.AlarmMember and the value
// empty, so an etcd backend restored into troupe keeps its alarms.
package alarm

import (
	"fmt"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

// Alarm is one active alarm: member MemberID raised Type.
type Alarm struct {
	MemberID uint64
	Type     pb.AlarmType
}

// String is how etcd 3.4 prints an alarm in Status's errors and in
// `etcdctl alarm list`: "memberID:<id> alarm:<TYPE> " (with the trailing
// space of protobuf's compact text format).
func (a Alarm) String() string {
	return fmt.Sprintf("memberID:%d alarm:%s ", a.MemberID, a.Type)
}

// Member returns a as etcd's wire type.
func (a Alarm) Member() *pb.AlarmMember {
	return &pb.AlarmMember{MemberID: a.MemberID, Alarm: a.Type}
}

// Key is a's key in the "alarm" bucket: the marshalled AlarmMember.
func Key(a Alarm) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(a.Member())
	if err != nil {
		panic(fmt.Sprintf("alarm: marshal %v: %v", a, err)) // two varints cannot fail
	}
	return b
}

// ParseKey decodes a key of the "alarm" bucket.
func ParseKey(k []byte) (Alarm, error) {
	var m pb.AlarmMember
	if err := proto.Unmarshal(k, &m); err != nil {
		return Alarm{}, fmt.Errorf("alarm: bucket key %x: %w", k, err)
	}
	return Alarm{MemberID: m.MemberID, Type: m.Alarm}, nil
}

// Set is a set of active alarms, sorted by type then member. A Set is
// never changed once made: Activate and Deactivate return a new one, so
// a Set can be shared between goroutines.
type Set struct {
	alarms []Alarm
}

// NewSet returns the set of alarms (duplicates dropped).
func NewSet(alarms []Alarm) Set {
	var s Set
	for _, a := range alarms {
		s, _ = s.Activate(a)
	}
	return s
}

func compare(a, b Alarm) int {
	if a.Type != b.Type {
		return int(a.Type) - int(b.Type)
	}
	switch {
	case a.MemberID < b.MemberID:
		return -1
	case a.MemberID > b.MemberID:
		return 1
	}
	return 0
}

// Activate returns s with a; added is false if a was active already.
func (s Set) Activate(a Alarm) (_ Set, added bool) {
	i, found := slices.BinarySearchFunc(s.alarms, a, compare)
	if found {
		return s, false
	}
	return Set{alarms: slices.Insert(slices.Clone(s.alarms), i, a)}, true
}

// Deactivate returns s without a; removed is false if a was not active.
func (s Set) Deactivate(a Alarm) (_ Set, removed bool) {
	i, found := slices.BinarySearchFunc(s.alarms, a, compare)
	if !found {
		return s, false
	}
	return Set{alarms: slices.Delete(slices.Clone(s.alarms), i, i+1)}, true
}

// Get returns the alarms of type t, or all of them for AlarmType_NONE,
// as etcd's AlarmStore.Get.
func (s Set) Get(t pb.AlarmType) []Alarm {
	if t == pb.AlarmType_NONE {
		return slices.Clone(s.alarms)
	}
	var out []Alarm
	for _, a := range s.alarms {
		if a.Type == t {
			out = append(out, a)
		}
	}
	return out
}

// Has reports whether an alarm of type t is active (on any member).
func (s Set) Has(t pb.AlarmType) bool {
	for _, a := range s.alarms {
		if a.Type == t {
			return true
		}
	}
	return false
}

// Len is the number of active alarms.
func (s Set) Len() int { return len(s.alarms) }

// Members returns the alarms as etcd's wire type, nil if none.
func (s Set) Members() []*pb.AlarmMember { return members(s.alarms) }

func members(as []Alarm) []*pb.AlarmMember {
	if len(as) == 0 {
		return nil
	}
	out := make([]*pb.AlarmMember, len(as))
	for i, a := range as {
		out[i] = a.Member()
	}
	return out
}

// Check returns the error with which the active alarms of s refuse req,
// nil if it may apply; etcd's applierV3Capped and applierV3Corrupt:
//   - NOSPACE refuses what adds data: Put, a Txn with a put in either
//     branch (nested txns included), LeaseGrant: ErrNoSpace.
//     Deletes, compactions, lease revokes and alarm changes pass, so an
//     operator can free space and disarm.
//   - CORRUPT refuses every write: Put, DeleteRange, Txn, Compaction,
//     LeaseGrant, LeaseRevoke: ErrCorrupt. Reads do not go through
//     raft and are served.
//
// CORRUPT is checked first, as etcd wraps the capped applier in the
// corrupt one when both are active.
func Check(s Set, req *pb.InternalRaftRequest) error {
	if len(s.alarms) == 0 {
		return nil
	}
	if s.Has(pb.AlarmType_CORRUPT) && (req.Put != nil || req.DeleteRange != nil || req.Txn != nil ||
		req.Compaction != nil || req.LeaseGrant != nil || req.LeaseRevoke != nil) {
		return ErrCorrupt
	}
	if s.Has(pb.AlarmType_NOSPACE) && (req.Put != nil || req.LeaseGrant != nil || (req.Txn != nil && TxnPuts(req.Txn))) {
		return ErrNoSpace
	}
	return nil
}

// TxnPuts reports whether either branch of r (or of a txn nested in it)
// holds a put: such a txn costs space.
func TxnPuts(r *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			switch v := op.Request.(type) {
			case *pb.RequestOp_RequestPut:
				return true
			case *pb.RequestOp_RequestTxn:
				if TxnPuts(v.RequestTxn) {
					return true
				}
			}
		}
	}
	return false
}

// Result of applying an AlarmRequest to a Set.
type Result struct {
	Set  Set
	Resp *pb.AlarmResponse
	// Changed is true when Set differs from the one applied to (the
	// bucket must record the change): Activated or Deactivated is set.
	Changed     bool
	Activated   *Alarm
	Deactivated *Alarm
}

// Apply applies an AlarmRequest as etcd's applier does: GET lists the
// alarms of the request's type (all for NONE; the member id is ignored),
// ACTIVATE adds the member's alarm and answers it, DEACTIVATE removes it
// and answers it; an alarm already in the wanted state is answered with
// no alarms. An unknown action answers nothing.
func Apply(s Set, r *pb.AlarmRequest) Result {
	a := Alarm{MemberID: r.MemberID, Type: r.Alarm}
	res := Result{Set: s, Resp: &pb.AlarmResponse{}}
	switch r.Action {
	case pb.AlarmRequest_GET:
		res.Resp.Alarms = members(s.Get(r.Alarm))
	case pb.AlarmRequest_ACTIVATE:
		var added bool
		res.Set, added = s.Activate(a)
		// etcd answers an alarm that was already active too
		res.Resp.Alarms = members([]Alarm{a})
		if added {
			res.Changed, res.Activated = true, &a
		}
	case pb.AlarmRequest_DEACTIVATE:
		var removed bool
		res.Set, removed = s.Deactivate(a)
		if removed {
			res.Resp.Alarms = members([]Alarm{a})
			res.Changed, res.Deactivated = true, &a
		}
	}
	return res
}

// Estimates of what a request adds to the backend, as etcd's quota makes
// them: a key's metadata costs about kvOverhead bytes besides key and
// value, a lease leaseOverhead.
const (
	kvOverhead    = 256
	leaseOverhead = 64
)

// Cost is what req adds to the backend by etcd's estimate: a put its key
// and value plus overhead, a txn its costlier branch (nested txns
// included), a lease grant its overhead; 0 for what frees or keeps space.
func Cost(req *pb.InternalRaftRequest) int {
	switch {
	case req.Put != nil:
		return CostPut(req.Put)
	case req.Txn != nil:
		return CostTxn(req.Txn)
	case req.LeaseGrant != nil:
		return leaseOverhead
	}
	return 0
}

// CostPut is the cost of one put.
func CostPut(r *pb.PutRequest) int { return kvOverhead + len(r.Key) + len(r.Value) }

// CostTxn is the cost of r's costlier branch.
func CostTxn(r *pb.TxnRequest) int { return max(costOps(r.Success), costOps(r.Failure)) }

func costOps(ops []*pb.RequestOp) int {
	n := 0
	for _, op := range ops {
		switch v := op.Request.(type) {
		case *pb.RequestOp_RequestPut:
			n += CostPut(v.RequestPut)
		case *pb.RequestOp_RequestTxn:
			n += CostTxn(v.RequestTxn)
		}
	}
	return n
}
