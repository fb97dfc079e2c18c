package corruptcheck

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/troupedb/troupe/actors/peers"
)

// compactHashCheck is etcd 3.6's CompactHashCheck, run by the leader:
// every member applies a compaction at the same point of the raft log and
// keeps the hash taken then, so for each compaction not yet checked
// (newest first) the leader asks the others for their hash at its
// revision. It stops at the first revision every member answered for, or
// at the first mismatch. It returns the members to raise the CORRUPT alarm
// for (0: a mismatch without a majority, the whole cluster, as etcd) and
// the newest revision checked on the whole cluster (checked if none).
func compactHashCheck(ctx context.Context, self uint64, m Member, checked int64, log *slog.Logger) (alarms []uint64, newest int64) {
	log.Info("starting compact hash check", "local-member-id", idString(self), "timeout", m.Timeout())
	var hashes []Hash
	for _, h := range m.CompactHashes() { // newest first
		if h.Revision <= checked {
			break
		}
		hashes = append(hashes, h)
	}
	for i, h := range hashes {
		if ctx.Err() != nil {
			break
		}
		ps := m.PeerHashes(ctx, h.Revision)
		if len(ps) == 0 {
			continue
		}
		done, alarms, ok := checkPeerHashes(self, h, ps, log)
		if ok && h.Revision > checked {
			checked = h.Revision
		}
		if done {
			log.Info("finished compaction hash check", "number-of-hashes-checked", i+1)
			return alarms, checked
		}
	}
	log.Info("finished compaction hash check", "number-of-hashes-checked", len(hashes))
	return nil, checked
}

// checkPeerHashes compares the leader's compaction hash with the others'
// answers at its revision (etcd's checkPeerHashes). done is false when
// some member could not be compared (no answer, or another compact
// revision) and the rest agreed: the next older hash is tried then. ok
// reports that the whole cluster agreed.
func checkPeerHashes(self uint64, leader Hash, ps []peers.PeerHash, log *slog.Logger) (done bool, alarms []uint64, ok bool) {
	byHash := map[uint32][]uint64{leader.Hash: {self}}
	checkedPeers := 0
	for _, p := range ps {
		reason := ""
		switch {
		case p.Resp == nil:
			reason = "no response"
		case p.Resp.GetCompactRevision() != leader.CompactRevision:
			reason = fmt.Sprintf("the peer's CompactRevision %d doesn't match leader's CompactRevision %d",
				p.Resp.GetCompactRevision(), leader.CompactRevision)
		}
		if reason != "" {
			log.Warn("Skipped peer's hash", "number-of-peers", len(ps), "leader-id", idString(self),
				"peer-id", idString(p.ID), "reason", reason)
			continue
		}
		checkedPeers++
		byHash[p.Resp.GetHash()] = append(byHash[p.Resp.GetHash()], p.ID)
	}
	if len(byHash) == 1 {
		if checkedPeers == len(ps) {
			log.Info("successfully checked hash on whole cluster", "number-of-peers-checked", checkedPeers,
				"revision", leader.Revision, "compactRevision", leader.CompactRevision)
			return true, nil, true
		}
		log.Warn("skipped revision in compaction hash check; was not able to check all peers",
			"number-of-peers-checked", checkedPeers, "number-of-peers", len(ps),
			"revision", leader.Revision, "compactRevision", leader.CompactRevision)
		return false, nil, false
	}
	// A mismatch: the members outside the majority's hash are corrupt.
	quorum := (len(ps)+1)/2 + 1
	keys := slices.Sorted(maps.Keys(byHash))
	quorumExists := false
	for _, k := range keys {
		if len(byHash[k]) >= quorum {
			quorumExists = true
			delete(byHash, k)
			break
		}
	}
	if !quorumExists {
		log.Error("Detected compaction hash mismatch but cannot identify the corrupted members, so intentionally set the memberID as 0",
			"leader-id", idString(self), "leader-revision", leader.Revision,
			"leader-compact-revision", leader.CompactRevision, "leader-hash", leader.Hash)
		alarms = append(alarms, 0)
	}
	for _, k := range keys {
		ids, left := byHash[k]
		if !left {
			continue
		}
		if quorumExists {
			alarms = append(alarms, ids...)
		}
		log.Error("Detected compaction hash mismatch", "leader-id", idString(self), "leader-revision", leader.Revision,
			"leader-compact-revision", leader.CompactRevision, "leader-hash", leader.Hash,
			"peer-hash", k, "peer-ids", idsString(ids), "quorum-exist", quorumExists)
	}
	return true, alarms, false
}

// idsString prints member ids as etcd's types.IDSlice.String: hex, comma
// separated.
func idsString(ids []uint64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = idString(id)
	}
	return strings.Join(s, ",")
}
