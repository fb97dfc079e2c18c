package raft

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3/raftpb"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/actors/internal/actortest"
	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/messages"
)

// These tests play member 3 of a two-member cluster by hand: until it
// sends a heartbeat, member 2 has no leader, as a member whose only peer
// is down.

// etcd's request timeout with default flags (5 s plus two 1 s election
// timeouts), and its tick.
const (
	requestTimeout = 7 * time.Second
	tickInterval   = 100 * time.Millisecond
)

// ticking configures member 2 as the core does with etcd's default flags:
// a ticker child every 100 ms, so the bubble's virtual time drives it.
func ticking(c *Config) {
	c.TickInterval = tickInterval
	c.RequestTimeoutTicks = Ticks(requestTimeout, tickInterval)
	c.ReadRetryTicks = Ticks(ReadRetryInterval, tickInterval)
}

// byHand configures member 2 with etcd's default timeouts in ticks and no
// ticker: the test ticks.
func byHand(c *Config) {
	c.RequestTimeoutTicks = Ticks(requestTimeout, tickInterval)
	c.ReadRetryTicks = Ticks(ReadRetryInterval, tickInterval)
}

// leaderAppears delivers member 3's heartbeat at term 2, as the peers
// inbox does (StepRaft): member 2 follows it.
func leaderAppears(sys *actor.ActorSystem, pid *actor.PID) {
	sys.Root.Send(pid, &messages.StepRaft{Msgs: []*raftpb.Message{{
		Type: raftpb.MsgHeartbeat.Enum(), From: proto.Uint64(3), To: proto.Uint64(2),
		Term: proto.Uint64(2), Commit: proto.Uint64(1),
	}}})
	synctest.Wait()
}

// sentTo3 returns the raft messages of type typ member 2 sent since the
// last call.
func sentTo3(peers *actortest.Recorder, typ raftpb.MessageType) []*raftpb.Message {
	var out []*raftpb.Message
	for _, m := range pending[*messages.SendRaft](peers) {
		if m.Msg.GetType() == typ {
			out = append(out, m.Msg)
		}
	}
	return out
}

// answerReadIndex answers a forwarded MsgReadIndex as leader 3 would,
// confirming index.
func answerReadIndex(sys *actor.ActorSystem, pid *actor.PID, req *raftpb.Message, index uint64) {
	sys.Root.Send(pid, &messages.StepRaft{Msgs: []*raftpb.Message{{
		Type: raftpb.MsgReadIndexResp.Enum(), From: proto.Uint64(3), To: proto.Uint64(2),
		Term: proto.Uint64(2), Index: proto.Uint64(index), Entries: req.Entries,
	}}})
	synctest.Wait()
}

func newClient(sys *actor.ActorSystem, waits *raftclient.Waits, pid *actor.PID) *raftclient.Client {
	c := raftclient.New(raftclient.Config{
		Root: sys.Root, View: memberview.New(memberview.Member{ID: 2, Name: "m"}, 1), Waits: waits,
		RequestTimeout: requestTimeout,
	})
	c.SetCore(&raftclient.Core{Raft: pid})
	return c
}

func noAnswer[T any](t *testing.T, what string, ch <-chan T) {
	t.Helper()
	synctest.Wait()
	select {
	case r := <-ch:
		t.Fatalf("%s answered %+v, want it waiting", what, r)
	default:
	}
}

func answer[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	synctest.Wait()
	select {
	case r := <-ch:
		return r
	default:
		t.Fatalf("%s not answered", what)
		panic("unreachable")
	}
}

// TestReadWithoutLeaderTimesOut: a read index round without a leader
// fails with etcd's "request timed out" exactly one request timeout after
// it began, in the bubble's virtual time, and a linearizable read through
// the client gets that error then.
func TestReadWithoutLeaderTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := actortest.NewSystem()
		waits := raftclient.NewWaits()
		pid := member2(t, sys, waits, actortest.NewRecorder(1<<14), ticking)
		read := waits.Reads.Register(8)
		sys.Root.Send(pid, &messages.ReadIndex{ID: 8})
		time.Sleep(requestTimeout - time.Millisecond)
		noAnswer(t, "read index just before the request timeout", read)
		time.Sleep(time.Millisecond)
		if r := answer(t, "read index at the request timeout", read); !errors.Is(r.Err, rpctypes.ErrGRPCTimeout) {
			t.Fatalf("read index without a leader: %+v, want ErrGRPCTimeout", r)
		}

		start := time.Now()
		err := newClient(sys, waits, pid).LinearizableRead(context.Background())
		if took := time.Since(start); !errors.Is(err, rpctypes.ErrGRPCTimeout) || took != requestTimeout {
			t.Fatalf("linearizable read without a leader: %v after %v, want ErrGRPCTimeout after %v", err, took, requestTimeout)
		}
		// A caller with a shorter deadline gets its own deadline, as
		// etcd's read waits on the request's context.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start = time.Now()
		err = newClient(sys, waits, pid).LinearizableRead(ctx)
		if took := time.Since(start); status(err) != "DeadlineExceeded" || took != 5*time.Second {
			t.Fatalf("linearizable read with a 5 s deadline: %v after %v, want DeadlineExceeded after 5s", err, took)
		}
	})
}

