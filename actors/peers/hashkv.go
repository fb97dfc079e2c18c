package peers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupedb/troupe/internal/transport"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// ErrClusterIDMismatch is a member's answer to a GetHashKV of another
// cluster (etcd's rpctypes.ErrClusterIDMismatch).
var ErrClusterIDMismatch = errors.New("peers: cluster ID mismatch")

// handleGetHashKV hands a hash request of this cluster to the hasher: the
// hash reads the whole key bucket, which must not hold up the raft
// envelopes queued behind it in the inbox.
func (in *inbox) handleGetHashKV(ctx actor.Context, req *messages.GetHashKV) {
	if req.GetClusterId() != in.cfg.ClusterID {
		ctx.Respond(&messages.HashKV{
			ClusterId: in.cfg.ClusterID, MemberId: in.cfg.Self,
			Error: messages.HashKVError_HASH_KV_ERROR_CLUSTER_ID_MISMATCH, Message: ErrClusterIDMismatch.Error(),
		})
		return
	}
	ctx.Forward(in.hasher)
}

// hasher answers GetHashKV, one at a time, on its own mailbox. Its
// mailbox is unbounded: requests come only from the other members'
// corruption checks, one per member and check, each answered in the time
// of one hash.
type hasher struct {
	cfg Config
}

func hasherProps(cfg Config) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &hasher{cfg: cfg} })
}

// Receive dispatches on the message type.
func (h *hasher) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *messages.GetHashKV:
		ctx.Respond(hashKVAnswer(h.cfg, msg.GetRevision()))
	case *actor.Started, *actor.Stopping, *actor.Stopped, *actor.Restarting:
	default:
		h.cfg.Logger.Warn("unexpected message", "actor", "peers", "part", "hasher", "type", fmt.Sprintf("%T", msg))
	}
}

// hashKVAnswer hashes the member's backend at rev, as etcd's peer
// endpoint /members/hashkv does.
func hashKVAnswer(cfg Config, rev int64) *messages.HashKV {
	hash, current, compacted, err := cfg.Member.HashKV(rev)
	out := &messages.HashKV{ClusterId: cfg.ClusterID, MemberId: cfg.Self, Revision: current, CompactRevision: compacted}
	switch {
	case err == nil:
		out.Hash, out.HashRevision = hash, rev
		if rev == 0 {
			out.HashRevision = current
		}
	case errors.Is(err, mvcc.ErrCompacted):
		out.Error, out.Message = messages.HashKVError_HASH_KV_ERROR_COMPACTED, err.Error()
	case errors.Is(err, mvcc.ErrFutureRev):
		out.Error, out.Message = messages.HashKVError_HASH_KV_ERROR_FUTURE_REV, err.Error()
	default:
		out.Error, out.Message = messages.HashKVError_HASH_KV_ERROR_OTHER, err.Error()
	}
	return out
}

// PeerHash is one other member's answer to GetHashKV: Resp when one of
// its URLs answered with a hash, else Err, the last failure (errors.Is
// mvcc.ErrCompacted, mvcc.ErrFutureRev or ErrClusterIDMismatch when the
// member said so).
type PeerHash struct {
	ID   uint64
	URLs []string
	Resp *messages.HashKV
	Err  error
}

// FetchHashKVs asks every member of peers (member id -> peer URLs) but
// self for its hash at rev, as etcd's getPeerHashKVs: each member's URLs
// one after the other until one answers, each waited for at most timeout.
// The members are asked at once, so the whole takes at most
// timeout x (URLs of one member), or until ctx ends (the members not heard
// from then get ctx's error). system must run the peer remote; inboxPID
// nil means RemoteInboxPID. The answers are in member id order.
func FetchHashKVs(ctx context.Context, system *actor.ActorSystem, inboxPID func(uint64, string) (*actor.PID, error), clusterID, self uint64, peers map[uint64][]string, rev int64, timeout time.Duration) []PeerHash {
	// Over the real remote a member that is down is found at once (TCP
	// refused) rather than after the whole timeout; an in-process
	// network (inboxPID set) has no sockets to try.
	listening := func(context.Context, string) error { return nil }
	if inboxPID == nil {
		inboxPID = RemoteInboxPID
		listening = func(ctx context.Context, peerURL string) error {
			u, err := url.Parse(peerURL)
			if err != nil {
				return err
			}
			return transport.Listening(ctx, u.Host, timeout)
		}
	}
	ids := sortedIDs(peers, self)
	out := make([]PeerHash, len(ids))
	type answer struct {
		i    int
		resp *messages.HashKV
		err  error
	}
	// One goroutine per member, each ending within timeout x its URLs
	// (the futures' timeouts) even if ctx ends first; the channel holds
	// all their answers, so none blocks once nobody reads.
	answers := make(chan answer, len(ids))
	for i, id := range ids {
		out[i] = PeerHash{ID: id, URLs: peers[id]}
		go func() {
			resp, err := fetchHashKV(ctx, system, inboxPID, listening, clusterID, self, id, peers[id], rev, timeout)
			answers <- answer{i: i, resp: resp, err: err}
		}()
	}
	heard := make([]bool, len(ids))
	for range ids {
		select {
		case a := <-answers:
			out[a.i].Resp, out[a.i].Err, heard[a.i] = a.resp, a.err, true
		case <-ctx.Done():
			for i := range out {
				if !heard[i] {
					out[i].Err = ctx.Err()
				}
			}
			return out
		}
	}
	return out
}

func fetchHashKV(ctx context.Context, system *actor.ActorSystem, inboxPID func(uint64, string) (*actor.PID, error), listening func(context.Context, string) error, clusterID, self, id uint64, urls []string, rev int64, timeout time.Duration) (*messages.HashKV, error) {
	err := errors.New("no peer URLs")
	for _, u := range urls {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if lerr := listening(ctx, u); lerr != nil {
			err = lerr
			continue
		}
		pid, perr := inboxPID(id, u)
		if perr != nil {
			err = perr
			continue
		}
		res, ferr := system.Root.RequestFuture(pid, &messages.GetHashKV{ClusterId: clusterID, From: self, Revision: rev}, timeout).Result()
		if ferr != nil {
			err = fmt.Errorf("%s: %w", u, ferr)
			continue
		}
		resp, ok := res.(*messages.HashKV)
		if !ok {
			err = fmt.Errorf("%s: answered %T", u, res)
			continue
		}
		switch resp.GetError() {
		case messages.HashKVError_HASH_KV_ERROR_NONE:
			return resp, nil
		case messages.HashKVError_HASH_KV_ERROR_COMPACTED:
			return nil, fmt.Errorf("%s: %w", u, mvcc.ErrCompacted)
		case messages.HashKVError_HASH_KV_ERROR_FUTURE_REV:
			return nil, fmt.Errorf("%s: %w", u, mvcc.ErrFutureRev)
		case messages.HashKVError_HASH_KV_ERROR_CLUSTER_ID_MISMATCH:
			return nil, fmt.Errorf("%s: %w", u, ErrClusterIDMismatch)
		default:
			err = fmt.Errorf("%s: %s", u, resp.GetMessage())
		}
	}
	return nil, err
}

func sortedIDs(peers map[uint64][]string, self uint64) []uint64 {
	ids := slices.Sorted(maps.Keys(peers))
	return slices.DeleteFunc(ids, func(id uint64) bool { return id == self })
}
