//go:build !race

package peers

import (
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/messages"
)

// BenchmarkRemoteRaftMessages sends raft messages from member 1 to member
// 2 over the peer remote on loopback, in Readies of three (an append with
// one 300-byte entry, a heartbeat, a commit-only append), at most
// benchWindow unacknowledged, and reports the cost per message of both
// sides together (allocs/op is the figure to compare: it does not depend
// on the machine's load).
func BenchmarkRemoteRaftMessages(b *testing.B) {
	const benchWindow = 512
	tokens := make(chan struct{}, benchWindow)
	probe := Config{ProbeInterval: time.Second, ProbeTimeout: 5 * time.Second, MaxProbeBackoff: time.Second}
	var ms []*member
	peers := map[uint64][]string{}
	for id := uint64(1); id <= 2; id++ {
		m := startRemoteMember(b, id, "127.0.0.1:0", probe)
		ms = append(ms, m)
		peers[id] = []string{peerURL(m)}
	}
	// Member 2's raft recorder releases a token per message received.
	done := make(chan struct{})
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for {
			select {
			case msg := <-ms[1].raft.C:
				if s, ok := msg.(*messages.StepRaft); ok {
					for range s.Msgs {
						<-tokens
					}
				}
			case <-done:
				return
			}
		}
	}()
	defer func() { close(done); <-drained }()
	for _, m := range ms {
		m.setPeers(peers)
	}
	ms[0].waitStatus(b, 2, true)
	data := make([]byte, 300)
	ready := func(i uint64) []*raftpb.Message {
		app := raftMsg(1, 2, raftpb.MsgApp, i)
		app.Entries = []*raftpb.Entry{{Term: proto.Uint64(1), Index: proto.Uint64(i + 1), Data: data}}
		return []*raftpb.Message{app, raftMsg(1, 2, raftpb.MsgHeartbeat, i), raftMsg(1, 2, raftpb.MsgApp, i+1)}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		for _, m := range ready(uint64(i)) {
			if i == b.N {
				break
			}
			select {
			case tokens <- struct{}{}:
			default: // the window is full; a timer only then
				select {
				case tokens <- struct{}{}:
				case <-time.After(waitFor):
					b.Fatalf("message %d: %d unacknowledged for %s", i, len(tokens), waitFor)
				}
			}
			ms[0].system.Root.Send(ms[0].sup, &messages.SendRaft{Msg: m})
			i++
		}
	}
	// All tokens taken back: every message arrived.
	for range benchWindow {
		select {
		case tokens <- struct{}{}:
		case <-time.After(waitFor):
			b.Fatalf("%d messages not received within %s", len(tokens), waitFor)
		}
	}
}
