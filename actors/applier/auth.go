package applier

import (
	"errors"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/troupedb/troupe/persistence/auth"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// Auth, as etcd's authStore and authApplierV3 apply it: the applier holds
// the applied auth.State (loaded from the backend at start and after a
// snapshot install), applies auth requests in log order with their bucket
// writes in the entry's batch (a replayed entry is skipped with the rest
// of it), publishes each new state to the member view for the listeners,
// and tells cfg.Tokens what an entry did to tokens, on every member.
// Writes are checked against the state at apply time with the sender in
// the entry's header; a refused entry still moves the applied index.

// loadAuth reads the auth state of the current backend and publishes it.
func (a *applier) loadAuth() {
	kvs, err := a.cfg.Store.LoadAuth()
	if err != nil {
		panic(fmt.Sprintf("applier: load auth: %v", err))
	}
	st, err := auth.Load(kvs)
	if err != nil {
		panic(fmt.Sprintf("applier: %s: %v", a.cfg.Store.Path(), err))
	}
	a.auth = st
	a.cfg.Client.View().SetAuth(st)
	if t := a.cfg.Tokens; t != nil {
		if st.Enabled() {
			t.Enable()
		} else {
			t.Disable()
		}
	}
}

// checkAuth refuses a write req at index that its sender may not make, as
// etcd's authApplierV3 (Put, DeleteRange, Txn, LeaseRevoke; a txn's puts
// with prev_kv and lease checked too, as etcd's later 3.6 releases, see
// auth.CheckTxn); the entry is still applied (the index moves).
func (a *applier) checkAuth(idx uint64, req *pb.InternalRaftRequest) error {
	st := a.auth
	if !st.Enabled() {
		return nil
	}
	err := a.authError(st, auth.InfoOf(req), req)
	if err != nil {
		a.cfg.Store.SetConsistentIndex(idx)
	}
	return err
}

func (a *applier) authError(st *auth.State, ai auth.Info, req *pb.InternalRaftRequest) error {
	switch {
	case req.Put != nil:
		return st.CheckPut(ai, req.Put, a.leaseKeys)
	case req.DeleteRange != nil:
		return st.CheckDeleteRange(ai, req.DeleteRange)
	case req.Txn != nil:
		return st.CheckTxnLeases(ai, req.Txn, a.leaseKeys)
	case req.LeaseRevoke != nil:
		return st.CheckLeaseKeys(ai, req.LeaseRevoke.ID, a.leaseKeys)
	}
	return nil
}

// leaseKeys is the backend's lookup of a lease's keys (auth.LeaseKeys).
func (a *applier) leaseKeys(id int64) ([][]byte, bool) {
	_, keys, ok := a.cfg.Store.Lease(id, true)
	return keys, ok
}

// applyAuth applies an auth request: the state's change, its bucket
// writes with the index, the token side effects, the new state published.
func (a *applier) applyAuth(idx uint64, req *pb.InternalRaftRequest) (any, error) {
	prev := a.auth
	next, resp, ops, err := prev.Apply(req)
	if aerr := a.cfg.Store.ApplyAuth(idx, ops); aerr != nil {
		if errors.Is(aerr, mvcc.ErrAlreadyApplied) {
			return nil, aerr
		}
		panic(fmt.Sprintf("applier: store auth change %d: %v", idx, aerr))
	}
	if err != nil {
		return nil, err
	}
	if next != prev {
		a.auth = next
		a.cfg.Client.View().SetAuth(next)
	}
	if r := req.Authenticate; r != nil && r.SimpleToken != "" {
		ar := resp.(*pb.AuthenticateResponse)
		ar.Token = auth.SimpleToken(r.SimpleToken, idx)
		if a.cfg.Tokens != nil {
			a.cfg.Tokens.Assign(ar.Token, r.Name, next.Revision())
		}
	}
	a.tokenEffects(prev, next, req)
	setAuthHeader(resp, a.cfg.Store.Rev())
	a.logAuthChange(idx, prev, next, req)
	return resp, nil
}

// tokenEffects tells cfg.Tokens what an applied request did to tokens,
// as etcd's authStore tells its token provider.
func (a *applier) tokenEffects(prev, next *auth.State, req *pb.InternalRaftRequest) {
	t := a.cfg.Tokens
	if t == nil {
		return
	}
	switch {
	case req.AuthUserDelete != nil:
		t.InvalidateUser(req.AuthUserDelete.Name)
	case req.AuthUserChangePassword != nil:
		t.InvalidateUser(req.AuthUserChangePassword.Name)
	case req.AuthEnable != nil && !prev.Enabled() && next.Enabled():
		t.Enable()
	case req.AuthDisable != nil && prev.Enabled() && !next.Enabled():
		t.Disable()
	}
}

// logAuthChange logs what changed the auth configuration, as etcd logs
// each change at info (never passwords).
func (a *applier) logAuthChange(idx uint64, prev, next *auth.State, req *pb.InternalRaftRequest) {
	if prev == next {
		return
	}
	switch {
	case req.AuthEnable != nil:
		a.log.Info("enabled authentication", "index", idx)
	case req.AuthDisable != nil:
		a.log.Info("disabled authentication", "index", idx)
	default:
		a.log.Info("auth configuration changed", "index", idx, "auth-revision", next.Revision(), "request", requestKind(req))
	}
}

// requestKind names the request req carries ("auth_user_add"), for logs
// that must not show its fields (passwords).
func requestKind(req *pb.InternalRaftRequest) string {
	kind := "unknown"
	req.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if fd.Name() == "header" {
			return true
		}
		kind = string(fd.Name())
		return false
	})
	return kind
}

// setAuthHeader gives an auth response etcd's header revision: the
// store's at apply time (the listener fills in the member's fields).
func setAuthHeader(resp any, rev int64) {
	h := &pb.ResponseHeader{Revision: rev}
	switch r := resp.(type) {
	case *pb.AuthenticateResponse:
		r.Header = h
	case *pb.AuthEnableResponse:
		r.Header = h
	case *pb.AuthDisableResponse:
		r.Header = h
	case *pb.AuthStatusResponse:
		r.Header = h
	case *pb.AuthUserAddResponse:
		r.Header = h
	case *pb.AuthUserGetResponse:
		r.Header = h
	case *pb.AuthUserListResponse:
		r.Header = h
	case *pb.AuthUserDeleteResponse:
		r.Header = h
	case *pb.AuthUserChangePasswordResponse:
		r.Header = h
	case *pb.AuthUserGrantRoleResponse:
		r.Header = h
	case *pb.AuthUserRevokeRoleResponse:
		r.Header = h
	case *pb.AuthRoleAddResponse:
		r.Header = h
	case *pb.AuthRoleGetResponse:
		r.Header = h
	case *pb.AuthRoleListResponse:
		r.Header = h
	case *pb.AuthRoleDeleteResponse:
		r.Header = h
	case *pb.AuthRoleGrantPermissionResponse:
		r.Header = h
	case *pb.AuthRoleRevokePermissionResponse:
		r.Header = h
	}
}
