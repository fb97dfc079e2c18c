package actorapi

import (
	"context"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/messages"
)

// LeaseService executes the actor API's lease operations: etcd's Lease
// service with a one-shot keep-alive instead of the stream.
type LeaseService interface {
	LeaseGrant(context.Context, *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error)
	LeaseRevoke(context.Context, *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error)
	LeaseKeepAliveOnce(context.Context, *pb.LeaseKeepAliveRequest) (*pb.LeaseKeepAliveResponse, error)
	LeaseTimeToLive(context.Context, *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error)
	LeaseLeases(context.Context, *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error)
}

// ErrNoLeaseService answers a LeaseRequest when the endpoint has no
// LeaseService, as gRPC answers a service it does not serve.
var ErrNoLeaseService = status.Error(codes.Unimplemented, "actorapi: lease service not served")

// handleLeaseRequest is handleKVRequest for leases: same checks, same
// in-flight bound, one reply from the operation's goroutine.
func (e *endpoint) handleLeaseRequest(ctx actor.Context, req *messages.LeaseRequest) {
	sender := ctx.Sender()
	if sender == nil {
		e.log.Warn("dropping lease request without sender", "id", req.GetId())
		return
	}
	system := ctx.ActorSystem()
	if err := e.checkLease(req); err != nil {
		system.Root.Send(sender, leaseError(req.GetId(), err))
		return
	}
	select {
	case e.slots <- struct{}{}:
	default:
		system.Root.Send(sender, leaseError(req.GetId(), rpctypes.ErrGRPCRequestTooManyRequests))
		return
	}
	e.inflight.Add(1)
	go serveLease(e.caller(req.GetToken(), req.GetCertUser()), e.cfg.Lease, system, sender, req, e.slots, e.inflight)
}

func (e *endpoint) checkLease(req *messages.LeaseRequest) error {
	if e.cfg.Lease == nil {
		return ErrNoLeaseService
	}
	var op proto.Message
	switch o := req.GetOp().(type) {
	case *messages.LeaseRequest_Grant:
		op = o.Grant
	case *messages.LeaseRequest_Revoke:
		op = o.Revoke
	case *messages.LeaseRequest_KeepAlive:
		op = o.KeepAlive
	case *messages.LeaseRequest_TimeToLive:
		op = o.TimeToLive
	case *messages.LeaseRequest_Leases:
		op = o.Leases
	}
	if op == nil {
		return ErrNoOperation
	}
	if proto.Size(op) > e.cfg.MaxRequestBytes {
		return rpctypes.ErrGRPCRequestTooLarge
	}
	return nil
}

func leaseError(id uint64, err error) *messages.LeaseResponse {
	return &messages.LeaseResponse{Id: id, Result: &messages.LeaseResponse_Error{Error: messages.NewKVError(err)}}
}

// serveLease runs on its own goroutine, like serve.
func serveLease(ctx context.Context, ls LeaseService, system *actor.ActorSystem, sender *actor.PID,
	req *messages.LeaseRequest, slots chan struct{}, inflight *sync.WaitGroup,
) {
	defer inflight.Done()
	resp := executeLease(ctx, ls, req)
	<-slots
	system.Root.Send(sender, resp)
}

func executeLease(ctx context.Context, ls LeaseService, req *messages.LeaseRequest) (resp *messages.LeaseResponse) {
	id := req.GetId()
	defer func() {
		if r := recover(); r != nil {
			resp = leaseError(id, status.Errorf(codes.Internal, "actorapi: panic in lease service: %v", r))
		}
	}()
	var err error
	resp = &messages.LeaseResponse{Id: id}
	switch o := req.GetOp().(type) {
	case *messages.LeaseRequest_Grant:
		var r *pb.LeaseGrantResponse
		if r, err = ls.LeaseGrant(ctx, o.Grant); err == nil {
			resp.Result = &messages.LeaseResponse_Grant{Grant: r}
		}
	case *messages.LeaseRequest_Revoke:
		var r *pb.LeaseRevokeResponse
		if r, err = ls.LeaseRevoke(ctx, o.Revoke); err == nil {
			resp.Result = &messages.LeaseResponse_Revoke{Revoke: r}
		}
	case *messages.LeaseRequest_KeepAlive:
		var r *pb.LeaseKeepAliveResponse
		if r, err = ls.LeaseKeepAliveOnce(ctx, o.KeepAlive); err == nil {
			resp.Result = &messages.LeaseResponse_KeepAlive{KeepAlive: r}
		}
	case *messages.LeaseRequest_TimeToLive:
		var r *pb.LeaseTimeToLiveResponse
		if r, err = ls.LeaseTimeToLive(ctx, o.TimeToLive); err == nil {
			resp.Result = &messages.LeaseResponse_TimeToLive{TimeToLive: r}
		}
	case *messages.LeaseRequest_Leases:
		var r *pb.LeaseLeasesResponse
		if r, err = ls.LeaseLeases(ctx, o.Leases); err == nil {
			resp.Result = &messages.LeaseResponse_Leases{Leases: r}
		}
	default:
		err = ErrNoOperation
	}
	if err != nil {
		return leaseError(id, err)
	}
	return resp
}
