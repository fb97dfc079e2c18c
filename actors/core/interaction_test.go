package core

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/datadriven"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/actors/internal/actortest"
	"github.com/troupedb/troupe/internal/hublink"
	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/membership"
	"github.com/troupedb/troupe/persistence/mvcc"
	"github.com/troupedb/troupe/persistence/snap"
)

// TestInteraction runs the scripts in testdata/, in the spirit of
// etcd-io/raft's interaction tests, against member 1 of a cluster, on real
// files in a temporary data dir. Each script runs in its own synctest
// bubble: ticks are commands, and after every command the harness lets
// the actors do all they can (synctest.Wait) before it prints what they
// did, so the output is exact. Rewrite the expected output with
// go test ./actors/core -run TestInteraction -rewrite.
//
// The member runs in one of two ways:
//
//   - wired (start): the core's actors as the core wires them (real raft,
//     wal and applier actors on a real WAL and backend), but with one gate
//     actor in every path between them, so the script sees each message
//     and can hold the WAL's fsync or the applier. The gate delivers one
//     message at a time, in the order they were sent, and waits until the
//     actors are idle before the next: the run is deterministic.
//   - core (start core, restart): the core actor itself, under a node
//     stand-in, from its start-up sequence on; the script sees what goes
//     to other members and what the waiters and the backend get.
//
// Commands:
//
//	start [core] [voters=(1,2)] a new member 1 (new data dir); wired unless core
//	tick [n=N]                 N raft ticks (default 1), settling after each
//	propose k=v [k=v...]       one proposal per pair, all in one mailbox run
//	append-hold                from now on Appends wait in the gate (WAL fsync held)
//	release-fsync [count=N]    deliver the first N held Appends (all, and stop holding, without count)
//	apply-hold                 from now on Applies wait in the gate
//	apply [count=N]            deliver the first N held Applies (all, and stop holding, without count)
//	read-index                 a read index request
//	status                     leader, term, commit and applied index
//	get                        the backend's applied index, revision and keys
//	crash                      stop the member where it is: what the gate holds is lost
//	restart                    start the core from the data dir
//	install-snapshot index=I term=T k=v...
//	                           member 2, leading in term T, sends a snapshot at I whose
//	                           database holds the pairs and members 1 and 2 (core only)
//	append-from-leader index=I term=T commit=C k=v...
//	                           member 2 sends entries from I on (one per pair, after
//	                           the entry at I-1 of term T)
func TestInteraction(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		synctest.Test(t, func(t *testing.T) {
			e := newEnv(t)
			defer e.close()
			datadriven.RunTest(t, path, e.handle)
		})
	})
}

// env is one script's member and what the harness has seen of it.
type env struct {
	t      *testing.T
	dir    string
	sys    *actor.ActorSystem
	view   *memberview.View
	client *raftclient.Client
	out    *strings.Builder
	voters []uint64

	// peers stands in for the peers supervisor (raft messages to other
	// members, SetPeers), node for the node (the core's parent), core for
	// the core (the applier's parent, wired).
	peers, node, core *actortest.Recorder
	peersPID          *actor.PID

	w        *wired     // the wired member, nil when none
	nodePID  *actor.PID // the core's parent, nil when no core runs
	requests []request  // proposals and reads not answered yet, in order
	nextID   uint64
}

// request is a proposal or a read the script waits for.
type request struct {
	id   uint64
	what string
	prop <-chan raftclient.Result
	read <-chan raftclient.ReadResult
}

func newEnv(t *testing.T) *env {
	sys := actortest.NewSystem()
	view := memberview.New(self(1), 1)
	e := &env{
		t: t, dir: t.TempDir(), sys: sys, view: view,
		client: raftclient.New(raftclient.Config{
			Root: sys.Root, View: view, Waits: raftclient.NewWaits(), RequestTimeout: 5 * time.Second,
		}),
		out: &strings.Builder{}, voters: []uint64{1},
		peers: actortest.NewRecorder(4096), node: actortest.NewRecorder(64), core: actortest.NewRecorder(4096),
	}
	e.peersPID = sys.Root.Spawn(e.peers.Props())
	return e
}

func (e *env) close() {
	e.stop()
	_ = e.sys.Root.StopFuture(e.peersPID).Wait()
	actortest.Shutdown(e.sys)
}

func (e *env) printf(format string, args ...any) { fmt.Fprintf(e.out, format+"\n", args...) }

