package chaos

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// workload is the client side of a schedule: Clients workers, each with a
// clientv3 client of its own, doing gets, puts and CAS on a few keys.
type workload struct {
	cfg     Config
	eps     []string
	hist    *History
	nextPID func() int
}

func newClient(eps []string, tc *tls.Config) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:            eps,
		TLS:                  tc,
		DialTimeout:          2 * time.Second,
		DialKeepAliveTime:    time.Second,
		DialKeepAliveTimeout: time.Second,
		Logger:               zap.NewNop(),
	})
}

// endpointsFor gives even workers every endpoint (clientv3 balances and
// fails over) and odd workers a single member, so that some clients stay
// on a member while it is killed or frozen.
func (w *workload) endpointsFor(worker int) []string {
	if worker%2 == 0 {
		return w.eps
	}
	return []string{w.eps[(worker/2)%len(w.eps)]}
}

// run runs worker until ctx is done.
func (w *workload) run(ctx context.Context, worker int) error {
	cli, err := newClient(w.endpointsFor(worker), w.cfg.TLS)
	if err != nil {
		return fmt.Errorf("chaos: client of worker %d: %w", worker, err)
	}
	defer cli.Close()
	rng := rand.New(rand.NewPCG(uint64(w.cfg.Seed), uint64(worker)+1))
	known := map[string]string{} // last value this worker saw per key
	pid := w.nextPID()
	for seq := 0; ctx.Err() == nil; seq++ {
		op := Op{Process: pid, Worker: worker, Key: w.cfg.key(rng.IntN(w.cfg.Keys))}
		switch r := rng.IntN(100); {
		case r < 40:
			op.Kind = Get
		case r < 75:
			op.Kind = Put
			op.Value = fmt.Sprintf("w%d-%d", worker, seq)
		default:
			op.Kind = CAS
			op.Value = fmt.Sprintf("w%d-%d", worker, seq)
			op.Expect = known[op.Key]
			if op.Expect == "" {
				op.Expect = "never-written"
			}
		}
		w.do(ctx, cli, &op)
		if ctx.Err() != nil && op.Outcome != OK {
			// Cut short by the end of the schedule, not by a fault: a
			// write is still recorded as unknown, a read dropped.
			if op.Outcome == Unknown {
				w.hist.Add(op)
			}
			break
		}
		w.hist.Add(op)
		switch {
		case op.Outcome == Unknown:
			pid = w.nextPID()
			delete(known, op.Key)
		case op.Outcome == Failed:
		case op.Kind == Get:
			known[op.Key] = op.Read
		case op.Kind == Put || op.Succeeded:
			known[op.Key] = op.Value
		}
		sleepCtx(ctx, w.cfg.OpInterval)
		if op.Outcome != OK {
			// Back off so that an outage yields a few unknown ops per
			// worker, not thousands (each one widens porcupine's search).
			sleepCtx(ctx, w.cfg.ErrorBackoff)
		}
	}
	return nil
}

// do runs one operation and fills in its outcome.
func (w *workload) do(ctx context.Context, cli *clientv3.Client, op *Op) {
	octx, cancel := context.WithTimeout(ctx, w.cfg.OpTimeout)
	defer cancel()
	op.Call = w.hist.Now()
	var err error
	switch op.Kind {
	case Get:
		var resp *clientv3.GetResponse
		var opts []clientv3.OpOption
		if w.cfg.SerializableGets {
			opts = append(opts, clientv3.WithSerializable())
		}
		resp, err = cli.Get(octx, op.Key, opts...)
		if err == nil {
			op.Revision = resp.Header.Revision
			if len(resp.Kvs) > 0 {
				op.Read = string(resp.Kvs[0].Value)
			}
		}
	case Put:
		var resp *clientv3.PutResponse
		resp, err = cli.Put(octx, op.Key, op.Value)
		if err == nil {
			op.Revision = resp.Header.Revision
		}
	case CAS:
		var resp *clientv3.TxnResponse
		resp, err = cli.Txn(octx).
			If(clientv3.Compare(clientv3.Value(op.Key), "=", op.Expect)).
			Then(clientv3.OpPut(op.Key, op.Value)).
			Commit()
		if err == nil {
			op.Revision = resp.Header.Revision
			op.Succeeded = resp.Succeeded
		}
	}
	op.Return = w.hist.Now()
	switch {
	case err == nil:
		op.Outcome = OK
	case op.Kind == Get:
		op.Outcome, op.Err = Failed, errString(err)
	default:
		op.Outcome, op.Err = Unknown, errString(err)
	}
}

func errString(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	s := err.Error()
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
