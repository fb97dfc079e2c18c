package etcdapi

import (
	"errors"
	"slices"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/troupedb/troupe/persistence/auth"
)

// permitted is etcd's isWatchPermitted: the stream's sender may read
// [key, end). It returns the sender's user name, for recheck. end is the
// range end as the client sent it: etcd checks a watch from key with
// end "\x00" (every key from key on) as if it watched key alone, which
// lets a user who may read one key watch every key after it; troupe
// checks the whole range.
func (ws *watchStream) permitted(key, end []byte) (string, error) {
	ai, st, err := ws.cfg.Auth.Info(ws.stream.Context())
	if err != nil {
		return "", err
	}
	return ai.Username, st.IsRangePermitted(ai, key, end)
}

// watchDenied is the cancel reason etcd sends for a watch that may not be
// created: the text of its gRPC error, permission denied unless the
// sender is unknown or its token invalid or stale.
func watchDenied(err error) string {
	for _, known := range []error{rpctypes.ErrGRPCInvalidAuthToken, rpctypes.ErrGRPCAuthOldRevision, rpctypes.ErrGRPCUserEmpty} {
		if errors.Is(err, known) || errors.Is(toGRPC(err), known) {
			return known.Error()
		}
	}
	return rpctypes.ErrGRPCPermissionDenied.Error()
}

// recheck is beyond etcd, which checks a watch only when it is created:
// when the auth state changed (auth turned on or off, a user, role or
// permission changed), each watch of the stream is checked again for the
// user that created it, at the new revision, and the ones it may no
// longer read are canceled with the reason a create would get, before
// any more of their events go out.
func (ws *watchStream) recheck() error {
	st := ws.cfg.Auth.state()
	now := authStamp{enabled: st.Enabled(), revision: st.Revision()}
	if now == ws.authSeen {
		return nil
	}
	ws.authSeen = now
	if !now.enabled {
		return nil
	}
	ids := make([]int64, 0, len(ws.watches))
	for id := range ws.watches {
		ids = append(ids, id)
	}
	slices.Sort(ids) // the client sees the cancels in a stable order
	for _, id := range ids {
		w := ws.watches[id]
		ai := auth.Info{Username: w.user, Revision: now.revision}
		if w.user == "" {
			ai.Revision = 0 // no user: "user name is empty", as at create
		}
		if err := st.IsRangePermitted(ai, w.key, w.end); err != nil {
			if err := ws.cancelWatch(id, watchDenied(err)); err != nil {
				return err
			}
		}
	}
	return nil
}
