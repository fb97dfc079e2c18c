package peers

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/snap"
)

// Flow control of a snapshot transfer: the sender has at most sendWindow
// chunks unacknowledged, and the receiver queues at most receiveWindow
// (more is a protocol error that aborts the transfer), so a transfer holds
// a few MiB at most on either side.
const (
	sendWindow    = 4
	receiveWindow = 2 * sendWindow
)

// Timeouts of a transfer. A receiver that gets no chunk for
// receiveIdleTimeout gives up; a sender waits chunkAckTimeout for each
// acknowledgement, and lastAckTimeout for the last one, which comes after
// the receiver synced the whole file.
var (
	receiveIdleTimeout = 30 * time.Second
	chunkAckTimeout    = 10 * time.Second
	lastAckTimeout     = 2 * time.Minute
)

var errReceiveIdle = errors.New("peers: snapshot transfer idle, sender gone")

// receiving is the inbox's side of one snapshot transfer: it checks the
// order of the chunks and queues them for the goroutine that writes them.
type receiving struct {
	transferID uint64
	from       uint64
	index      uint64
	next       uint64 // offset of the next chunk
	lastTaken  bool
	s          *stream
}

// stream is what the inbox and the writing goroutine share: the queue of
// chunks and the abort signal. reason is written before aborted is closed.
type stream struct {
	chunks  chan chunkItem
	aborted chan struct{}
	reason  string
}

type chunkItem struct {
	c       *messages.SnapshotChunk
	replyTo *actor.PID
}

// receiveDone tells the inbox that the goroutine of a transfer ended.
type receiveDone struct {
	transferID uint64
	index      uint64
	size       int64
	path       string
	err        error
}

// newReceiving prepares to receive the transfer c begins; its chunks
// queue until start.
func newReceiving(c *messages.SnapshotChunk) *receiving {
	s := &stream{chunks: make(chan chunkItem, receiveWindow), aborted: make(chan struct{})}
	return &receiving{transferID: c.GetTransferId(), from: c.GetFrom(), index: c.GetIndex(), s: s}
}

// start starts the goroutine that saves the database with SaveDBFrom and
// reports receiveDone to inbox.
func (r *receiving) start(system *actor.ActorSystem, inbox *actor.PID, snapper *snap.Snapshotter, log *slog.Logger) {
	s, tid, index := r.s, r.transferID, r.index
	log.Info("receiving snapshot database", "from", r.from, "transfer", tid, "index", index)
	go func() {
		cr := &chunkReader{s: s, system: system, transferID: tid}
		path, err := snapper.SaveDBFrom(cr, index)
		cr.finish(err)
		system.Root.Send(inbox, &receiveDone{transferID: tid, index: index, size: cr.size, path: path, err: err})
	}()
}

// refuse aborts a transfer that was never started, answering its queued
// chunks.
func (r *receiving) refuse(system *actor.ActorSystem, reason string) {
	r.abort(reason)
	cr := &chunkReader{s: r.s, system: system, transferID: r.transferID}
	cr.finish(errors.New(reason))
}

// take queues c for the writer, or says why the transfer must be aborted.
func (r *receiving) take(c *messages.SnapshotChunk, replyTo *actor.PID) string {
	switch {
	case r.lastTaken:
		return "chunk after the last one"
	case c.GetIndex() != r.index:
		return fmt.Sprintf("snapshot index changed from %d to %d", r.index, c.GetIndex())
	case c.GetOffset() != r.next:
		return fmt.Sprintf("chunk at offset %d, expected %d", c.GetOffset(), r.next)
	}
	select {
	case r.s.chunks <- chunkItem{c: c, replyTo: replyTo}:
	default:
		return "too many chunks in flight"
	}
	r.next += uint64(len(c.GetData()))
	r.lastTaken = c.GetLast()
	return ""
}

func (r *receiving) abort(reason string) {
	select {
	case <-r.s.aborted:
	default:
		r.s.reason = reason
		close(r.s.aborted)
	}
}

// chunkReader is the io.Reader SaveDBFrom copies from: the data of the
// queued chunks in order, EOF after the last. A chunk is acknowledged once
// it was read completely (and so handed to the file), except the last,
// acknowledged by finish once the file is saved.
type chunkReader struct {
	s          *stream
	system     *actor.ActorSystem
	transferID uint64
	cur        *chunkItem
	buf        []byte
	size       int64
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for {
		if r.cur != nil && len(r.buf) > 0 {
			n := copy(p, r.buf)
			r.buf = r.buf[n:]
			r.size += int64(n)
			return n, nil
		}
		if r.cur != nil {
			if r.cur.c.GetLast() {
				return 0, io.EOF
			}
			r.ack(r.cur, nil)
			r.cur = nil
		}
		if err := r.wait(); err != nil {
			return 0, err
		}
	}
}

func (r *chunkReader) wait() error {
	idle := time.NewTimer(receiveIdleTimeout)
	defer idle.Stop()
	select {
	case it := <-r.s.chunks:
		r.cur, r.buf = &it, it.c.GetData()
		return nil
	case <-r.s.aborted:
		return fmt.Errorf("peers: snapshot transfer aborted: %s", r.s.reason)
	case <-idle.C:
		return errReceiveIdle
	}
}

// finish acknowledges the chunk being read (the last one, if the save
// succeeded) with the outcome, and refuses those still queued.
func (r *chunkReader) finish(err error) {
	if r.cur != nil {
		r.ack(r.cur, err)
		r.cur = nil
	}
	if err == nil {
		err = errors.New("peers: transfer over")
	}
	for {
		select {
		case it := <-r.s.chunks:
			r.ack(&it, err)
		default:
			return
		}
	}
}

func (r *chunkReader) ack(it *chunkItem, err error) {
	if it.replyTo == nil {
		return
	}
	a := &messages.SnapshotChunkAck{TransferId: r.transferID, Offset: it.c.GetOffset()}
	if err != nil {
		a.Error = err.Error()
	}
	r.system.Root.Send(it.replyTo, a)
}
