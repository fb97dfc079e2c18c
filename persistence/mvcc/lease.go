package mvcc

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"

	bolt "go.etcd.io/bbolt"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/encoding/protowire"
)

// MaxLeaseTTL is the largest TTL a lease may be granted with, in seconds
// (etcd's lease.MaxLeaseTTL).
const MaxLeaseTTL = 9000000000

// leaseBucket holds one record per lease: the key is the lease id as 8
// bytes big-endian, the value a marshalled etcd leasepb.Lease.
var leaseBucket = []byte("lease")

// Lease is one lease as the store records it. RemainingTTL is the last
// checkpointed remaining TTL in seconds, 0 when none (a new leader then
// counts the whole TTL).
type Lease struct {
	ID           int64
	TTL          int64
	RemainingTTL int64
}

// leaseTable is the store's leases and the keys attached to them. It
// changes only under s.mu held exclusively (by the writer); readers hold
// s.mu shared.
type leaseTable struct {
	leases map[int64]*leaseEntry
	// keyLease maps each live key with a lease to that lease, so that an
	// overwrite or delete detaches the key from its old lease.
	keyLease map[string]int64
}

type leaseEntry struct {
	Lease
	keys map[string]struct{}
}

func newLeaseTable() *leaseTable {
	return &leaseTable{leases: map[int64]*leaseEntry{}, keyLease: map[string]int64{}}
}

// attachKey is attach for a key as bytes. Most puts neither have nor had
// a lease: the lookup converts key without copying it, and only a key
// that changes lease gets a string of its own.
func (t *leaseTable) attachKey(key []byte, id int64) {
	if _, ok := t.keyLease[string(key)]; !ok && id == 0 {
		return
	}
	t.attach(string(key), id)
}

// attach records that key's live version has lease id (0: none),
// detaching it from the lease of its previous version.
func (t *leaseTable) attach(key string, id int64) {
	if old, ok := t.keyLease[key]; ok {
		if old == id {
			return
		}
		if l := t.leases[old]; l != nil {
			delete(l.keys, key)
		}
		delete(t.keyLease, key)
	}
	if id == 0 {
		return
	}
	t.keyLease[key] = id
	if l := t.leases[id]; l != nil {
		l.keys[key] = struct{}{}
	}
}

// marshalLease encodes l as etcd's leasepb.Lease (ID = 1, TTL = 2,
// RemainingTTL = 3, varints, zero fields left out as gogoproto does).
func marshalLease(l Lease) []byte {
	var b []byte
	for i, v := range []int64{l.ID, l.TTL, l.RemainingTTL} {
		if v != 0 {
			b = protowire.AppendTag(b, protowire.Number(i+1), protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(v))
		}
	}
	return b
}

var errLeaseRecord = errors.New("mvcc: malformed lease record")

// unmarshalLease decodes a leasepb.Lease, skipping unknown fields.
func unmarshalLease(b []byte) (Lease, error) {
	var l Lease
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return l, errLeaseRecord
		}
		b = b[n:]
		if typ != protowire.VarintType || num < 1 || num > 3 {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return l, errLeaseRecord
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return l, errLeaseRecord
		}
		b = b[n:]
		switch num {
		case 1:
			l.ID = int64(v)
		case 2:
			l.TTL = int64(v)
		case 3:
			l.RemainingTTL = int64(v)
		}
	}
	return l, nil
}

func leaseKey(id int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(id))
}

// loadLeases reads the "lease" bucket into s.leases and attaches the live
// keys restoreEntry found. Keys naming a lease without a record stay
// detached, as etcd leaves them.
func (s *Store) loadLeases(tx *bolt.Tx) error {
	err := tx.Bucket(leaseBucket).ForEach(func(k, v []byte) error {
		l, err := unmarshalLease(v)
		if err != nil {
			return fmt.Errorf("lease bucket key %x: %w", k, err)
		}
		s.leases.leases[l.ID] = &leaseEntry{Lease: l, keys: map[string]struct{}{}}
		return nil
	})
	if err != nil {
		return err
	}
	for k, id := range s.leases.keyLease {
		if l := s.leases.leases[id]; l != nil {
			l.keys[k] = struct{}{}
		}
	}
	return nil
}

// putLeaseRecord queues l's record in the pending batch. Caller holds mu.
func (s *Store) putLeaseRecord(l Lease) {
	s.pending.others = append(s.pending.others, bucketOp{leaseBucket, leaseKey(l.ID), marshalLease(l)})
}

