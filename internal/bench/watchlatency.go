package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// putRing remembers when each recent put started, so a watcher can turn
// an event into a latency. It holds the last ringSize puts: an event that
// arrives after ringSize later puts started is counted as late, not
// measured (a bound on memory for runs of any length).
const ringSize = 1 << 16

type putStart struct {
	seq   atomic.Int64 // the put's sequence number + 1 (0: empty)
	start atomic.Int64 // its start, in ns since the run's start
}

// runWatchLatency puts to one key while --watchers watchers on --streams
// watch streams watch it; each event's latency runs from its put's start
// to the watcher receiving it. Without --rate one put is in flight at a
// time and the next starts once every watcher has the last one's event
// (latency without queueing, as e2e's BenchmarkWatchLatency); with --rate
// --clients putters put at that rate whether or not the events kept up.
func runWatchLatency(ctx context.Context, cfg *Config) (*Result, error) {
	clis, err := dial(ctx, cfg, cfg.Conns)
	if err != nil {
		return nil, err
	}
	defer closeAll(clis)
	key := keyOf(make([]byte, cfg.KeySize), 0)
	wctx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()

	streams := make([]clientv3.Watcher, cfg.Streams)
	for i := range streams {
		// Its own Watcher is its own gRPC stream; clientv3 puts the
		// watches of one Watcher and context on one stream.
		streams[i] = clientv3.NewWatcher(clis[i%len(clis)])
		defer func() { _ = streams[i].Close() }()
	}
	chans := make([]clientv3.WatchChan, cfg.Watchers)
	for i := range chans {
		chans[i] = streams[i%cfg.Streams].Watch(wctx, key, clientv3.WithCreatedNotify())
	}
	for i, ch := range chans {
		select {
		case resp, ok := <-ch:
			if !ok || !resp.Created {
				return nil, fmt.Errorf("watch-latency: watcher %d not created: %v", i, resp.Err())
			}
		case <-time.After(30 * time.Second):
			return nil, fmt.Errorf("watch-latency: watcher %d not created within 30s", i)
		}
	}

	var ring [ringSize]putStart
	start := time.Now()
	var putsDone atomic.Int64
	watchers := make([]*worker, cfg.Watchers)
	var late atomic.Int64
	d := &delivery{arrived: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	for i := range watchers {
		w := newWorker(i, cfg.KeySize)
		watchers[i] = w
		wg.Go(func() { receiveEvents(chans[i], w, &ring, start, &late, d) })
	}

	watch, err := startServerWatch(cfg.ServerPIDs)
	if err != nil {
		return nil, err
	}
	put := func(ctx context.Context, cli *clientv3.Client, w *worker, seq int64) error {
		val := make([]byte, cfg.ValSize)
		binary.BigEndian.PutUint64(val, uint64(seq))
		slot := &ring[seq%ringSize]
		slot.start.Store(int64(time.Since(start)))
		slot.seq.Store(seq + 1)
		_, err := cli.Put(ctx, key, string(val))
		if err != nil {
			return err
		}
		n := putsDone.Add(1)
		if cfg.Rate == 0 {
			return d.wait(ctx, n*int64(cfg.Watchers))
		}
		return nil
	}
	pcfg := *cfg
	if cfg.Rate == 0 {
		pcfg.Clients = 1
	}
	puts, runErr := loop(ctx, &pcfg, "puts", clis, int64(cfg.Total), cfg.Duration, nil, put)
	if puts == nil {
		return nil, runErr
	}
	// Every watcher sees every successful put, or the run is cut short.
	want := putsDone.Load()
	deadline := time.Now().Add(30 * time.Second)
	for !allSeen(watchers, want) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	stopWatching()
	wg.Wait()
	ev := mergeWorkers(watchers, elapsed)
	ev.elapsed = puts.elapsed
	for msg, n := range puts.errs {
		ev.errs["put: "+msg] += n
	}
	r := newResult(cfg, ev, ev.hist.Count())
	if r.Servers, err = watch.finish(r.Ops); err != nil {
		return nil, err
	}
	r.Notes["puts"] = float64(want)
	r.Notes["watchers"] = float64(cfg.Watchers)
	r.Notes["streams"] = float64(cfg.Streams)
	r.Notes["put_p99_ns"] = float64(puts.hist.Quantile(0.99))
	r.Notes["late_events"] = float64(late.Load())
	if missing := want*int64(cfg.Watchers) - ev.hist.Count() - late.Load(); missing > 0 {
		r.Notes["missing_events"] = float64(missing)
		runErr = errors.Join(runErr, fmt.Errorf("watch-latency: %d events never arrived within 30s of the last put", missing))
	}
	return r, runErr
}

// allSeen says whether every watcher has received want events.
func allSeen(ws []*worker, want int64) bool {
	for _, w := range ws {
		if w.seen.Load() < want {
			return false
		}
	}
	return true
}

// delivery counts the events all watchers received, so a putter can wait
// for its put's events without polling.
type delivery struct {
	events  atomic.Int64
	arrived chan struct{} // a token after each response; capacity 1
}

func (d *delivery) add(n int64) {
	d.events.Add(n)
	select {
	case d.arrived <- struct{}{}:
	default:
	}
}

// wait returns once want events arrived, or errors after 30 s.
func (d *delivery) wait(ctx context.Context, want int64) error {
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for d.events.Load() < want {
		select {
		case <-d.arrived:
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout.C:
			return fmt.Errorf("watch-latency: %d of %d events within 30s", d.events.Load(), want)
		}
	}
	return nil
}

func receiveEvents(ch clientv3.WatchChan, w *worker, ring *[ringSize]putStart, start time.Time, late *atomic.Int64, d *delivery) {
	for resp := range ch {
		now := time.Now()
		for _, ev := range resp.Events {
			if len(ev.Kv.Value) < 8 {
				continue // not one of ours
			}
			seq := int64(binary.BigEndian.Uint64(ev.Kv.Value))
			slot := &ring[seq%ringSize]
			if slot.seq.Load() != seq+1 {
				late.Add(1)
			} else {
				st := start.Add(time.Duration(slot.start.Load()))
				w.record(st, now, start, nil)
			}
			w.seen.Add(1)
		}
		d.add(int64(len(resp.Events)))
	}
}