// handle runs one command and returns what it printed.
func (e *env) handle(t *testing.T, d *datadriven.TestData) string {
	e.t, e.out = t, &strings.Builder{}
	switch d.Cmd {
	case "start":
		e.voters = []uint64{1}
		if d.HasArg("voters") {
			e.voters = e.voters[:0]
			for _, a := range argValues(d, "voters") {
				e.voters = append(e.voters, atou(t, a))
			}
		}
		if d.HasArg("core") {
			e.startCore()
		} else {
			e.startWired()
		}
	case "restart":
		e.startCore()
	case "crash":
		e.crash()
	case "tick":
		n := 1
		if d.HasArg("n") {
			d.ScanArgs(t, "n", &n)
		}
		for range n {
			e.sys.Root.Send(e.raftPID(), &messages.Tick{})
			e.settle()
		}
	case "propose":
		e.propose(d)
	case "read-index":
		e.nextID++
		id := e.nextID
		e.requests = append(e.requests, request{id: id, what: "read", read: e.client.Waits().Reads.Register(id)})
		e.sys.Root.Send(e.raftPID(), &messages.ReadIndex{ID: id})
	case "append-hold":
		e.wired().holdAppend = true
	case "apply-hold":
		e.wired().holdApply = true
	case "release-fsync", "apply":
		e.release(d)
	case "status":
		e.printf("leader %d term %d commit %d applied %d", e.view.Leader(), e.view.Term(), e.view.RaftIndex(), e.client.AppliedIndex())
	case "get":
		e.get()
	case "install-snapshot":
		e.installSnapshot(d)
	case "append-from-leader":
		e.appendFromLeader(d)
	default:
		t.Fatalf("unknown command %s", d.Cmd)
	}
	e.settle()
	if e.out.Len() == 0 {
		return "ok\n"
	}
	return e.out.String()
}

// settle lets the actors do all they can: for a wired member, delivers
// what the gate may deliver, one message at a time. It prints what was
// sent and what the waiters got.
func (e *env) settle() {
	for {
		synctest.Wait()
		e.printRecorded()
		if e.w == nil || !e.w.deliverNext(e) {
			break
		}
	}
	e.printAnswers()
}

// printRecorded prints what the gate queued since the last call, and
// what the peers stand-in and the core stand-in got.
func (e *env) printRecorded() {
	if e.w != nil {
		for _, env := range e.w.gate.takeNew() {
			held := ""
			if e.w.held(env.msg) {
				held = " (held)"
			}
			e.printf("%s%s", describe(env.msg), held)
		}
	}
	for len(e.core.C) > 0 {
		switch m := (<-e.core.C).(type) {
		case *messages.MembersChanged:
			e.printf("applier -> core: MembersChanged %v", ids(m.Members))
		case actortest.Failure:
			e.printf("applier failed: %v", m.Reason)
		default:
			e.printf("applier -> core: %T", m)
		}
	}
	// The peers hear from raft and from the core, which may run at the
	// same time: raft's messages first, then the core's.
	var fromCore []string
	for len(e.peers.C) > 0 {
		switch m := (<-e.peers.C).(type) {
		case *messages.SendRaft:
			e.printf("raft -> %d: %s", m.Msg.GetTo(), describeRaft(m.Msg))
		case *messages.SetPeers:
			fromCore = append(fromCore, fmt.Sprintf("core -> peers: SetPeers %v", sortedKeys(m.Peers)))
		default:
			fromCore = append(fromCore, fmt.Sprintf("? -> peers: %T", m))
		}
	}
	for _, s := range fromCore {
		e.printf("%s", s)
	}
}

// printAnswers prints the proposals and reads answered since the last
// call, in the order they were made.
func (e *env) printAnswers() {
	kept := e.requests[:0]
	for _, r := range e.requests {
		switch {
		case r.prop != nil:
			select {
			case res := <-r.prop:
				if res.Err != nil {
					e.printf("proposal %d (%s): %v", r.id, r.what, res.Err)
				} else if pr, ok := res.Resp.(*pb.PutResponse); ok {
					e.printf("proposal %d (%s): revision %d", r.id, r.what, pr.Header.Revision)
				} else {
					e.printf("proposal %d (%s): %T", r.id, r.what, res.Resp)
				}
				continue
			default:
			}
		default:
			select {
			case res := <-r.read:
				if res.Err != nil {
					e.printf("read %d: %v", r.id, res.Err)
				} else {
					e.printf("read %d: index %d (applied %d)", r.id, res.Index, e.client.AppliedIndex())
				}
				continue
			default:
			}
		}
		kept = append(kept, r)
	}
	e.requests = kept
}

