package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// Bounds of the progress race: raceStreams x raceRounds streams of five
// watches each, against raceHistory puts made before and racePuts (every
// tenth a delete) made during the race.
const (
	raceStreams = 16
	raceRounds  = 3
	raceHistory = 300
	racePuts    = 1200
	raceWriters = 4
	raceKeys    = 16
	// raceRoundTime is how long a stream that is not its worker's last
	// one lives while the writes go on.
	raceRoundTime = 400 * time.Millisecond
	// raceProgressEvery paces each stream's progress requests.
	raceProgressEvery = 2 * time.Millisecond
	// raceProgressNotify is the periodic progress interval of the servers.
	raceProgressNotify = "--experimental-watch-progress-notify-interval=50ms"
)

// TestWatchProgressRace races writes against RequestProgress on many
// streams of one member whose watches replay history, and checks each
// stream: a progress notification is never ahead of an event the stream
// has not been sent yet (see checkProgress).
func TestWatchProgressRace(t *testing.T) {
	s := startServerArgs(t, raceProgressNotify)
	cli := s.Client(t)
	runProgressRace(t, cli, cli, nil)
}

// TestWatchProgressRaceFollower is the race on a follower of a 3-member
// cluster, written through the leader: the follower applies behind it, and
// from a third to two thirds of the writes it is paused (SIGSTOP), so that
// it catches up with a burst once it runs again.
func TestWatchProgressRaceFollower(t *testing.T) {
	c := e2etest.StartCluster(t, e2etest.ClusterConfig{Args: []string{raceProgressNotify}})
	leader := c.Leader(t)
	follower := (leader + 1) % c.Size()
	runProgressRace(t, c.MemberClient(t, leader), c.MemberClient(t, follower), func(paused bool) error {
		if paused {
			return c.Pause(follower)
		}
		return c.Resume(follower)
	})
}

