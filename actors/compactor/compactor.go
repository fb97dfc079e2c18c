// Package compactor is the auto compactor of a member, etcd 3.4's
// v3compactor as an actor under the node: with --auto-compaction-mode and
// --auto-compaction-retention it proposes compactions through raft, as a
// client's Compact does. Only the leader compacts (etcd pauses the
// compactor on followers); every member applies the compaction.
//
// Modes, as etcd 3.4:
//   - periodic: keep Period of history. Every min(Period, 1h)/10 (the
//     check interval) the current revision is sampled, keeping the
//     samples of the last Period; the first compaction comes Period after
//     the start, later ones every min(Period, 1h) after the last success,
//     each at the oldest sample (the revision Period ago).
//   - revision: keep Revisions revisions. Every CheckInterval (etcd: 5
//     minutes) it compacts at current revision - Revisions, unless that is
//     not positive or was compacted already.
//
// In: its own check message (a timer), the result of a compaction.
// The compaction runs on a goroutine of the actor (it waits for raft),
// one at a time, canceled and waited for when the actor stops; its result
// comes back as a message. A failed compaction is retried at the next
// check, as etcd does. A restart starts over: samples are kept in memory,
// as etcd keeps them.
package compactor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// Modes of --auto-compaction-mode.
const (
	ModePeriodic = "periodic"
	ModeRevision = "revision"
)

// DefaultRevisionCheckInterval is how often the revision mode checks
// (etcd's revInterval).
const DefaultRevisionCheckInterval = 5 * time.Minute

// periodicDivisor: the periodic mode checks this many times per period
// (etcd's retryDivisor).
const periodicDivisor = 10

// Config of the compactor.
type Config struct {
	Mode string
	// Period is the history the periodic mode keeps (> 0).
	Period time.Duration
	// Revisions is the number of revisions the revision mode keeps (> 0).
	Revisions int64
	// CheckInterval overrides the revision mode's check interval; 0 means
	// DefaultRevisionCheckInterval. The periodic mode derives its own from
	// Period.
	CheckInterval time.Duration

	// Member is the member compacted (see Member).
	Member Member
	Logger *slog.Logger
}

// Member is what the compactor needs of its member. The node implements it
// with the member's raft client; tests with a fake.
type Member interface {
	// Rev returns the current revision of the store, 0 while unknown
	// (the core is restarting).
	Rev() int64
	// IsLeader reports whether this member leads now.
	IsLeader() bool
	// Compact proposes a compaction at rev and waits for it to apply; it
	// runs on the compactor's own goroutine, never on the actor's.
	Compact(ctx context.Context, rev int64) error
}

// Props returns the compactor's props.
func Props(cfg Config) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &compactor{cfg: cfg} })
}

// check is the timer's message: time to sample and maybe compact.
type check struct{}

// compacted is the result of one compaction at rev.
type compacted struct {
	rev int64
	err error
}

type compactor struct {
	cfg Config
	log *slog.Logger

	timer *time.Timer // the next check; nil when stopped

	// periodic mode
	revs        []int64 // revision samples, oldest first, at most retentions
	lastSuccess time.Time
	wait        time.Duration // since lastSuccess before the next compaction

	// revision mode: the last revision compacted
	prev int64

	// the compaction in flight, if any
	cancel  context.CancelFunc
	running chan struct{} // closed when its goroutine ends
}

// Receive dispatches on the message type.
func (c *compactor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		c.handleStarted(ctx)
	case *actor.Stopping, *actor.Restarting:
		c.stop()
	case *actor.Stopped:
	case check:
		c.handleCheck(ctx)
	case compacted:
		c.handleCompacted(msg)
	default:
		c.log.Warn("unexpected message", "type", fmt.Sprintf("%T", msg))
	}
}