func (s *Store) leaseExists(id int64) bool {
	return s.leases.leases[id] != nil
}

// LeaseGrant applies the raft entry at index granting req.ID (chosen by the
// proposer, never 0) for req.TTL seconds (the proposer applied the minimum
// TTL). Errors: ErrAlreadyApplied, ErrLeaseExists,
// ErrLeaseTTLTooLarge; the index counts as applied for the latter two.
// Writer goroutine only.
func (s *Store) LeaseGrant(index uint64, req *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	w, err := s.beginWrite(index)
	if err != nil {
		return nil, err
	}
	var resp *pb.LeaseGrantResponse
	switch {
	case req.ID == 0:
		err = ErrLeaseNotFound
	case req.TTL > MaxLeaseTTL:
		err = ErrLeaseTTLTooLarge
	case s.leaseExists(req.ID):
		err = ErrLeaseExists
	default:
		l := Lease{ID: req.ID, TTL: req.TTL}
		s.leases.leases[l.ID] = &leaseEntry{Lease: l, keys: map[string]struct{}{}}
		s.putLeaseRecord(l)
		resp = &pb.LeaseGrantResponse{Header: &pb.ResponseHeader{Revision: w.beginRev}, ID: l.ID, TTL: l.TTL}
	}
	if cerr := w.end(); cerr != nil {
		return nil, cerr
	}
	return resp, err
}

// LeaseRevoke applies the raft entry at index revoking req.ID: the lease
// record and every key attached to it go in ONE write (one revision, so
// watchers see the deletes together). Errors: ErrAlreadyApplied,
// ErrLeaseNotFound. Writer goroutine only.
func (s *Store) LeaseRevoke(index uint64, req *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	w, err := s.beginWrite(index)
	if err != nil {
		return nil, err
	}
	var resp *pb.LeaseRevokeResponse
	if l := s.leases.leases[req.ID]; l == nil {
		err = ErrLeaseNotFound
	} else {
		keys := make([]string, 0, len(l.keys))
		for k := range l.keys {
			keys = append(keys, k)
		}
		sort.Strings(keys) // sub-revisions in key order, as etcd
		for _, k := range keys {
			w.deleteRange([]byte(k), nil)
		}
		delete(s.leases.leases, req.ID)
		s.pending.others = append(s.pending.others, bucketOp{leaseBucket, leaseKey(req.ID), nil})
		resp = &pb.LeaseRevokeResponse{Header: &pb.ResponseHeader{Revision: w.beginRev}}
		if w.changes > 0 {
			resp.Header.Revision++
		}
	}
	if cerr := w.end(); cerr != nil {
		return nil, cerr
	}
	return resp, err
}

// LeaseCheckpoint applies the raft entry at index recording the remaining
// TTLs of req's leases (0 clears a checkpoint: the whole TTL counts
// again). Leases that no longer exist are skipped. Errors:
// ErrAlreadyApplied. Writer goroutine only.
func (s *Store) LeaseCheckpoint(index uint64, req *pb.LeaseCheckpointRequest) (*pb.LeaseCheckpointResponse, error) {
	w, err := s.beginWrite(index)
	if err != nil {
		return nil, err
	}
	for _, cp := range req.Checkpoints {
		l := s.leases.leases[cp.ID]
		if l == nil || l.RemainingTTL == cp.Remaining_TTL {
			continue
		}
		l.RemainingTTL = cp.Remaining_TTL
		s.putLeaseRecord(l.Lease)
	}
	resp := &pb.LeaseCheckpointResponse{Header: &pb.ResponseHeader{Revision: w.beginRev}}
	if cerr := w.end(); cerr != nil {
		return nil, cerr
	}
	return resp, nil
}

// Leases returns every lease, sorted by id. Any goroutine.
func (s *Store) Leases() []Lease {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Lease, 0, len(s.leases.leases))
	for _, l := range s.leases.leases {
		out = append(out, l.Lease)
	}
	slices.SortFunc(out, func(a, b Lease) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Lease returns lease id and, when withKeys, its attached keys in key
// order; ok is false when there is no such lease. Any goroutine.
func (s *Store) Lease(id int64, withKeys bool) (l Lease, keys [][]byte, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e := s.leases.leases[id]
	if e == nil {
		return Lease{}, nil, false
	}
	if withKeys {
		keys = make([][]byte, 0, len(e.keys))
		for k := range e.keys {
			keys = append(keys, []byte(k))
		}
		slices.SortFunc(keys, bytes.Compare)
	}
	return e.Lease, keys, true
}
