package etcdapi

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"

	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/internal/transport"
)

// errNoLeaderURL: the leader has not published its client URLs yet.
var errNoLeaderURL = errors.New("listeners: the leader's client URL is not known yet")

// leaseForwarder carries keep-alives and time-to-live requests from a
// follower to the leader's Lease service over gRPC, on one connection per
// leader client URL, kept until Close.
//
// Why gRPC to the client URL rather than a message over the peer
// transport: the leader answers with its own Lease service, so errors and
// responses are etcd's exactly, with no second implementation; a gRPC
// connection reconnects by itself and multiplexes every stream; and the
// peer transport stays a raft-only path (a lost raft message is retried by
// raft, a lost request/response pair would need its own timeouts). etcd
// forwards over HTTP to the leader's peer URL for the same result.
type leaseForwarder struct {
	state *memberview.View
	dial  transport.Dialer

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn // by target host:port
}

func newLeaseForwarder(st *memberview.View, dial transport.Dialer) *leaseForwarder {
	return &leaseForwarder{state: st, dial: dial, conns: map[string]*grpc.ClientConn{}}
}

// client returns a Lease client of member lead.
func (f *leaseForwarder) client(lead uint64) (pb.LeaseClient, error) {
	if lead == 0 {
		return nil, rpctypes.ErrGRPCNoLeader
	}
	target := ""
	dial := f.dial
	for _, m := range f.state.Members() {
		if m.ID == lead && len(m.ClientURLs) > 0 {
			u, err := url.Parse(m.ClientURLs[0])
			if err != nil {
				return nil, fmt.Errorf("listeners: leader %x client URL %q: %w", lead, m.ClientURLs[0], err)
			}
			// TLS only to an https URL, as the leader serves it.
			target, dial = u.Host, f.dial.For(*u)
		}
	}
	if target == "" {
		return nil, errNoLeaderURL
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns == nil {
		return nil, errCoreDown
	}
	cc, ok := f.conns[target]
	if !ok {
		var err error
		cc, err = dial.Dial("passthrough:///" + target)
		if err != nil {
			return nil, fmt.Errorf("listeners: connect to leader %x at %s: %w", lead, target, err)
		}
		f.conns[target] = cc
	}
	return pb.NewLeaseClient(cc), nil
}

func (f *leaseForwarder) timeToLive(ctx context.Context, lead uint64, req *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	c, err := f.client(lead)
	if err != nil {
		return nil, err
	}
	return c.LeaseTimeToLive(forwardToken(ctx, ctx), req)
}

func (f *leaseForwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, cc := range f.conns {
		_ = cc.Close()
	}
	f.conns = nil
}

// forwardStream is one client keep-alive stream's stream to the leader,
// opened on the first forwarded renewal and again after a leader change
// or an error.
type forwardStream struct {
	fwd    *leaseForwarder
	lead   uint64
	stream pb.Lease_LeaseKeepAliveClient
	cancel context.CancelFunc
}

func (fs *forwardStream) keepAlive(ctx context.Context, lead uint64, id int64) (int64, error) {
	if fs.stream == nil || fs.lead != lead {
		fs.close()
		c, err := fs.fwd.client(lead)
		if err != nil {
			return 0, err
		}
		// The stream lives as long as the client's stream, not one request.
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		stream, err := c.LeaseKeepAlive(sctx)
		if err != nil {
			cancel()
			return 0, err
		}
		fs.lead, fs.stream, fs.cancel = lead, stream, cancel
	}
	if err := fs.stream.Send(&pb.LeaseKeepAliveRequest{ID: id}); err != nil {
		fs.close()
		return 0, rpctypes.ErrGRPCNotLeader // reopen and retry
	}
	resp, err := fs.recv(ctx)
	if err != nil {
		fs.close()
		if ctx.Err() != nil {
			return 0, err
		}
		return 0, rpctypes.ErrGRPCNotLeader // reopen and retry
	}
	return resp.TTL, nil
}

// recv waits for the leader's answer or for ctx; on ctx the stream is
// closed (its Recv then returns).
func (fs *forwardStream) recv(ctx context.Context) (*pb.LeaseKeepAliveResponse, error) {
	stop := context.AfterFunc(ctx, fs.cancel)
	defer stop()
	resp, err := fs.stream.Recv()
	if err != nil && ctx.Err() != nil {
		return nil, raftclient.ContextError(ctx, ctx.Err())
	}
	return resp, err
}

func (fs *forwardStream) close() {
	if fs.cancel != nil {
		fs.cancel()
	}
	fs.stream, fs.cancel, fs.lead = nil, nil, 0
}
