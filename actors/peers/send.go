package peers

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupedb/troupe/messages"
)

// snapshotSent tells a peer actor how the transfer of a snapshot database
// ended.
type snapshotSent struct {
	transferID uint64
	size       int64
	err        error
}

// dbSender streams one snapshot database to a member's inbox as
// SnapshotChunk requests, at most sendWindow unacknowledged. It runs on a
// goroutine of its own and shares nothing with the peer actor.
type dbSender struct {
	system     *actor.ActorSystem
	inbox      *actor.PID
	open       func() (io.ReadCloser, error)
	head       messages.SnapshotChunk // cluster, from, to, transfer and index
	chunkBytes int
}

type pendingAck struct {
	f      *actor.Future
	offset uint64
	last   bool
}

// run sends the whole database and returns its size once the receiver
// saved it, or the first error; it stops early when ctx is cancelled.
func (d *dbSender) run(ctx context.Context) (int64, error) {
	if d.open == nil {
		return 0, errors.New("peers: no snapshot database configured (Member.SnapshotDB)")
	}
	db, err := d.open()
	if err != nil {
		return 0, fmt.Errorf("peers: open snapshot database: %w", err)
	}
	defer db.Close()
	var (
		offset  uint64
		pending []pendingAck
	)
	for last := false; !last; {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if len(pending) == sendWindow {
			if err := d.await(ctx, pending[0]); err != nil {
				return 0, err
			}
			pending = pending[1:]
		}
		buf := make([]byte, d.chunkBytes)
		n, err := io.ReadFull(db, buf)
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			last = true
		case err != nil:
			return 0, fmt.Errorf("peers: read snapshot database at offset %d: %w", offset, err)
		}
		c := d.chunk(offset, buf[:n], last)
		timeout := chunkAckTimeout
		if last {
			timeout = lastAckTimeout
		}
		f := d.system.Root.RequestFuture(d.inbox, c, timeout)
		pending = append(pending, pendingAck{f: f, offset: offset, last: last})
		offset += uint64(n)
	}
	for _, p := range pending {
		if err := d.await(ctx, p); err != nil {
			return 0, err
		}
	}
	return int64(offset), nil
}

func (d *dbSender) chunk(offset uint64, data []byte, last bool) *messages.SnapshotChunk {
	return &messages.SnapshotChunk{
		ClusterId:  d.head.GetClusterId(),
		From:       d.head.GetFrom(),
		To:         d.head.GetTo(),
		TransferId: d.head.GetTransferId(),
		Index:      d.head.GetIndex(),
		Offset:     offset,
		Data:       data,
		Last:       last,
	}
}

// await waits for the acknowledgement of one chunk; a cancelled ctx ends
// the wait (the future still times out on its own).
func (d *dbSender) await(ctx context.Context, p pendingAck) error {
	type result struct {
		v   any
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := p.f.Result()
		done <- result{v, err}
	}()
	var r result
	select {
	case <-ctx.Done():
		return ctx.Err()
	case r = <-done:
	}
	if r.err != nil {
		return fmt.Errorf("peers: snapshot chunk at offset %d: %w", p.offset, r.err)
	}
	ack, ok := r.v.(*messages.SnapshotChunkAck)
	switch {
	case !ok:
		return fmt.Errorf("peers: snapshot chunk at offset %d: unexpected answer %T", p.offset, r.v)
	case ack.GetError() != "":
		return fmt.Errorf("peers: snapshot chunk at offset %d refused: %s", p.offset, ack.GetError())
	case ack.GetTransferId() != d.head.GetTransferId() || ack.GetOffset() != p.offset:
		return fmt.Errorf("peers: snapshot chunk at offset %d: answer for transfer %x offset %d", p.offset, ack.GetTransferId(), ack.GetOffset())
	}
	return nil
}