func (c *compactor) handleStarted(ctx actor.Context) {
	c.log = c.cfg.Logger.With("actor", "compactor")
	if c.cfg.Mode == ModePeriodic {
		c.lastSuccess = time.Now()
		c.wait = c.cfg.Period
		c.revs = []int64{c.cfg.Member.Rev()}
	}
	c.log.Info("auto compaction on", "mode", c.cfg.Mode, "retention", c.retention(), "check-interval", c.interval())
	c.schedule(ctx)
}

func (c *compactor) retention() string {
	if c.cfg.Mode == ModeRevision {
		return fmt.Sprintf("%d revisions", c.cfg.Revisions)
	}
	return c.cfg.Period.String()
}

// compactInterval is the periodic mode's time between compactions after
// the first: the period, at most an hour.
func (c *compactor) compactInterval() time.Duration { return min(c.cfg.Period, time.Hour) }

// interval is the time between checks.
func (c *compactor) interval() time.Duration {
	if c.cfg.Mode == ModePeriodic {
		return c.compactInterval() / periodicDivisor
	}
	if c.cfg.CheckInterval > 0 {
		return c.cfg.CheckInterval
	}
	return DefaultRevisionCheckInterval
}

// retentions is how many samples the periodic mode keeps: the oldest is
// the revision one period ago.
func (c *compactor) retentions() int { return int(c.cfg.Period/c.interval()) + 1 }

func (c *compactor) schedule(ctx actor.Context) {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	c.timer = time.AfterFunc(c.interval(), func() { root.Send(self, check{}) })
}

func (c *compactor) handleCheck(ctx actor.Context) {
	if c.timer == nil {
		return // stopped meanwhile
	}
	if c.cfg.Mode == ModePeriodic {
		c.checkPeriodic(ctx)
	} else {
		c.checkRevision(ctx)
	}
	c.schedule(ctx)
}

func (c *compactor) checkPeriodic(ctx actor.Context) {
	if c.cfg.Member.IsLeader() && c.running == nil && time.Since(c.lastSuccess) >= c.wait {
		// After the first period, compact every compactInterval.
		c.wait = c.compactInterval()
		c.start(ctx, c.revs[0])
	}
	if rev := c.cfg.Member.Rev(); rev > 0 {
		c.revs = append(c.revs, rev)
		if len(c.revs) > c.retentions() {
			c.revs = c.revs[1:]
		}
	}
}

func (c *compactor) checkRevision(ctx actor.Context) {
	if !c.cfg.Member.IsLeader() || c.running != nil {
		return
	}
	rev := c.cfg.Member.Rev() - c.cfg.Revisions
	if rev <= 0 || rev == c.prev || c.cfg.Member.Rev() == 0 {
		return
	}
	c.start(ctx, rev)
}

// start runs one compaction at rev on a goroutine the actor owns.
func (c *compactor) start(ctx actor.Context, rev int64) {
	if rev <= 0 {
		return
	}
	c.log.Info("starting auto-compaction", "revision", rev, "retention", c.retention())
	cctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	c.cancel, c.running = cancel, done
	self, root, compact := ctx.Self(), ctx.ActorSystem().Root, c.cfg.Member.Compact
	go func() {
		defer close(done)
		err := compact(cctx, rev)
		if cctx.Err() == nil {
			root.Send(self, compacted{rev: rev, err: err})
		}
	}()
}

func (c *compactor) handleCompacted(msg compacted) {
	c.cancel()
	c.cancel, c.running = nil, nil
	if msg.err != nil && !errors.Is(msg.err, mvcc.ErrCompacted) {
		c.log.Warn("auto-compaction failed; retrying at the next check", "revision", msg.rev, "err", msg.err, "retry-after", c.interval())
		return
	}
	c.log.Info("finished auto-compaction", "revision", msg.rev)
	if c.cfg.Mode == ModePeriodic {
		c.lastSuccess = time.Now()
	} else {
		c.prev = msg.rev
	}
}

// stop cancels the timer and the compaction in flight and waits for it.
func (c *compactor) stop() {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if c.cancel != nil {
		c.cancel()
		<-c.running
		c.cancel, c.running = nil, nil
	}
}
