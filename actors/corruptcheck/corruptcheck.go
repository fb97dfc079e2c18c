// Package corruptcheck is a member's corruption checker, etcd 3.6's
// corruptionChecker as an actor under the node: it compares the hash of
// this member's key history (mvcc.Store.HashKV) with the other members'.
//
//   - Initial check (CheckInitialHash, from the node once the core has
//     started and before the listeners serve clients; etcd's
//     --experimental-initial-corrupt-check / feature gate
//     InitialCorruptCheck): hash at the current revision, ask every other
//     member for its hash at that revision, and answer
//     CheckInitialHashResult with an error naming the member, both hashes
//     and the revision if one with the same compact revision differs. The
//     node then stops the member, which exits non-zero; etcd raises no
//     alarm here, and neither does this.
//   - Periodic check (Config.Interval, etcd's
//     --experimental-corrupt-check-time): every Interval, on the leader
//     only, etcd's PeriodicCheck; a member found corrupt gets the CORRUPT
//     alarm, proposed through raft, so every member applies it and refuses
//     writes (persistence/alarm.Check).
//   - Compaction hash check (Config.CompactHashInterval, etcd's feature
//     gate CompactHashCheck with --experimental-compact-hash-check-time):
//     every interval, on the leader only, etcd's CompactHashCheck: the
//     hashes each member kept at the last compactions
//     (mvcc.Store.CompactHashes) are compared; the members outside the
//     majority's hash get the CORRUPT alarm (member 0 when there is no
//     majority).
//
// The other members are asked over the peer remote (peers.FetchHashKVs to
// their peer inbox), which is where etcd asks too (its peer URL's
// /members/hashkv): the check needs no client credentials and works while
// the member does not serve clients yet.
//
// In: CheckInitialHash; its own tick (a timer) and the outcome of a
// check. Out: CheckInitialHashResult to the asker; the alarm proposal
// through Member.RaiseCorrupt. A check (hashing, asking the others,
// waiting for raft) runs on a goroutine the actor owns, one at a time,
// canceled and waited for when the actor stops; its outcome comes back as
// a message. A tick while a check runs is skipped. A restart starts over.
package corruptcheck

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupedb/troupe/actors/peers"
	"github.com/troupedb/troupe/messages"
)

// Member is what the checker needs of its member. The node implements it
// with the raft client, the member view and the peer remote; tests with a
// fake. All but IsLeader run on the checker's goroutine, never the actor's.
type Member interface {
	// HashKV hashes the backend at rev (0: current), as
	// mvcc.Store.HashKV.
	HashKV(rev int64) (hash uint32, current, compacted int64, err error)
	// PeerHashes asks every other member for its hash at rev
	// (peers.FetchHashKVs), each within Timeout, until ctx ends.
	PeerHashes(ctx context.Context, rev int64) []peers.PeerHash
	// IsLeader reports whether this member leads now.
	IsLeader() bool
	// LinearizableRead waits until this member applied what the cluster
	// committed when it was called.
	LinearizableRead(ctx context.Context) error
	// RaiseCorrupt proposes the CORRUPT alarm of member id and waits for
	// it to apply.
	RaiseCorrupt(ctx context.Context, id uint64) error
	// Timeout bounds one request to raft or to another member (etcd's
	// request timeout).
	Timeout() time.Duration
	// CompactHashes returns the hashes kept at the last compactions,
	// newest first (mvcc.Store.CompactHashes).
	CompactHashes() []Hash
}

// Config of the checker.
type Config struct {
	Self uint64 // this member's id
	// Interval is the time between periodic checks; 0 runs none.
	Interval time.Duration
	// CompactHashInterval is the time between compaction hash checks; 0
	// runs none.
	CompactHashInterval time.Duration
	Member              Member
	Logger              *slog.Logger
}

// Props returns the checker's props.
func Props(cfg Config) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &checker{cfg: cfg} })
}

// tick is the timer's message: time for a periodic check.
type tick struct{}

// compactTick is the other timer's: time for a compaction hash check.
type compactTick struct{}

// initialChecked is the outcome of the initial check, for replyTo.
type initialChecked struct {
	gen     uint64
	replyTo *actor.PID
	err     error
}

// periodicChecked is the outcome of one periodic check.
type periodicChecked struct {
	gen uint64
	err error
}

// compactChecked is the outcome of one compaction hash check: the newest
// revision checked on the whole cluster so far.
type compactChecked struct {
	gen     uint64
	checked int64
	err     error
}

type checker struct {
	cfg Config
	log *slog.Logger

	timer        *time.Timer // the next tick; nil when stopped or off
	compactTimer *time.Timer // the next compactTick; nil when stopped or off
	// compactChecked is the newest compaction revision whose hashes all
	// members answered alike (etcd's latestRevisionChecked).
	compactChecked int64

	// the check in flight, if any; gen numbers the checks, so that the
	// outcome of one canceled after it sent it is told apart
	cancel  context.CancelFunc
	running chan struct{} // closed when its goroutine ends
	gen     uint64
}

