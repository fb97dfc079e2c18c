package mvcc

import (
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// writeTxn is one write request in progress: every change it makes gets
// revision beginRev+1 and the next sub-revision. Its reads see its own
// earlier changes. The caller holds s.mu exclusively.
type writeTxn struct {
	view
	beginRev int64
	changes  int64
	// events are the changes as watch events, collected only when the
	// store has a Changed hook.
	events []*mvccpb.Event
}

// beginWrite takes the write lock, checks and records the raft index, and
// starts a write. The caller must call end. A failed commit (sticky) fails
// every write after it.
func (s *Store) beginWrite(index uint64) (*writeTxn, error) {
	if s.closed {
		return nil, fmt.Errorf("mvcc: %s is closed", s.path)
	}
	if err := s.reap(); err != nil {
		return nil, err
	}
	if index <= s.ci.Load() {
		return nil, ErrAlreadyApplied
	}
	s.mu.Lock()
	s.ci.Store(index)
	s.pending.ci = index
	s.wtxn = writeTxn{view: view{s: s, curRev: s.currentRev}, beginRev: s.currentRev, events: reuseEvents(s.wtxn.events)}
	return &s.wtxn, nil
}

// maxReusedEvents bounds the event list a write passes on to the next:
// a write of more events (a large delete) leaves its list to the GC.
const maxReusedEvents = 1024

// reuseEvents empties the last write's event list for the next write (a
// new list per write was an allocation of every put on a member): the
// Changed hook does not keep the list, only the events.
func reuseEvents(evs []*mvccpb.Event) []*mvccpb.Event {
	if cap(evs) > maxReusedEvents {
		return nil
	}
	clear(evs)
	return evs[:0]
}

// end publishes the write's revision, releases the lock and starts a
// commit of the batch if it is full (see maybeCommit).
func (w *writeTxn) end() error {
	w.close()
	if w.changes > 0 {
		w.s.currentRev = w.beginRev + 1
	}
	w.s.mu.Unlock()
	if w.changes > 0 && w.s.changed != nil {
		w.s.changed(w.beginRev+1, w.events)
	}
	return w.s.maybeCommit()
}

// put writes a new version of key.
func (w *writeTxn) put(key, value []byte, lease int64) {
	rev := revision{main: w.beginRev + 1, sub: w.changes}
	ki := w.s.index.getOrCreate(key)
	kv := w.newPutKV()
	kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease = key, value, rev.main, rev.main, 1, lease
	if g := ki.live(); g != nil {
		kv.CreateRevision = g.created.main
		kv.Version = g.ver + 1
	}
	w.add(rev, false, kv)
	ki.put(rev, rev, 1)
	w.s.leases.attachKey(key, lease)
	w.changes++
	w.curRev = w.beginRev + 1
}

// newPutKV returns the KeyValue of a put and, when the store has a
// Changed hook, adds its PUT event: the two in one allocation (were two),
// as they live and die together.
func (w *writeTxn) newPutKV() *mvccpb.KeyValue {
	if w.s.changed == nil {
		return new(mvccpb.KeyValue)
	}
	x := new(struct {
		ev mvccpb.Event
		kv mvccpb.KeyValue
	})
	x.ev.Type, x.ev.Kv = mvccpb.PUT, &x.kv
	w.events = append(w.events, &x.ev)
	return &x.kv
}

// deleteRange writes tombstones for the keys in [key, end) that are alive
// and returns how many.
func (w *writeTxn) deleteRange(key, end []byte) int64 {
	var kis []*keyIndex
	w.s.index.visit(key, end, func(ki *keyIndex) bool {
		if ki.live() != nil {
			kis = append(kis, ki)
		}
		return true
	})
	for _, ki := range kis {
		rev := revision{main: w.beginRev + 1, sub: w.changes}
		w.add(rev, true, &mvccpb.KeyValue{Key: []byte(ki.key)})
		if w.s.changed != nil {
			w.events = append(w.events, &mvccpb.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte(ki.key), ModRevision: rev.main}})
		}
		ki.tombstone(rev)
		w.s.leases.attach(ki.key, 0)
		w.changes++
		w.curRev = w.beginRev + 1
	}
	return int64(len(kis))
}

