package actorapi

import (
	"bytes"
	"context"
	"sync"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// fakeKV is an in-memory etcdserverpb.KVServer: single keys only, enough
// for round trips. If gate is set, every call first reports on entered and
// then waits for gate (or its context).
type fakeKV struct {
	etcdserverpb.UnimplementedKVServer

	mu   sync.Mutex
	rev  int64
	data map[string]*mvccpb.KeyValue

	entered chan struct{}
	gate    chan struct{}
}

func newFakeKV() *fakeKV { return &fakeKV{rev: 1, data: map[string]*mvccpb.KeyValue{}} }

func (f *fakeKV) wait(ctx context.Context) error {
	if f.gate == nil {
		return nil
	}
	select {
	case f.entered <- struct{}{}:
	default:
	}
	select {
	case <-f.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeKV) header() *etcdserverpb.ResponseHeader {
	return &etcdserverpb.ResponseHeader{ClusterId: 1, MemberId: 2, Revision: f.rev, RaftTerm: 3}
}

func (f *fakeKV) Range(ctx context.Context, r *etcdserverpb.RangeRequest) (*etcdserverpb.RangeResponse, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	if len(r.Key) == 0 {
		return nil, rpctypes.ErrGRPCEmptyKey
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rangeLocked(r), nil
}

func (f *fakeKV) rangeLocked(r *etcdserverpb.RangeRequest) *etcdserverpb.RangeResponse {
	resp := &etcdserverpb.RangeResponse{Header: f.header()}
	if kv, ok := f.data[string(r.Key)]; ok {
		resp.Kvs, resp.Count = []*mvccpb.KeyValue{kv}, 1
	}
	return resp
}

func (f *fakeKV) Put(ctx context.Context, r *etcdserverpb.PutRequest) (*etcdserverpb.PutResponse, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	if len(r.Key) == 0 {
		return nil, rpctypes.ErrGRPCEmptyKey
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.putLocked(r), nil
}

func (f *fakeKV) putLocked(r *etcdserverpb.PutRequest) *etcdserverpb.PutResponse {
	f.rev++
	old := f.data[string(r.Key)]
	kv := &mvccpb.KeyValue{Key: r.Key, Value: r.Value, ModRevision: f.rev, CreateRevision: f.rev, Version: 1}
	if old != nil {
		kv.CreateRevision, kv.Version = old.CreateRevision, old.Version+1
	}
	f.data[string(r.Key)] = kv
	resp := &etcdserverpb.PutResponse{Header: f.header()}
	if r.PrevKv {
		resp.PrevKv = old
	}
	return resp
}

func (f *fakeKV) DeleteRange(ctx context.Context, r *etcdserverpb.DeleteRangeRequest) (*etcdserverpb.DeleteRangeResponse, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &etcdserverpb.DeleteRangeResponse{}
	if _, ok := f.data[string(r.Key)]; ok {
		f.rev++
		delete(f.data, string(r.Key))
		resp.Deleted = 1
	}
	resp.Header = f.header()
	return resp, nil
}

// Txn supports value comparisons (EQUAL) and Put/Range operations.
func (f *fakeKV) Txn(ctx context.Context, r *etcdserverpb.TxnRequest) (*etcdserverpb.TxnResponse, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ok := true
	for _, c := range r.Compare {
		kv := f.data[string(c.Key)]
		var have []byte
		if kv != nil {
			have = kv.Value
		}
		if !bytes.Equal(have, c.GetValue()) {
			ok = false
		}
	}
	ops := r.Success
	if !ok {
		ops = r.Failure
	}
	resp := &etcdserverpb.TxnResponse{Succeeded: ok}
	for _, op := range ops {
		switch o := op.Request.(type) {
		case *etcdserverpb.RequestOp_RequestPut:
			resp.Responses = append(resp.Responses, &etcdserverpb.ResponseOp{Response: &etcdserverpb.ResponseOp_ResponsePut{ResponsePut: f.putLocked(o.RequestPut)}})
		case *etcdserverpb.RequestOp_RequestRange:
			resp.Responses = append(resp.Responses, &etcdserverpb.ResponseOp{Response: &etcdserverpb.ResponseOp_ResponseRange{ResponseRange: f.rangeLocked(o.RequestRange)}})
		}
	}
	resp.Header = f.header()
	return resp, nil
}

func (f *fakeKV) Compact(ctx context.Context, r *etcdserverpb.CompactionRequest) (*etcdserverpb.CompactionResponse, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Revision > f.rev {
		return nil, rpctypes.ErrGRPCFutureRev
	}
	return &etcdserverpb.CompactionResponse{Header: f.header()}, nil
}
