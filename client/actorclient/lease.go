package actorclient

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/troupedb/troupe/messages"
)

// Grant creates a lease, as etcd's Lease.LeaseGrant (ID 0: the server
// chooses).
func (c *Client) Grant(ctx context.Context, req *etcdserverpb.LeaseGrantRequest) (*etcdserverpb.LeaseGrantResponse, error) {
	resp, err := c.doLease(ctx, &messages.LeaseRequest{Op: &messages.LeaseRequest_Grant{Grant: req}})
	if err != nil {
		return nil, err
	}
	if r, ok := resp.GetResult().(*messages.LeaseResponse_Grant); ok {
		return r.Grant, nil
	}
	return nil, unexpectedLease(resp)
}

// Revoke revokes a lease and deletes its keys, as etcd's Lease.LeaseRevoke.
func (c *Client) Revoke(ctx context.Context, req *etcdserverpb.LeaseRevokeRequest) (*etcdserverpb.LeaseRevokeResponse, error) {
	resp, err := c.doLease(ctx, &messages.LeaseRequest{Op: &messages.LeaseRequest_Revoke{Revoke: req}})
	if err != nil {
		return nil, err
	}
	if r, ok := resp.GetResult().(*messages.LeaseResponse_Revoke); ok {
		return r.Revoke, nil
	}
	return nil, unexpectedLease(resp)
}

// KeepAliveOnce renews a lease once; TTL 0 in the response means the lease
// does not exist (etcd's keep-alive answer).
func (c *Client) KeepAliveOnce(ctx context.Context, req *etcdserverpb.LeaseKeepAliveRequest) (*etcdserverpb.LeaseKeepAliveResponse, error) {
	resp, err := c.doLease(ctx, &messages.LeaseRequest{Op: &messages.LeaseRequest_KeepAlive{KeepAlive: req}})
	if err != nil {
		return nil, err
	}
	if r, ok := resp.GetResult().(*messages.LeaseResponse_KeepAlive); ok {
		return r.KeepAlive, nil
	}
	return nil, unexpectedLease(resp)
}

// TimeToLive reports a lease's remaining TTL (-1: no such lease), as
// etcd's Lease.LeaseTimeToLive.
func (c *Client) TimeToLive(ctx context.Context, req *etcdserverpb.LeaseTimeToLiveRequest) (*etcdserverpb.LeaseTimeToLiveResponse, error) {
	resp, err := c.doLease(ctx, &messages.LeaseRequest{Op: &messages.LeaseRequest_TimeToLive{TimeToLive: req}})
	if err != nil {
		return nil, err
	}
	if r, ok := resp.GetResult().(*messages.LeaseResponse_TimeToLive); ok {
		return r.TimeToLive, nil
	}
	return nil, unexpectedLease(resp)
}

// Leases lists the leases, as etcd's Lease.LeaseLeases.
func (c *Client) Leases(ctx context.Context, req *etcdserverpb.LeaseLeasesRequest) (*etcdserverpb.LeaseLeasesResponse, error) {
	resp, err := c.doLease(ctx, &messages.LeaseRequest{Op: &messages.LeaseRequest_Leases{Leases: req}})
	if err != nil {
		return nil, err
	}
	if r, ok := resp.GetResult().(*messages.LeaseResponse_Leases); ok {
		return r.Leases, nil
	}
	return nil, unexpectedLease(resp)
}

func (c *Client) doLease(ctx context.Context, req *messages.LeaseRequest) (*messages.LeaseResponse, error) {
	req.Id, req.Token = c.nextID.Add(1), c.token
	msg, err := c.ask(ctx, req)
	if err != nil {
		return nil, err
	}
	resp, ok := msg.(*messages.LeaseResponse)
	if !ok {
		return nil, fmt.Errorf("%w: %T", ErrUnexpectedReply, msg)
	}
	if resp.GetId() != req.Id {
		return nil, fmt.Errorf("%w: id %d for request %d", ErrUnexpectedReply, resp.GetId(), req.Id)
	}
	if e, ok := resp.GetResult().(*messages.LeaseResponse_Error); ok {
		return nil, errorReply(e.Error)
	}
	return resp, nil
}

func unexpectedLease(resp *messages.LeaseResponse) error {
	return fmt.Errorf("%w: %T", ErrUnexpectedReply, resp.GetResult())
}
