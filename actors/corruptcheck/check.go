package corruptcheck

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/troupedb/troupe/actors/peers"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// Hash is one hash of a member's key history, as etcd's KeyValueHash.
type Hash struct {
	Hash            uint32
	Revision        int64 // the revision hashed up to
	CompactRevision int64
}

// localHash hashes m's backend at its current revision and returns the
// hash and that revision.
func localHash(m Member) (Hash, int64, error) {
	h, current, compacted, err := m.HashKV(0)
	if err != nil {
		return Hash{}, 0, fmt.Errorf("hash the backend: %w", err)
	}
	return Hash{Hash: h, Revision: current, CompactRevision: compacted}, current, nil
}

// ErrInconsistent is the initial check's error: another member holds a
// different history at the same revision.
var ErrInconsistent = errors.New("found data inconsistency with peers")

// initialCheck is etcd's InitialCheck: hash this member's backend at its
// current revision, ask the other members for theirs at that revision,
// and fail if one with the same compact revision has another hash.
// Members that cannot answer (down, behind, compacted past the revision,
// of another cluster) are logged and do not count, as in etcd.
func initialCheck(ctx context.Context, self uint64, m Member, log *slog.Logger) error {
	log.Info("starting initial corruption check", "local-member-id", idString(self), "timeout", m.Timeout())
	h, _, err := localHash(m)
	if err != nil {
		return fmt.Errorf("%s failed to fetch hash (%w)", idString(self), err)
	}
	var first error
	for _, p := range m.PeerHashes(ctx, h.Revision) {
		local := []any{
			"local-member-id", idString(self), "local-member-revision", h.Revision,
			"local-member-compact-revision", h.CompactRevision, "local-member-hash", h.Hash,
			"remote-peer-id", idString(p.ID), "remote-peer-endpoints", p.URLs,
		}
		if r := p.Resp; r != nil {
			fields := append(local, "remote-peer-revision", r.GetRevision(),
				"remote-peer-compact-revision", r.GetCompactRevision(), "remote-peer-hash", r.GetHash())
			switch {
			case r.GetHash() == h.Hash:
			case r.GetCompactRevision() == h.CompactRevision:
				log.Warn("found different hash values from remote peer", fields...)
				if first == nil {
					first = fmt.Errorf("%s %w: member %s (%v) has hash %d at revision %d, this member %d (compact revision %d; fix: %s)",
						idString(self), ErrInconsistent, idString(p.ID), p.URLs, r.GetHash(), h.Revision, h.Hash, h.CompactRevision, fixCorrupt)
				}
			default:
				log.Warn("found different compact revision values from remote peer", fields...)
			}
			continue
		}
		switch {
		case errors.Is(p.Err, mvcc.ErrFutureRev):
			log.Warn("cannot fetch hash from slow remote peer", append(local, "err", p.Err)...)
		case errors.Is(p.Err, mvcc.ErrCompacted):
			log.Warn("cannot fetch hash from remote peer; local member is behind", append(local, "err", p.Err)...)
		case errors.Is(p.Err, peers.ErrClusterIDMismatch):
			log.Warn("cluster ID mismatch", append(local, "err", p.Err)...)
		default:
			log.Warn("failed hash kv request", "local-member-id", idString(self), "requested-revision", h.Revision,
				"remote-peer-id", idString(p.ID), "remote-peer-endpoints", p.URLs, "err", p.Err)
		}
	}
	if first != nil {
		return first
	}
	log.Info("initial corruption checking passed; no corruption", "local-member-id", idString(self))
	return nil
}

// fixCorrupt is the operator's fix for a member whose data differs.
const fixCorrupt = "remove this member's data dir and re-add it (etcdctl member remove, member add), or restore it from a healthy member's snapshot"

// periodicCheck is etcd's PeriodicCheck, run by the leader: hash, ask the
// followers at that revision, wait for a linearizable read and hash again;
// it returns the member to raise the CORRUPT alarm for (at most one per
// check, as etcd), found false if none.
func periodicCheck(ctx context.Context, self uint64, m Member, log *slog.Logger) (id uint64, found bool, err error) {
	h, _, err := localHash(m)
	if err != nil {
		return 0, false, err
	}
	ps := m.PeerHashes(ctx, h.Revision)
	rctx, cancel := context.WithTimeout(ctx, m.Timeout())
	err = m.LinearizableRead(rctx)
	cancel()
	if err != nil {
		return 0, false, fmt.Errorf("linearizable read: %w", err)
	}
	h2, rev2, err := localHash(m)
	if err != nil {
		return 0, false, err
	}
	id, found = comparePeriodic(self, h, h2, rev2, ps, log)
	return id, found, nil
}

// comparePeriodic compares the leader's hashes h (before asking the
// followers) and h2 (after a linearizable read, at current revision rev2)
// with the followers' answers ps, as etcd's PeriodicCheck; it returns the
// first member found corrupt.
func comparePeriodic(self uint64, h, h2 Hash, rev2 int64, ps []peers.PeerHash, log *slog.Logger) (uint64, bool) {
	var id uint64
	found := false
	mismatch := func(m uint64) {
		if !found {
			id, found = m, true
		}
	}
	if h2.Hash != h.Hash && h2.Revision == h.Revision && h.CompactRevision == h2.CompactRevision {
		log.Warn("found hash mismatch", "revision-1", h.Revision, "compact-revision-1", h.CompactRevision, "hash-1", h.Hash,
			"revision-2", h2.Revision, "compact-revision-2", h2.CompactRevision, "hash-2", h2.Hash)
		mismatch(self)
	}
	checked := 0
	for _, p := range ps {
		r := p.Resp
		if r == nil {
			continue
		}
		checked++
		if r.GetRevision() > rev2 {
			log.Warn("revision from follower must be less than or equal to leader's",
				"leader-revision", rev2, "follower-revision", r.GetRevision(), "follower-peer-id", idString(p.ID))
			mismatch(p.ID)
		}
		if r.GetCompactRevision() > h2.CompactRevision {
			log.Warn("compact revision from follower must be less than or equal to leader's",
				"leader-compact-revision", h2.CompactRevision, "follower-compact-revision", r.GetCompactRevision(), "follower-peer-id", idString(p.ID))
			mismatch(p.ID)
		}
		if r.GetCompactRevision() == h.CompactRevision && r.GetHash() != h.Hash {
			log.Warn("same compact revision then hashes must match",
				"leader-compact-revision", h2.CompactRevision, "leader-hash", h.Hash,
				"follower-compact-revision", r.GetCompactRevision(), "follower-hash", r.GetHash(), "follower-peer-id", idString(p.ID))
			mismatch(p.ID)
		}
	}
	log.Info("finished peer corruption check", "number-of-peers-checked", checked)
	return id, found
}

// idString prints a member id as etcd does (types.ID: hex).
func idString(id uint64) string { return fmt.Sprintf("%x", id) }
