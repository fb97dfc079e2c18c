package etcdapi

import (
	"context"
	"fmt"
	"slices"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/persistence/membership"
)

// memberBackend is the Cluster service's view of this member: membership
// from the member view, conf changes proposed through the raft client.
type memberBackend struct {
	raft *raftclient.Client
}

var _ ClusterBackend = memberBackend{}

func (b memberBackend) st() *memberview.View { return b.raft.View() }

func (b memberBackend) Members() *membership.Cluster {
	if c := b.st().Cluster(); c != nil {
		return c
	}
	return membership.NewCluster(b.st().Members(), nil)
}

func (b memberBackend) ClusterID() uint64 { return b.st().ClusterID }
func (b memberBackend) MemberID() uint64  { return b.st().MemberID }
func (b memberBackend) Term() uint64      { return b.st().Term() }
func (b memberBackend) IsLearner() bool   { return b.st().IsLearner() }
func (b memberBackend) IsLeader() bool    { return b.st().IsLeader() }

func (b memberBackend) LinearizableRead(ctx context.Context) error {
	return b.raft.LinearizableRead(ctx)
}

func (b memberBackend) PeerActiveSince(id uint64) time.Time { return b.st().PeerActiveSince(id) }

func (b memberBackend) LearnerProgress(id uint64) (match, leaderMatch uint64, ok bool) {
	match, _, ok = b.st().Progress(id)
	if !ok {
		return 0, 0, false
	}
	leaderMatch, _, _ = b.st().Progress(b.st().MemberID)
	return match, leaderMatch, true
}

func (b memberBackend) LeaderClientURLs() []string {
	lead := b.st().Leader()
	for _, m := range b.st().Members() {
		if m.ID == lead {
			return m.ClientURLs
		}
	}
	return nil
}

func (b memberBackend) ProposeConfChange(ctx context.Context, cc *raftpb.ConfChange) ([]membership.Member, error) {
	return b.raft.ProposeConfChange(ctx, cc)
}

// publishAttributes makes this member's name and client URLs part of the
// membership through raft, as etcd's publish does at start: other members
// list them, and a member counts as started once it has a name. It retries
// until the applied membership shows them or stop is closed.
func publishAttributes(kv *KV, name string, clientURLs []string, stop <-chan struct{}) error {
	st := kv.cfg.Raft.View()
	for {
		if c := st.Cluster(); c != nil {
			if m, ok := c.Member(st.MemberID); ok && m.Name == name && slices.Equal(m.ClientURLs, clientURLs) {
				return nil
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), kv.cfg.Raft.RequestTimeout())
		go func() {
			select {
			case <-stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		_, err := kv.propose(ctx, &pb.InternalRaftRequest{ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{
			Member_ID:        st.MemberID,
			MemberAttributes: &membershippb.Attributes{Name: name, ClientUrls: clientURLs},
		}})
		cancel()
		select {
		case <-stop:
			return fmt.Errorf("publish member attributes: stopped")
		default:
		}
		if err != nil {
			select {
			case <-stop:
				return fmt.Errorf("publish member attributes: stopped")
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}