// Receive dispatches on the message type.
func (c *checker) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		c.handleStarted(ctx)
	case *actor.Stopping, *actor.Restarting:
		c.stop()
	case *actor.Stopped:
	case *messages.CheckInitialHash:
		c.handleCheckInitialHash(ctx)
	case initialChecked:
		c.finished(msg.gen)
		ctx.Send(msg.replyTo, &messages.CheckInitialHashResult{Err: msg.err})
	case tick:
		c.handleTick(ctx)
	case periodicChecked:
		c.finished(msg.gen)
		if msg.err != nil {
			c.log.Warn("failed to check hash KV", "err", msg.err)
		}
	case compactTick:
		c.handleCompactTick(ctx)
	case compactChecked:
		c.finished(msg.gen)
		c.compactChecked = max(c.compactChecked, msg.checked)
		if msg.err != nil {
			c.log.Warn("failed to raise the CORRUPT alarm after the compaction hash check", "err", msg.err)
		}
	default:
		c.log.Warn("unexpected message", "type", fmt.Sprintf("%T", msg))
	}
}

func (c *checker) handleStarted(ctx actor.Context) {
	c.log = c.cfg.Logger.With("actor", "corruptcheck", "member", idString(c.cfg.Self))
	if c.cfg.Interval > 0 {
		c.log.Info("enabled corruption checking", "local-member-id", idString(c.cfg.Self), "interval", c.cfg.Interval)
		c.schedule(ctx)
	}
	if c.cfg.CompactHashInterval > 0 {
		c.scheduleCompact(ctx)
	}
}

func (c *checker) schedule(ctx actor.Context) {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	c.timer = time.AfterFunc(c.cfg.Interval, func() { root.Send(self, tick{}) })
}

func (c *checker) scheduleCompact(ctx actor.Context) {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	c.compactTimer = time.AfterFunc(c.cfg.CompactHashInterval, func() { root.Send(self, compactTick{}) })
}

func (c *checker) handleCompactTick(ctx actor.Context) {
	if c.compactTimer == nil {
		return // stopped meanwhile
	}
	if c.running == nil && c.cfg.Member.IsLeader() {
		self, m, log, checked := c.cfg.Self, c.cfg.Member, c.log, c.compactChecked
		c.start(ctx, func(cctx context.Context, gen uint64) any {
			alarms, newest := compactHashCheck(cctx, self, m, checked, log)
			var errs []error
			for _, id := range alarms {
				rctx, cancel := context.WithTimeout(cctx, m.Timeout())
				if err := m.RaiseCorrupt(rctx, id); err != nil {
					errs = append(errs, fmt.Errorf("member %s: %w", idString(id), err))
				}
				cancel()
			}
			return compactChecked{gen: gen, checked: newest, err: errors.Join(errs...)}
		})
	}
	c.scheduleCompact(ctx)
}

// handleCheckInitialHash runs the initial check; the node asks once, before
// any periodic tick can matter (it has not spawned the listeners yet).
func (c *checker) handleCheckInitialHash(ctx actor.Context) {
	replyTo := ctx.Sender()
	if c.running != nil {
		c.stopCheck() // a periodic check; the initial one goes first
	}
	self, m, log := c.cfg.Self, c.cfg.Member, c.log
	c.start(ctx, func(cctx context.Context, gen uint64) any {
		return initialChecked{gen: gen, replyTo: replyTo, err: initialCheck(cctx, self, m, log)}
	})
}

func (c *checker) handleTick(ctx actor.Context) {
	if c.timer == nil {
		return // stopped meanwhile
	}
	if c.running == nil && c.cfg.Member.IsLeader() {
		self, m, log := c.cfg.Self, c.cfg.Member, c.log
		c.start(ctx, func(cctx context.Context, gen uint64) any {
			id, found, err := periodicCheck(cctx, self, m, log)
			if err == nil && found {
				rctx, cancel := context.WithTimeout(cctx, m.Timeout())
				defer cancel()
				if err = m.RaiseCorrupt(rctx, id); err != nil {
					err = fmt.Errorf("raise the CORRUPT alarm of member %s: %w", idString(id), err)
				}
			}
			return periodicChecked{gen: gen, err: err}
		})
	}
	c.schedule(ctx)
}

// start runs check on a goroutine the actor owns and sends its outcome
// back, unless the actor canceled it meanwhile.
func (c *checker) start(ctx actor.Context, check func(context.Context, uint64) any) {
	cctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	c.gen++
	c.cancel, c.running = cancel, done
	self, root, gen := ctx.Self(), ctx.ActorSystem().Root, c.gen
	go func() {
		defer close(done)
		out := check(cctx, gen)
		if cctx.Err() == nil {
			root.Send(self, out)
		}
	}()
}

// finished forgets check gen, whose outcome arrived, if it is the one in
// flight.
func (c *checker) finished(gen uint64) {
	if gen != c.gen {
		return
	}
	if c.cancel != nil {
		c.cancel()
	}
	c.cancel, c.running = nil, nil
}

// stopCheck cancels the check in flight and waits for its goroutine.
func (c *checker) stopCheck() {
	if c.cancel != nil {
		c.cancel()
		<-c.running
		c.cancel, c.running = nil, nil
	}
}

// stop cancels the timer and the check in flight.
func (c *checker) stop() {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if c.compactTimer != nil {
		c.compactTimer.Stop()
		c.compactTimer = nil
	}
	c.stopCheck()
}