// TestReadsQueueBehindTheRoundWithoutLeader: without a leader a read
// arriving while a round waits joins the next round, which starts when
// that one times out, as in etcd's single read loop: it times out after
// two request timeouts less its lateness.
func TestReadsQueueBehindTheRoundWithoutLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := actortest.NewSystem()
		waits := raftclient.NewWaits()
		pid := member2(t, sys, waits, actortest.NewRecorder(1<<14), ticking)
		first, second := waits.Reads.Register(8), waits.Reads.Register(9)
		sys.Root.Send(pid, &messages.ReadIndex{ID: 8})
		time.Sleep(time.Second)
		sys.Root.Send(pid, &messages.ReadIndex{ID: 9})
		time.Sleep(requestTimeout - time.Second)
		if r := answer(t, "first read at the request timeout", first); !errors.Is(r.Err, rpctypes.ErrGRPCTimeout) {
			t.Fatalf("first read: %+v, want ErrGRPCTimeout", r)
		}
		time.Sleep(requestTimeout - time.Millisecond)
		noAnswer(t, "second read before its own round timed out", second)
		time.Sleep(time.Millisecond)
		if r := answer(t, "second read", second); !errors.Is(r.Err, rpctypes.ErrGRPCTimeout) {
			t.Fatalf("second read: %+v, want ErrGRPCTimeout", r)
		}
	})
}

// TestProposalWithoutLeaderIsNotProposed: a proposal waits its request
// timeout for a leader and then fails with gRPC's DeadlineExceeded, as
// etcd's Propose blocked on a leaderless raft; withdrawn, it is not
// proposed when a leader appears later.
func TestProposalWithoutLeaderIsNotProposed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := actortest.NewSystem()
		waits := raftclient.NewWaits()
		peers := actortest.NewRecorder(1 << 14)
		pid := member2(t, sys, waits, peers, ticking)
		c := newClient(sys, waits, pid)
		start := time.Now()
		_, err := c.Propose(context.Background(), putRequest("k"))
		if took := time.Since(start); !errors.Is(err, raftclient.ErrNotProposed) || took != requestTimeout {
			t.Fatalf("proposal without a leader: %v after %v, want ErrNotProposed after %v", err, took, requestTimeout)
		}
		if got := status(err); got != "DeadlineExceeded" {
			t.Fatalf("proposal without a leader: code %s, want DeadlineExceeded", got)
		}
		// A caller that gives up earlier withdraws its proposal too.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := c.Propose(ctx, putRequest("k2")); status(err) != "DeadlineExceeded" {
			t.Fatalf("proposal with a 1 s deadline: %v, want DeadlineExceeded", err)
		}
		pending[*messages.SendRaft](peers)
		leaderAppears(sys, pid)
		if props := sentTo3(peers, raftpb.MsgProp); len(props) != 0 {
			t.Fatalf("withdrawn proposals forwarded to the new leader: %v", props)
		}
	})
}

// TestParkedProposalReachesALeader: a proposal made without a leader goes
// to the leader once one is known.
func TestParkedProposalReachesALeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := actortest.NewSystem()
		waits := raftclient.NewWaits()
		peers := actortest.NewRecorder(1 << 14)
		pid := member2(t, sys, waits, peers, byHand)
		prop := waits.Proposals.Register(7)
		sys.Root.Send(pid, &messages.Propose{ID: 7, Data: []byte("x")})
		tick(sys, pid, 30)
		noAnswer(t, "parked proposal", prop)
		leaderAppears(sys, pid)
		props := sentTo3(peers, raftpb.MsgProp)
		if len(props) != 1 || len(props[0].Entries) != 1 || string(props[0].Entries[0].Data) != "x" {
			t.Fatalf("forwarded to the leader: %v, want one MsgProp with the parked entry", props)
		}
		// raft has it now: a withdrawal is answered "request timed out".
		sys.Root.Send(pid, &messages.WithdrawProposal{ID: 7})
		if r := answer(t, "withdrawn proposal", prop); !errors.Is(r.Err, rpctypes.ErrGRPCTimeout) {
			t.Fatalf("withdrawal of a forwarded proposal: %+v, want ErrGRPCTimeout", r)
		}
	})
}