// runProgressRace runs the race: writes through wcli, watches and progress
// requests through rcli; pause, if not nil, is called with true after a
// third of the writes and with false after two thirds.
func runProgressRace(t *testing.T, wcli, rcli *clientv3.Client, pause func(paused bool) error) {
	for i := range raceHistory {
		wput(t, wcli, raceKey(i), "h")
	}
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	writesDone := make(chan struct{})
	var final atomic.Int64   // the last revision written, once writesDone
	var written atomic.Int64 // writes done
	var wg sync.WaitGroup
	errs := make(chan error, 2*raceWriters+raceStreams)
	go func() {
		var ww sync.WaitGroup
		for w := range raceWriters {
			ww.Add(1)
			go func() {
				defer ww.Done()
				for i := w; i < racePuts; i += raceWriters {
					rev, err := raceWrite(c, wcli, i)
					if err != nil {
						errs <- fmt.Errorf("write %d: %w", i, err)
						return
					}
					for cur := final.Load(); rev > cur && !final.CompareAndSwap(cur, rev); cur = final.Load() {
					}
					if n := written.Add(1); pause != nil && (n == racePuts/3 || n == 2*racePuts/3) {
						if err := pause(n == racePuts/3); err != nil {
							errs <- fmt.Errorf("pause the reader: %w", err)
							return
						}
					}
				}
			}()
		}
		ww.Wait()
		close(writesDone)
	}()

	var progress, events atomic.Int64
	for i := range raceStreams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range raceRounds {
				last := round == raceRounds-1
				st, err := raceStream(c, rcli, i)
				if err == nil {
					err = st.run(c, last, writesDone, &final)
				}
				progress.Add(st.progress)
				events.Add(st.events)
				if err != nil {
					errs <- fmt.Errorf("stream %d round %d: %w", i, round, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	<-writesDone
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d progress notifications and %d events on %d streams, last revision %d",
		progress.Load(), events.Load(), raceStreams*raceRounds, final.Load())
	if progress.Load() < raceStreams {
		t.Fatalf("only %d progress notifications: the race exercised nothing", progress.Load())
	}
}

func raceKey(i int) string { return fmt.Sprintf("/race/k%02d", i%raceKeys) }

// raceWrite makes write i: a put, or every tenth a delete.
func raceWrite(c context.Context, cli *clientv3.Client, i int) (int64, error) {
	if i%10 == 9 {
		r, err := cli.Delete(c, raceKey(i))
		if err != nil {
			return 0, err
		}
		return r.Header.Revision, nil
	}
	r, err := cli.Put(c, raceKey(i), fmt.Sprint(i))
	if err != nil {
		return 0, err
	}
	return r.Header.Revision, nil
}

// progressStream is one Watch stream of the race and what its checker
// has seen.
type progressStream struct {
	stream pb.Watch_WatchClient
	cancel context.CancelFunc
	recv   chan *pb.WatchResponse
	recvd  chan error // the receive loop's end

	maxEvent map[int64]int64 // watch id -> highest event revision received
	promised map[int64]int64 // watch id -> highest revision a progress notification claimed
	progress int64           // notifications received
	events   int64
	lastAll  int64 // revision of the last -1 notification
}

// raceStream opens a stream of stream i with its watches, all created
// (the server answered each) before any progress request: several of them
// start in the past and replay history while the requests come.
func raceStream(c context.Context, cli *clientv3.Client, i int) (*progressStream, error) {
	g, err := cli.Get(c, "/race/none")
	if err != nil {
		return nil, err
	}
	cur := g.Header.Revision
	sc, cancel := context.WithCancel(c)
	stream, err := pb.NewWatchClient(cli.ActiveConnection()).Watch(sc)
	if err != nil {
		cancel()
		return nil, err
	}
	st := &progressStream{
		stream: stream, cancel: cancel, recv: make(chan *pb.WatchResponse, 64), recvd: make(chan error, 1),
		maxEvent: map[int64]int64{}, promised: map[int64]int64{},
	}
	go func() {
		defer close(st.recv)
		for {
			r, err := stream.Recv()
			if err != nil {
				st.recvd <- err
				return
			}
			select {
			case st.recv <- r:
			case <-sc.Done():
				return
			}
		}
	}()
	noPut := []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NOPUT}
	creates := []*pb.WatchCreateRequest{
		// all of history
		{Key: []byte("/race/"), RangeEnd: []byte("/race0"), StartRevision: 1},
		// from now on
		{Key: []byte(raceKey(i))},
		// deletes only: may catch up with history without an event
		{Key: []byte("/race/"), RangeEnd: []byte("/race0"), StartRevision: max(1, cur-200), Filters: noPut},
		// from the present revision
		{Key: []byte("/race/k0"), RangeEnd: []byte("/race/k1"), StartRevision: cur},
		{Key: []byte(raceKey(i + 2)), StartRevision: max(1, cur-50)},
	}
	for n, cr := range creates {
		cr.WatchId = int64(n)
		cr.ProgressNotify = n%2 == 0 // and periodic progress notifications
		if err := stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: cr}}); err != nil {
			st.cancel()
			return st, err
		}
	}
	for created := 0; created < len(creates); {
		r, err := st.next(c)
		if err == nil && r.Created {
			created++
			continue
		}
		if err == nil {
			err = st.check(r) // events may come before the last created
		}
		if err != nil {
			st.cancel()
			return st, err
		}
	}
	return st, nil
}

func (st *progressStream) next(c context.Context) (*pb.WatchResponse, error) {
	select {
	case r, ok := <-st.recv:
		if !ok {
			return nil, fmt.Errorf("stream ended: %w", <-st.recvd)
		}
		return r, nil
	case <-c.Done():
		return nil, c.Err()
	}
}

// run sends progress requests and checks every response until the stream's
// time is up: raceRoundTime, or for a last stream until the writes are done
// and a progress notification at the last revision arrived.
func (st *progressStream) run(c context.Context, last bool, writesDone <-chan struct{}, final *atomic.Int64) error {
	defer st.cancel()
	tick := time.NewTicker(raceProgressEvery)
	defer tick.Stop()
	var roundEnd <-chan time.Time
	if !last {
		roundEnd = time.After(raceRoundTime)
	}
	done := writesDone
	for {
		select {
		case <-tick.C:
			req := &pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}}
			if err := st.stream.Send(req); err != nil {
				return fmt.Errorf("send a progress request: %w", err)
			}
		case r, ok := <-st.recv:
			if !ok {
				return fmt.Errorf("stream ended: %w", <-st.recvd)
			}
			if err := st.check(r); err != nil {
				return err
			}
			if done == nil && last && r.WatchId == -1 && r.Header.Revision == final.Load() {
				return nil // caught up with every write
			}
		case <-done:
			done = nil
			if !last {
				return nil
			}
		case <-roundEnd:
			return nil
		case <-c.Done():
			if done == nil {
				return fmt.Errorf("no progress notification at the last revision %d (last one: %d): %w", final.Load(), st.lastAll, c.Err())
			}
			return c.Err()
		}
	}
}

