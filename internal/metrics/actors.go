package metrics

import (
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/troupedb/troupe/internal/mailbox"
)

// Actor metrics: every actor spawned with Mailbox(kind) counts, in its
// mailbox's middleware hooks, the messages posted to it and the messages
// it processed (user and system messages alike), with a few atomic adds
// per message and no lock. At a scrape they are summed per kind into
//
//	troupe_actor_mailbox_length{actor=kind}           gauge
//	troupe_actor_messages_processed_total{actor=kind} counter
//
// The length is posted minus processed, per mailbox (a message counts
// until its handler returned: protoactor has no hook before it runs). A message lost to a
// panic in Receive is never processed: the length of that mailbox is set
// back to 0 whenever it runs empty, so the error does not last. A
// mailbox leaves its kind when its actor gets the Stop system message (a
// restart keeps the mailbox); what it processed stays in the counter.

// kindStats are the mailboxes of one actor kind.
type kindStats struct {
	name string

	mu      sync.Mutex
	live    map[*mailboxStats]struct{}
	retired uint64 // messages processed by mailboxes that left
}

// mailboxStats is the middleware of one mailbox. posted is written by the
// senders, received and lost only by the actor's own goroutine, on
// another cache line: sharing one counter cost twice as much per message
// (BenchmarkMailbox).
type mailboxStats struct {
	kind   *kindStats
	posted atomic.Int64
	_      [56]byte
	// received counts the messages processed; lost is what posted -
	// received was when the mailbox last ran empty (messages lost to
	// panics), taken off the length.
	received atomic.Int64
	lost     atomic.Int64
}

// length is the messages waiting, never below 0.
func (m *mailboxStats) length() int64 {
	return max(m.posted.Load()-m.received.Load()-m.lost.Load(), 0)
}

var kinds sync.Map // kind name -> *kindStats

func kindOf(name string) *kindStats {
	if k, ok := kinds.Load(name); ok {
		return k.(*kindStats)
	}
	k, _ := kinds.LoadOrStore(name, &kindStats{name: name, live: map[*mailboxStats]struct{}{}})
	return k.(*kindStats)
}

// Mailbox returns the props option that gives an actor of kind an
// unbounded mailbox (protoactor's default) counted in the actor metrics.
// It is behind mailbox.Gated: every troupe actor gets its mailbox here, so
// none can be handed a message before its spawn has set it up.
func Mailbox(kind string) actor.PropsOption {
	k := kindOf(kind)
	return actor.WithMailbox(func() actor.Mailbox {
		return mailbox.Gated(actor.Unbounded(&mailboxStats{kind: k})())
	})
}

// MailboxStarted: the actor is spawned.
func (m *mailboxStats) MailboxStarted() {
	m.kind.mu.Lock()
	m.kind.live[m] = struct{}{}
	m.kind.mu.Unlock()
}

// MessagePosted is called on the sender's goroutine.
func (m *mailboxStats) MessagePosted(any) { m.posted.Add(1) }

// MessageReceived is called after the actor handled msg.
func (m *mailboxStats) MessageReceived(msg any) {
	m.received.Add(1)
	if _, ok := msg.(*actor.Stop); ok {
		m.kind.retire(m)
	}
}

// MailboxEmpty: the mailbox ran out of user messages.
func (m *mailboxStats) MailboxEmpty() {
	m.lost.Store(m.posted.Load() - m.received.Load())
}

func (k *kindStats) retire(m *mailboxStats) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.live[m]; ok {
		delete(k.live, m)
		k.retired += uint64(m.received.Load())
	}
}

// totals sums the kind's mailboxes.
func (k *kindStats) totals() (length int64, processed uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	processed = k.retired
	for m := range k.live {
		// A post racing with the mailbox running empty can make lost too
		// high, and the length one too low, until it next runs empty.
		length += m.length()
		processed += uint64(m.received.Load())
	}
	return length, processed
}

var (
	mailboxLengthDesc = prometheus.NewDesc("troupe_actor_mailbox_length",
		"Messages waiting in the mailboxes of an actor kind.", []string{"actor"}, nil)
	messagesProcessedDesc = prometheus.NewDesc("troupe_actor_messages_processed_total",
		"Messages (user and system) processed by the actors of a kind.", []string{"actor"}, nil)
)

// actorCollector reports the actor metrics of every kind seen so far.
type actorCollector struct{}

func (actorCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- mailboxLengthDesc
	ch <- messagesProcessedDesc
}

func (actorCollector) Collect(ch chan<- prometheus.Metric) {
	kinds.Range(func(_, v any) bool {
		k := v.(*kindStats)
		length, processed := k.totals()
		ch <- prometheus.MustNewConstMetric(mailboxLengthDesc, prometheus.GaugeValue, float64(length), k.name)
		ch <- prometheus.MustNewConstMetric(messagesProcessedDesc, prometheus.CounterValue, float64(processed), k.name)
		return true
	})
}