// add puts one "key" bucket entry into the pending batch. Its key and
// value share one allocation: they live and die together in the batch.
func (w *writeTxn) add(rev revision, tomb bool, kv *mvccpb.KeyValue) {
	p := w.s.pending
	n := revBytesLen
	if tomb {
		n = markedRevBytesLen
	}
	buf := make([]byte, n, n+kvSize(kv))
	putBucketKey(buf, rev, tomb)
	p.puts[rev] = pendingPut{key: buf[:n:n], value: appendKV(buf[n:], kv)}
	p.order = append(p.order, rev)
}

// Put applies the raft entry at index carrying req. Writer goroutine only.
// Errors: ErrAlreadyApplied (nothing done), ErrLeaseNotFound,
// ErrKeyNotFound (ignore_value or ignore_lease on a missing key); the
// index counts as applied for these. Call ValidatePut before proposing.
func (s *Store) Put(index uint64, req *pb.PutRequest) (*pb.PutResponse, error) {
	w, err := s.beginWrite(index)
	if err != nil {
		return nil, err
	}
	var resp *pb.PutResponse
	if req.Lease != 0 && !s.leaseExists(req.Lease) {
		err = ErrLeaseNotFound
	} else {
		resp, err = w.applyPut(req)
	}
	if cerr := w.end(); cerr != nil {
		return nil, cerr
	}
	return resp, err
}

func (w *writeTxn) applyPut(req *pb.PutRequest) (*pb.PutResponse, error) {
	return w.applyPutTo(req, newPutResponse())
}

// applyPutTo is applyPut answering in resp, whose Header is set.
func (w *writeTxn) applyPutTo(req *pb.PutRequest, resp *pb.PutResponse) (*pb.PutResponse, error) {
	value, lease := req.Value, req.Lease
	if req.IgnoreValue || req.IgnoreLease || req.PrevKv {
		prev, err := w.get(req.Key)
		if err != nil {
			return nil, err
		}
		if (req.IgnoreValue || req.IgnoreLease) && prev == nil {
			return nil, ErrKeyNotFound
		}
		if req.IgnoreValue {
			value = prev.Value
		}
		if req.IgnoreLease {
			lease = prev.Lease
		}
		if req.PrevKv {
			resp.PrevKv = prev
		}
	}
	w.put(req.Key, value, lease)
	resp.Header.Revision = w.beginRev + 1
	return resp, nil
}

// DeleteRange applies the raft entry at index carrying req. Writer
// goroutine only. Deleting nothing does not change the revision.
func (s *Store) DeleteRange(index uint64, req *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	w, err := s.beginWrite(index)
	if err != nil {
		return nil, err
	}
	resp, err := w.applyDeleteRange(req)
	if cerr := w.end(); cerr != nil {
		return nil, cerr
	}
	return resp, err
}

func (w *writeTxn) applyDeleteRange(req *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	resp := newDeleteRangeResponse()
	end := rangeEnd(req.RangeEnd)
	if req.PrevKv {
		rr, err := w.rangeKeys(req.Key, end, 0, 0, false)
		if err != nil {
			return nil, err
		}
		resp.PrevKvs = rr.kvs
	}
	resp.Deleted = w.deleteRange(req.Key, end)
	resp.Header.Revision = w.beginRev
	if resp.Deleted != 0 || w.changes > 0 {
		resp.Header.Revision = w.beginRev + 1
	}
	return resp, nil
}

// Compact applies the raft entry at index carrying req: it removes every
// version not needed to read at req.Revision or later, from the index at
// once and from the file with the pending batch. Writer goroutine only.
// Errors: ErrCompacted (req.Revision is not above the last compaction),
// ErrFutureRev (above the current revision).
func (s *Store) Compact(index uint64, req *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	w, err := s.beginWrite(index)
	if err != nil {
		return nil, err
	}
	var took time.Duration
	switch {
	case req.Revision <= s.compactRev:
		err = ErrCompacted
	case req.Revision > s.currentRev:
		err = ErrFutureRev
	default:
		start := time.Now()
		s.storeCompactHash(req.Revision)
		s.compactLocked(req.Revision)
		took = time.Since(start)
	}
	if cerr := w.end(); cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, err
	}
	// As etcd logs each compaction it finishes (the deletes reach bbolt
	// with the batch, in the background).
	s.lg.Info("finished scheduled compaction", "compact-revision", req.Revision, "took", took)
	return &pb.CompactionResponse{Header: &pb.ResponseHeader{Revision: w.beginRev}}, nil
}
