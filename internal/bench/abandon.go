package bench

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
)

// stallConn is a client connection that stops reading on demand: the
// server's responses then pile up in its own buffers, as behind a client
// that hung or was paused, which is what the abandon workload measures.
type stallConn struct {
	net.Conn
	stalled atomic.Bool
	release chan struct{}
	once    sync.Once
}

func (c *stallConn) Read(p []byte) (int, error) {
	if c.stalled.Load() {
		<-c.release
		return 0, net.ErrClosed
	}
	return c.Conn.Read(p)
}

func (c *stallConn) Close() error {
	c.once.Do(func() { close(c.release) })
	return c.Conn.Close()
}

// abandoned is one call's own client and connection.
type abandoned struct {
	cli  *clientv3.Client
	conn atomic.Pointer[stallConn]
}

// openAbandoned connects a client whose connection can be stalled, and
// makes one request so the connection is up before anything stalls.
func openAbandoned(ctx context.Context, cfg *Config) (*abandoned, error) {
	a := &abandoned{}
	dialer := grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		sc := &stallConn{Conn: c, release: make(chan struct{})}
		a.conn.Store(sc)
		return sc, nil
	})
	clis, err := dial(ctx, cfg, 1, dialer)
	if err != nil {
		return nil, err
	}
	a.cli = clis[0]
	if _, err := a.cli.Get(ctx, "\x00", clientv3.WithSerializable(), clientv3.WithCountOnly()); err != nil {
		_ = a.cli.Close()
		return nil, fmt.Errorf("abandon: first request: %w", err)
	}
	return a, nil
}

// stall stops reading a's connection.
func (a *abandoned) stall() {
	if c := a.conn.Load(); c != nil {
		c.stalled.Store(true)
	}
}

// close frees a stalled read first, so the client's goroutines end.
func (a *abandoned) close() {
	if c := a.conn.Load(); c != nil {
		c.once.Do(func() { close(c.release) })
	}
	_ = a.cli.Close()
}

// runAbandon opens --watches watch calls (each on the whole key space)
// and --ranges range calls (each of the whole key space), each on its own
// connection that stops reading, puts --total values so the watches have
// events to send, ends the calls as --end says (not at all, cancelled, or
// their connections closed), waits --hold, and reports the servers' memory
// before and after. Closing the connections at the end frees what is
// left.
func runAbandon(ctx context.Context, cfg *Config) (*Result, error) {
	clis, err := dial(ctx, cfg, cfg.Conns)
	if err != nil {
		return nil, err
	}
	defer closeAll(clis)
	val := randomValue(cfg.ValSize)
	if !cfg.SkipLoad {
		if err := load(ctx, cfg, clis, val); err != nil {
			return nil, err
		}
	}
	watch, err := startServerWatch(cfg.ServerPIDs)
	if err != nil {
		return nil, err
	}
	callCtx, cancelCalls := context.WithCancel(ctx)
	var calls []*abandoned
	var wg sync.WaitGroup
	defer func() {
		cancelCalls()
		for _, a := range calls {
			a.close()
		}
		wg.Wait()
	}()
	start := time.Now()
	w := newWorker(0, cfg.KeySize)
	n := cfg.AbandonWatches + cfg.AbandonRanges
	var opened atomic.Int64
	stopProgress := watchProgress(cfg.Progress, "open", &opened, func() float64 { return float64(opened.Load()) / float64(n) })
	for i := range n {
		st := time.Now()
		a, err := openAbandoned(ctx, cfg)
		if err != nil {
			stopProgress()
			return nil, err
		}
		calls = append(calls, a)
		if i < cfg.AbandonWatches {
			// Watch returns once the server said created: the watch is
			// open when its connection stops reading.
			ch := a.cli.Watch(callCtx, "\x00", clientv3.WithFromKey(), clientv3.WithCreatedNotify())
			a.stall()
			wg.Go(func() {
				for range ch { //nolint:revive // ends when the connection is closed
				}
			})
		} else {
			// The request goes out; its response is never read.
			a.stall()
			wg.Go(func() { _, _ = a.cli.Get(callCtx, "\x00", clientv3.WithFromKey()) })
		}
		w.record(st, time.Now(), start, nil)
		opened.Add(1)
	}
	stopProgress()
	// Events for every abandoned watch to hold.
	pc := *cfg
	pc.Rate = 0
	puts, err := loop(ctx, &pc, "puts", clis, int64(cfg.Total), 0, nil,
		func(ctx context.Context, cli *clientv3.Client, w *worker, seq int64) error {
			_, err := cli.Put(ctx, keyOf(w.key, w.keyNumber(cfg, seq)), val)
			return err
		})
	if err != nil {
		return nil, err
	}
	switch cfg.AbandonEnd {
	case AbandonEndCancel:
		cancelCalls()
	case AbandonEndClose:
		for _, a := range calls {
			a.close()
		}
	}
	select {
	case <-time.After(cfg.AbandonHold):
	case <-ctx.Done():
	}
	p := mergeWorkers([]*worker{w}, time.Since(start))
	for msg, k := range puts.errs {
		p.errs["put: "+msg] += k
	}
	r := newResult(cfg, p, int64(n))
	if r.Servers, err = watch.finish(r.Ops); err != nil {
		return nil, err
	}
	r.Notes["watches_abandoned"] = float64(cfg.AbandonWatches)
	r.Notes["ranges_abandoned"] = float64(cfg.AbandonRanges)
	r.Notes["puts_after_opening"] = float64(puts.hist.Count())
	r.Notes["hold_s"] = cfg.AbandonHold.Seconds()
	var growth int64
	for _, s := range r.Servers {
		growth = max(growth, s.RSSAfter-s.RSSBefore)
	}
	if len(r.Servers) > 0 {
		r.Notes["largest_rss_growth_bytes"] = float64(growth)
	}
	return r, ctx.Err()
}