// raftPID is the running member's raft actor.
func (e *env) raftPID() *actor.PID {
	if e.w != nil {
		return e.w.raft
	}
	if co := e.client.Core(); co != nil {
		return co.Raft
	}
	e.t.Fatal("no member runs")
	return nil
}

func (e *env) wired() *wired {
	if e.w == nil {
		e.t.Fatal("the gates exist only in a wired member (start without core)")
	}
	return e.w
}

// propose sends one proposal per pair to raft while its mailbox is
// suspended, so they arrive in one mailbox run, as concurrent clients'
// proposals do.
func (e *env) propose(d *datadriven.TestData) {
	pid := e.raftPID()
	proc, ok := e.sys.ProcessRegistry.Get(pid)
	if !ok {
		e.t.Fatalf("no process for %s", pid)
	}
	proc.SendSystemMessage(pid, &actor.SuspendMailbox{})
	for _, a := range d.CmdArgs {
		e.nextID++
		id := e.nextID
		v := strings.Join(a.Vals, ",")
		data, err := proto.Marshal(&pb.InternalRaftRequest{
			Header: &pb.RequestHeader{ID: id},
			Put:    &pb.PutRequest{Key: []byte(a.Key), Value: []byte(v)},
		})
		if err != nil {
			e.t.Fatal(err)
		}
		e.requests = append(e.requests, request{id: id, what: a.Key + "=" + v, prop: e.client.Waits().Proposals.Register(id)})
		e.sys.Root.Send(pid, &messages.Propose{ID: id, Data: data})
	}
	synctest.Wait()
	proc.SendSystemMessage(pid, &actor.ResumeMailbox{})
}

// release delivers held Appends (release-fsync) or Applies (apply).
func (e *env) release(d *datadriven.TestData) {
	w := e.wired()
	isAppend := d.Cmd == "release-fsync"
	count := -1
	if d.HasArg("count") {
		d.ScanArgs(e.t, "count", &count)
	} else if isAppend {
		w.holdAppend = false
	} else {
		w.holdApply = false
	}
	for count != 0 {
		env := w.gate.take(func(m any) bool {
			if isAppend {
				_, ok := m.(*messages.Append)
				return ok
			}
			_, ok := m.(*messages.Apply)
			return ok
		})
		if env == nil {
			break
		}
		w.deliver(e, env)
		e.settle()
		count--
	}
}

