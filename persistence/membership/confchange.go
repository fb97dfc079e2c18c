package membership

import (
	"encoding/json"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// ChangeContext is the JSON etcd 3.4 puts in ConfChange.Context: the member
// record, plus isPromote for a promotion (which is a ConfChangeAddNode of
// an existing learner). An update carries the member record alone.
type ChangeContext struct {
	Member
	IsPromote bool `json:"isPromote"`
}

// AddChange returns the conf change that adds m (as a learner if
// m.IsLearner), with etcd's context.
func AddChange(m Member) *raftpb.ConfChange {
	typ := raftpb.ConfChangeAddNode
	if m.IsLearner {
		typ = raftpb.ConfChangeAddLearnerNode
	}
	return newChange(typ, m.ID, mustJSON(ChangeContext{Member: m}))
}

// RemoveChange returns the conf change that removes id (no context).
func RemoveChange(id uint64) *raftpb.ConfChange {
	return newChange(raftpb.ConfChangeRemoveNode, id, nil)
}

// UpdateChange returns the conf change that sets id's peer URLs, with
// etcd's context (the member record: id and peer URLs).
func UpdateChange(id uint64, peerURLs []string) *raftpb.ConfChange {
	return newChange(raftpb.ConfChangeUpdateNode, id, mustJSON(Member{ID: id, PeerURLs: peerURLs}))
}

// PromoteChange returns the conf change that promotes learner id, with
// etcd's context ({"id":N,"peerURLs":null,"isPromote":true}).
func PromoteChange(id uint64) *raftpb.ConfChange {
	return newChange(raftpb.ConfChangeAddNode, id, mustJSON(ChangeContext{Member: Member{ID: id}, IsPromote: true}))
}

func newChange(typ raftpb.ConfChangeType, id uint64, ctx []byte) *raftpb.ConfChange {
	return &raftpb.ConfChange{Type: typ.Enum(), NodeId: proto.Uint64(id), Context: ctx}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("membership: marshal conf change context: %v", err))
	}
	return b
}

// ParseContext decodes cc's context for an add, promote or update. The
// member's id is cc's node id whatever the context says, as etcd applies
// it.
func ParseContext(cc *raftpb.ConfChange) (ChangeContext, error) {
	var c ChangeContext
	if err := json.Unmarshal(cc.GetContext(), &c); err != nil {
		return ChangeContext{}, fmt.Errorf("%w: %s %x: %v", ErrBadContext, cc.GetType(), cc.GetNodeId(), err)
	}
	c.ID = cc.GetNodeId()
	return c, nil
}