// TestParkedProposalsExpireFromTheirOwnStart: a parked proposal nobody
// withdraws is dropped one request timeout after it was parked; a later
// one keeps its own time.
func TestParkedProposalsExpireFromTheirOwnStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := actortest.NewSystem()
		waits := raftclient.NewWaits()
		pid := member2(t, sys, waits, actortest.NewRecorder(1<<14), byHand)
		first := waits.Proposals.Register(7)
		sys.Root.Send(pid, &messages.Propose{ID: 7, Data: []byte("x")})
		synctest.Wait()
		tick(sys, pid, 40)
		second := waits.Proposals.Register(8)
		sys.Root.Send(pid, &messages.Propose{ID: 8, Data: []byte("y")})
		synctest.Wait()
		tick(sys, pid, 31) // 71 ticks since the first
		if r := answer(t, "first proposal", first); !errors.Is(r.Err, raftclient.ErrNotProposed) {
			t.Fatalf("first proposal: %+v, want ErrNotProposed", r)
		}
		noAnswer(t, "second proposal after 31 ticks", second)
		tick(sys, pid, 40)
		if r := answer(t, "second proposal", second); !errors.Is(r.Err, raftclient.ErrNotProposed) {
			t.Fatalf("second proposal: %+v, want ErrNotProposed", r)
		}
	})
}

// TestReadRoundGoesToALeaderThatAppears: a round waiting without a
// leader is sent to the leader once one is elected, and served; a read
// queued behind it gets a round of its own.
func TestReadRoundGoesToALeaderThatAppears(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := actortest.NewSystem()
		waits := raftclient.NewWaits()
		peers := actortest.NewRecorder(1 << 14)
		pid := member2(t, sys, waits, peers, byHand)
		first, second := waits.Reads.Register(8), waits.Reads.Register(9)
		sys.Root.Send(pid, &messages.ReadIndex{ID: 8})
		tick(sys, pid, 30)
		sys.Root.Send(pid, &messages.ReadIndex{ID: 9})
		tick(sys, pid, 10)
		noAnswer(t, "read without a leader", first)
		if reqs := sentTo3(peers, raftpb.MsgReadIndex); len(reqs) != 0 {
			t.Fatalf("%d MsgReadIndex sent without a leader, want 0", len(reqs))
		}
		leaderAppears(sys, pid)
		reqs := sentTo3(peers, raftpb.MsgReadIndex)
		if len(reqs) != 2 {
			t.Fatalf("%d MsgReadIndex to the new leader, want one per round (2)", len(reqs))
		}
		for _, req := range reqs {
			answerReadIndex(sys, pid, req, 1)
		}
		for i, ch := range []<-chan raftclient.ReadResult{first, second} {
			if r := answer(t, "read after a leader appeared", ch); r.Err != nil || r.Index != 1 {
				t.Fatalf("read %d after a leader appeared: %+v, want index 1", i+1, r)
			}
		}
	})
}

// TestLostReadIndexIsSentAgain: a ReadIndex whose message or answer is
// lost is sent again every ReadRetryTicks (etcd's 500 ms) until the
// leader answers.
func TestLostReadIndexIsSentAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := actortest.NewSystem()
		waits := raftclient.NewWaits()
		peers := actortest.NewRecorder(1 << 14)
		pid := member2(t, sys, waits, peers, byHand)
		leaderAppears(sys, pid)
		read := waits.Reads.Register(8)
		sys.Root.Send(pid, &messages.ReadIndex{ID: 8})
		if n := len(sentTo3(peers, raftpb.MsgReadIndex)); n != 1 {
			t.Fatalf("%d MsgReadIndex, want 1", n)
		}
		// Keep the leader known; the first request is lost.
		for range 4 {
			tick(sys, pid, 1)
			leaderAppears(sys, pid)
		}
		if n := len(sentTo3(peers, raftpb.MsgReadIndex)); n != 0 {
			t.Fatalf("%d MsgReadIndex before the retry interval, want 0", n)
		}
		tick(sys, pid, 1)
		again := sentTo3(peers, raftpb.MsgReadIndex)
		if len(again) != 1 {
			t.Fatalf("%d MsgReadIndex after the retry interval, want 1", len(again))
		}
		answerReadIndex(sys, pid, again[0], 1)
		if r := answer(t, "resent read", read); r.Err != nil || r.Index != 1 {
			t.Fatalf("resent read: %+v, want index 1", r)
		}
	})
}

func putRequest(key string) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(key), Value: []byte("v")}}
}

// status is err's gRPC code.
func status(err error) string { return grpcstatus.Code(err).String() }