// get prints the backend's applied index, revision and keys.
func (e *env) get() {
	var st *mvcc.Store
	if e.w != nil {
		st = e.w.store
	} else if st = e.client.Store(); st == nil {
		e.t.Fatal("no backend: no member runs")
	}
	r, err := st.Range(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	if err != nil {
		e.t.Fatal(err)
	}
	e.printf("backend: index %d revision %d", st.ConsistentIndex(), st.Rev())
	for _, kv := range r.Kvs {
		e.printf("%s=%s (revision %d)", kv.Key, kv.Value, kv.ModRevision)
	}
}

// crash stops the member where it is. Messages the gate holds are lost.
func (e *env) crash() {
	if e.w != nil {
		for _, env := range e.w.gate.takeAll() {
			e.printf("lost: %s", describe(env.msg))
		}
	}
	e.stop()
	e.settle()
}

// stop stops whatever member runs and fails the requests in flight, as
// the core does when it stops.
func (e *env) stop() {
	if e.w != nil {
		e.w.stop(e)
		e.w = nil
		e.client.SetCore(nil)
		e.client.Waits().FailAll(raftclient.ErrStopped)
	}
	if e.nodePID != nil {
		_ = e.sys.Root.StopFuture(e.nodePID).Wait()
		e.nodePID = nil
	}
}

// bootstrap is raft's initial configuration for a new member.
func (e *env) bootstrap() []raft.Peer {
	var boot []raft.Peer
	for _, v := range e.voters {
		boot = append(boot, raft.Peer{ID: v, Context: membership.AddChange(self(v)).Context})
	}
	return boot
}

// startCore spawns the core under the node stand-in and prints how its
// start-up ended.
func (e *env) startCore() {
	if e.w != nil || e.nodePID != nil {
		e.t.Fatal("a member runs: crash it first")
	}
	cfg := Config{
		DataDir: e.dir, Peers: e.bootstrap(), ElectionTicks: 10, WALSegmentBytes: 1 << 20,
		PeersPID: e.peersPID, Client: e.client, Hub: &hublink.Link{}, Logger: actortest.Logger(),
	}
	e.nodePID, _ = e.node.SpawnChild(e.sys.Root, Props(cfg))
	switch r := actortest.Next[any](e.t, e.node, wait).(type) {
	case *messages.CoreStarted:
		e.printf("core started")
	case actortest.Failure:
		e.printf("core failed: %v", r.Reason)
		e.stop()
	default:
		e.t.Fatalf("the node got %T", r)
	}
}

// installSnapshot plays member 2, the leader of term, sending member 1 a
// snapshot at index: its database is in the snapshot dir (the peers put
// it there before they step MsgSnap) and holds the pairs and members 1
// and 2.
func (e *env) installSnapshot(d *datadriven.TestData) {
	if e.w != nil {
		e.t.Fatal("install-snapshot needs the core, which installs the database (start core)")
	}
	var index, term uint64
	d.ScanArgs(e.t, "index", &index)
	d.ScanArgs(e.t, "term", &term)
	tmp := filepath.Join(e.t.TempDir(), "snapshot.db")
	st, err := mvcc.Open(tmp, mvcc.Options{NoSync: true, Logger: actortest.Logger()})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := st.ApplyMembers(1, []membership.Member{self(1), self(2)}, nil); err != nil {
		e.t.Fatal(err)
	}
	i := uint64(1)
	for _, kv := range pairs(d, "index", "term") {
		i++
		if _, err := st.Put(i, &pb.PutRequest{Key: []byte(kv[0]), Value: []byte(kv[1])}); err != nil {
			e.t.Fatal(err)
		}
	}
	st.SetConsistentIndex(index)
	if err := st.Close(); err != nil {
		e.t.Fatal(err)
	}
	f, err := os.Open(tmp)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	ss, err := snap.New(SnapDir(e.dir), snap.Options{Logger: actortest.Logger()})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := ss.SaveDBFrom(f, index); err != nil {
		e.t.Fatal(err)
	}
	e.fromLeader(&raftpb.Message{
		Type: raftpb.MsgSnap.Enum(), From: proto.Uint64(2), To: proto.Uint64(1), Term: proto.Uint64(term),
		Snapshot: &raftpb.Snapshot{Data: []byte("snapshot"), Metadata: &raftpb.SnapshotMetadata{
			Index: proto.Uint64(index), Term: proto.Uint64(term), ConfState: &raftpb.ConfState{Voters: []uint64{1, 2}},
		}},
	})
}

// appendFromLeader plays member 2, the leader of term, sending member 1
// entries from index on, one put per pair.
func (e *env) appendFromLeader(d *datadriven.TestData) {
	var index, term, commit uint64
	d.ScanArgs(e.t, "index", &index)
	d.ScanArgs(e.t, "term", &term)
	d.ScanArgs(e.t, "commit", &commit)
	var ents []*raftpb.Entry
	for i, kv := range pairs(d, "index", "term", "commit") {
		e.nextID++
		data, err := proto.Marshal(&pb.InternalRaftRequest{
			Header: &pb.RequestHeader{ID: e.nextID},
			Put:    &pb.PutRequest{Key: []byte(kv[0]), Value: []byte(kv[1])},
		})
		if err != nil {
			e.t.Fatal(err)
		}
		ents = append(ents, &raftpb.Entry{
			Index: proto.Uint64(index + uint64(i)), Term: proto.Uint64(term), Type: raftpb.EntryNormal.Enum(), Data: data,
		})
	}
	e.fromLeader(&raftpb.Message{
		Type: raftpb.MsgApp.Enum(), From: proto.Uint64(2), To: proto.Uint64(1), Term: proto.Uint64(term),
		Index: proto.Uint64(index - 1), LogTerm: proto.Uint64(term), Commit: proto.Uint64(commit), Entries: ents,
	})
}

func (e *env) fromLeader(m *raftpb.Message) {
	e.printf("2 -> raft: %s", describeRaft(m))
	e.sys.Root.Send(e.raftPID(), &messages.StepRaft{Msgs: []*raftpb.Message{m}})
}

// pairs returns the script's k=v arguments other than the named ones.
func pairs(d *datadriven.TestData, skip ...string) [][2]string {
	var out [][2]string
	for _, a := range d.CmdArgs {
		if !slices.Contains(skip, a.Key) {
			out = append(out, [2]string{a.Key, strings.Join(a.Vals, ",")})
		}
	}
	return out
}

func argValues(d *datadriven.TestData, key string) []string {
	for _, a := range d.CmdArgs {
		if a.Key == key {
			return a.Vals
		}
	}
	return nil
}

func atou(t *testing.T, s string) uint64 {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
