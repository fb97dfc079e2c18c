package peers

import (
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/membership"
)

// FetchMembers asks the members at peerURLs, one after the other, for the
// cluster's membership, as a member joining an existing cluster does
// before it starts (etcd's GetClusterFromRemotePeers). system must run the
// peer remote already. It returns the first answer.
func FetchMembers(system *actor.ActorSystem, peerURLs []string, timeout time.Duration) (clusterID uint64, members []membership.Member, err error) {
	var errs []error
	for _, u := range peerURLs {
		pid, err := RemoteInboxPID(0, u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		res, err := system.Root.RequestFuture(pid, &messages.GetMembers{}, timeout).Result()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
			continue
		}
		resp, ok := res.(*messages.Members)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: answered %T", u, res))
			continue
		}
		for _, b := range resp.GetMembers() {
			m, err := membership.Unmarshal(b)
			if err != nil {
				return 0, nil, fmt.Errorf("%s: member record: %w", u, err)
			}
			members = append(members, m)
		}
		return resp.GetClusterId(), members, nil
	}
	return 0, nil, fmt.Errorf("no member answered: %w", errors.Join(errs...))
}
