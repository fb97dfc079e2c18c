package compactor

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/troupedb/troupe/actors/internal/actortest"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// fake is the compactor's world: a revision that grows by one every
// virtual minute (rev = minutes since start + 1), a leadership flag, and
// a recorder of compactions (failing on demand).
type fake struct {
	start  time.Time
	leader atomic.Bool
	fail   atomic.Bool

	mu   sync.Mutex
	revs []int64
}

func (f *fake) Rev() int64 { return int64(time.Since(f.start)/time.Minute) + 1 }

func (f *fake) IsLeader() bool { return f.leader.Load() }

func (f *fake) Compact(_ context.Context, rev int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revs = append(f.revs, rev)
	if f.fail.Load() {
		return errors.New("no leader")
	}
	if len(f.revs) > 1 && f.revs[len(f.revs)-2] >= rev {
		return mvcc.ErrCompacted
	}
	return nil
}

func (f *fake) compacted() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.revs)
}

// run starts a compactor with cfg on f inside a synctest bubble, runs
// steps, and stops it.
func run(t *testing.T, cfg Config, steps func(f *fake)) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{start: time.Now()}
		f.leader.Store(true)
		cfg.Member = f
		cfg.Logger = slog.New(slog.DiscardHandler)
		sys := actortest.NewSystem()
		pid := sys.Root.Spawn(Props(cfg))
		steps(f)
		if err := sys.Root.StopFuture(pid).Wait(); err != nil {
			t.Fatal(err)
		}
		actortest.Shutdown(sys)
	})
}

// at sleeps until d after the start (virtual time) and lets the actor act.
func at(f *fake, d time.Duration) {
	time.Sleep(time.Until(f.start.Add(d)))
	synctest.Wait()
}

func want(t *testing.T, f *fake, when string, revs ...int64) {
	t.Helper()
	if got := f.compacted(); !slices.Equal(got, revs) {
		t.Fatalf("%s: compactions at %v, want %v", when, got, revs)
	}
}

// TestPeriodic: with a 1h retention the first compaction comes an hour
// after the start at the revision of the start, the next ones every hour
// at the oldest sample kept (etcd 3.4's algorithm: samples every 6 min,
// 11 kept); a follower samples but does not compact; a failure is retried
// at the next check.
func TestPeriodic(t *testing.T) {
	run(t, Config{Mode: ModePeriodic, Period: time.Hour}, func(f *fake) {
		at(f, 59*time.Minute)
		want(t, f, "before an hour")
		at(f, 61*time.Minute)
		want(t, f, "after an hour", 1)
		at(f, 119*time.Minute)
		want(t, f, "before two hours", 1)
		at(f, 121*time.Minute)
		want(t, f, "after two hours", 1, 55)
		f.leader.Store(false)
		at(f, 200*time.Minute)
		want(t, f, "as a follower", 1, 55)
		f.leader.Store(true)
		f.fail.Store(true)
		at(f, 205*time.Minute) // the check at 204 min fails
		want(t, f, "failed", 1, 55, 139)
		f.fail.Store(false)
		at(f, 211*time.Minute) // retried at 210 min
		want(t, f, "retried", 1, 55, 139, 145)
	})
}

// TestPeriodicShort: a retention under an hour compacts every period.
func TestPeriodicShort(t *testing.T) {
	run(t, Config{Mode: ModePeriodic, Period: 10 * time.Minute}, func(f *fake) {
		at(f, 30*time.Minute+time.Second)
		want(t, f, "after 30 min", 1, 10, 20)
	})
}

// TestRevision: keep 10 revisions, checked every 5 (virtual) minutes;
// nothing is compacted twice, and nothing while not leading.
func TestRevision(t *testing.T) {
	run(t, Config{Mode: ModeRevision, Revisions: 10, CheckInterval: 5 * time.Minute}, func(f *fake) {
		at(f, 9*time.Minute)
		want(t, f, "revision under 10")
		at(f, 16*time.Minute)
		want(t, f, "after 15 min", 1, 6)
		f.leader.Store(false)
		at(f, 31*time.Minute)
		want(t, f, "as a follower", 1, 6)
		f.leader.Store(true)
		at(f, 36*time.Minute)
		want(t, f, "leading again", 1, 6, 26)
	})
}

// TestRevisionDefaultInterval: etcd checks every 5 minutes.
func TestRevisionDefaultInterval(t *testing.T) {
	run(t, Config{Mode: ModeRevision, Revisions: 1}, func(f *fake) {
		at(f, 4*time.Minute)
		want(t, f, "before 5 min")
		at(f, 5*time.Minute+time.Second)
		want(t, f, "at 5 min", 5)
	})
}
