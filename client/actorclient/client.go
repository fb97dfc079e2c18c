// Package actorclient is a Go client of troupe's actor API for programs that
// are protoactor actor systems themselves. The caller's actor system must
// have remote started (so the member can answer), with the gRPC limits of
// actorapi.DialOptions or larger on both sides for large replies; a member
// serving TLS needs the remote configured with RemoteOptions.
//
// Each call is one request/reply: a *messages.KVRequest to the endpoint
// actor at (address, "kv"), answered by a *messages.KVResponse. Errors come
// back as the gRPC status errors the etcd API returns (code and message),
// so errors.Is(err, rpctypes.ErrGRPCEmptyKey) and rpctypes.Error(err) work
// as with clientv3.
package actorclient

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/troupedb/troupe/messages"
)

// DefaultTimeout bounds a call whose context has no deadline.
const DefaultTimeout = 10 * time.Second

// ErrUnexpectedReply is returned when the endpoint answers with a reply
// that does not match the request.
var ErrUnexpectedReply = errors.New("actorclient: unexpected reply")

// Client sends KV requests to one troupe member's actor API endpoint. It is
// safe for concurrent use.
type Client struct {
	system  *actor.ActorSystem
	target  *actor.PID
	timeout time.Duration
	token   string
	nextID  atomic.Uint64
}

// Option configures a Client.
type Option func(*Client)

// WithTimeout sets the bound of a call whose context has no deadline
// (default DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithEndpointName addresses an endpoint spawned under another name than
// "kv".
func WithEndpointName(name string) Option {
	return func(c *Client) { c.target = actor.NewPID(c.target.Address, name) }
}

// WithToken sends token, from etcd's Authenticate (a clientv3 Auth call
// or etcdctl auth), with every request: with auth enabled the member
// checks each request against the token's user, as it checks a gRPC one.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// New returns a client of the endpoint at address (the host:port of the
// member's actor API remote), sending from system.
func New(system *actor.ActorSystem, address string, opts ...Option) *Client {
	c := &Client{system: system, target: actor.NewPID(address, "kv"), timeout: DefaultTimeout}
	for _, o := range opts {
		o(c)
	}
	return c
}

// PID of the endpoint the client talks to.
func (c *Client) PID() *actor.PID { return c.target }

// Range gets the keys in a range, as etcd's KV.Range.
func (c *Client) Range(ctx context.Context, req *etcdserverpb.RangeRequest) (*etcdserverpb.RangeResponse, error) {
	resp, err := c.do(ctx, &messages.KVRequest{Op: &messages.KVRequest_Range{Range: req}})
	if err != nil {
		return nil, err
	}
	if r, ok := resp.GetResult().(*messages.KVResponse_Range); ok {
		return r.Range, nil
	}
	return nil, unexpected(resp)
}

// Put puts a key, as etcd's KV.Put.
func (c *Client) Put(ctx context.Context, req *etcdserverpb.PutRequest) (*etcdserverpb.PutResponse, error) {
	resp, err := c.do(ctx, &messages.KVRequest{Op: &messages.KVRequest_Put{Put: req}})
	if err != nil {
		return nil, err
	}
	if r, ok := resp.GetResult().(*messages.KVResponse_Put); ok {
		return r.Put, nil
	}
	return nil, unexpected(resp)
}

// Delete deletes a range of keys, as etcd's KV.DeleteRange.
func (c *Client) Delete(ctx context.Context, req *etcdserverpb.DeleteRangeRequest) (*etcdserverpb.DeleteRangeResponse, error) {
	resp, err := c.do(ctx, &messages.KVRequest{Op: &messages.KVRequest_DeleteRange{DeleteRange: req}})
	if err != nil {
		return nil, err
	}
	if r, ok := resp.GetResult().(*messages.KVResponse_DeleteRange); ok {
		return r.DeleteRange, nil
	}
	return nil, unexpected(resp)
}

// Txn runs a transaction, as etcd's KV.Txn.
func (c *Client) Txn(ctx context.Context, req *etcdserverpb.TxnRequest) (*etcdserverpb.TxnResponse, error) {
	resp, err := c.do(ctx, &messages.KVRequest{Op: &messages.KVRequest_Txn{Txn: req}})
	if err != nil {
		return nil, err
	}
	if r, ok := resp.GetResult().(*messages.KVResponse_Txn); ok {
		return r.Txn, nil
	}
	return nil, unexpected(resp)
}

// Compact compacts the event history, as etcd's KV.Compact.
func (c *Client) Compact(ctx context.Context, req *etcdserverpb.CompactionRequest) (*etcdserverpb.CompactionResponse, error) {
	resp, err := c.do(ctx, &messages.KVRequest{Op: &messages.KVRequest_Compact{Compact: req}})
	if err != nil {
		return nil, err
	}
	if r, ok := resp.GetResult().(*messages.KVResponse_Compact); ok {
		return r.Compact, nil
	}
	return nil, unexpected(resp)
}

type result struct {
	msg any
	err error
}

// do sends req and waits for its reply, the context's end or the timeout.
// An error reply comes back as its gRPC status error; a context that ends
// first returns ctx.Err(), as clientv3 does.
func (c *Client) do(ctx context.Context, req *messages.KVRequest) (*messages.KVResponse, error) {
	req.Id, req.Token = c.nextID.Add(1), c.token
	msg, err := c.ask(ctx, req)
	if err != nil {
		return nil, err
	}
	resp, ok := msg.(*messages.KVResponse)
	if !ok {
		return nil, fmt.Errorf("%w: %T", ErrUnexpectedReply, msg)
	}
	if resp.GetId() != req.Id {
		return nil, fmt.Errorf("%w: id %d for request %d", ErrUnexpectedReply, resp.GetId(), req.Id)
	}
	if e, ok := resp.GetResult().(*messages.KVResponse_Error); ok {
		return nil, errorReply(e.Error)
	}
	return resp, nil
}

// errorReply is the error an error reply carries.
func errorReply(e *messages.KVError) error {
	if err := e.Err(); err != nil {
		return err
	}
	return fmt.Errorf("%w: error reply with code OK", ErrUnexpectedReply)
}

// ask sends req and waits for any reply, the context's end or the timeout.
func (c *Client) ask(ctx context.Context, req any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	timeout := c.timeout
	if deadline, ok := ctx.Deadline(); ok {
		timeout = time.Until(deadline)
		if timeout <= 0 {
			return nil, context.DeadlineExceeded
		}
	}
	future := c.system.Root.RequestFuture(c.target, req, timeout)
	// The future has no channel: wait for it on a goroutine that ends at
	// the latest when the future times out.
	done := make(chan result, 1)
	go func() {
		msg, err := future.Result()
		done <- result{msg, err}
	}()
	var res result
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case res = <-done:
	}
	if res.err != nil {
		if errors.Is(res.err, actor.ErrTimeout) {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("actorclient: no reply from %s within %v: %w", c.target, timeout, context.DeadlineExceeded)
		}
		return nil, fmt.Errorf("actorclient: request to %s: %w", c.target, res.err)
	}
	return res.msg, nil
}

func unexpected(resp *messages.KVResponse) error {
	return fmt.Errorf("%w: %T", ErrUnexpectedReply, resp.GetResult())
}