// check takes one response: after a progress notification at revision R
// (-1: for every watch of the stream, else for its watch) no event of the
// watches it speaks for is at or below R, and none received before it is
// above R.
func (st *progressStream) check(r *pb.WatchResponse) error {
	if r.Canceled || r.Created || r.CompactRevision != 0 {
		return fmt.Errorf("unexpected response %s", respString(r))
	}
	rev := r.Header.GetRevision()
	if len(r.Events) == 0 {
		st.progress++
		for id, ev := range st.maxEvent {
			if (r.WatchId == -1 || r.WatchId == id) && ev > rev {
				return fmt.Errorf("progress %d@%d after watch %d's event at %d", r.WatchId, rev, id, ev)
			}
		}
		if r.WatchId == -1 {
			st.lastAll = max(st.lastAll, rev)
		} else {
			st.promised[r.WatchId] = max(st.promised[r.WatchId], rev)
		}
		return nil
	}
	for _, ev := range r.Events {
		m := ev.Kv.ModRevision
		if p := max(st.lastAll, st.promised[r.WatchId]); m <= p {
			return fmt.Errorf("watch %d's event %s at %d after progress at %d", r.WatchId, ev.Type, m, p)
		}
		if m <= st.maxEvent[r.WatchId] {
			return fmt.Errorf("watch %d's event at %d after its event at %d", r.WatchId, m, st.maxEvent[r.WatchId])
		}
		st.maxEvent[r.WatchId] = m
		st.events++
	}
	return nil
}

// TestWatchProgressShapes: which progress notifications etcd 3.6.8 sends
// and which it does not (a stream without watches, a watch whose start
// revision is in the future), and the watch id of each kind.
func TestWatchProgressShapes(t *testing.T) {
	s := startServerArgs(t, "--experimental-watch-progress-notify-interval=200ms")
	cli := s.Client(t)
	rev := wput(t, cli, "k", "1")
	progressReq := &pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}}

	rw := openRawWatch(t, cli)
	t.Run("stream without watches", func(t *testing.T) {
		rw.send(progressReq)
		rw.none(300 * time.Millisecond)
	})
	t.Run("synced watch", func(t *testing.T) {
		rw.create(&pb.WatchCreateRequest{Key: []byte("k")})
		rw.expect(fmt.Sprintf("rev=%d id=0 created", rev))
		rw.send(progressReq)
		rw.expect(fmt.Sprintf("rev=%d id=-1", rev))
	})
	t.Run("a watch from the future holds the stream's back", func(t *testing.T) {
		rw.create(&pb.WatchCreateRequest{Key: []byte("k"), StartRevision: rev + 1})
		rw.expect(fmt.Sprintf("rev=%d id=1 created", rev))
		rw.send(progressReq)
		rw.none(300 * time.Millisecond)
	})
	t.Run("until the store reaches its start", func(t *testing.T) {
		rev = wput(t, cli, "k", "2")
		got := []string{rw.next(), rw.next()}
		slices.Sort(got) // the two watches' events come in either order
		want := []string{
			fmt.Sprintf("rev=%d id=0 [PUT k=2@%d/%d/2]", rev, rev, rev-1),
			fmt.Sprintf("rev=%d id=1 [PUT k=2@%d/%d/2]", rev, rev, rev-1),
		}
		if !slices.Equal(got, want) {
			t.Fatalf("events %q, want %q", got, want)
		}
		rw.send(progressReq)
		rw.expect(fmt.Sprintf("rev=%d id=-1", rev))
	})
	t.Run("stream whose watches are canceled", func(t *testing.T) {
		rw.cancel(0)
		rw.expect(fmt.Sprintf("rev=%d id=0 canceled()", rev))
		rw.cancel(1)
		rw.expect(fmt.Sprintf("rev=%d id=1 canceled()", rev))
		rw.send(progressReq)
		rw.none(300 * time.Millisecond)
	})
	t.Run("periodic notifications carry the watch's id", func(t *testing.T) {
		pw := openRawWatch(t, cli)
		pw.create(&pb.WatchCreateRequest{Key: []byte("k"), StartRevision: rev + 1, ProgressNotify: true})
		pw.expect(fmt.Sprintf("rev=%d id=0 created", rev))
		pw.create(&pb.WatchCreateRequest{Key: []byte("k"), ProgressNotify: true})
		pw.expect(fmt.Sprintf("rev=%d id=1 created", rev))
		// a few intervals: only the watch from now on gets them
		for range 2 {
			pw.expect(fmt.Sprintf("rev=%d id=1", rev))
		}
	})
}
