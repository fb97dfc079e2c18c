package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// leaseWorker grants leases, attaches one key to each, keeps some alive,
// reads their keys, and revokes some or lets them expire, recording every
// call for CheckLeases: no lease may end before its last renewal's TTL.
type leaseWorker struct {
	cfg  Config
	eps  []string
	hist *LeaseHistory
}

// leaseKey is the one key of lease id: under the schedule's prefix, so the
// watchers see its put and its deletion, and apart from the model's keys.
func (w *leaseWorker) leaseKey(id clientv3.LeaseID) string {
	return fmt.Sprintf("%slease/%x", w.cfg.KeyPrefix, int64(id))
}

func (w *leaseWorker) run(ctx context.Context, worker int) error {
	cli, err := newClient(w.eps, w.cfg.TLS)
	if err != nil {
		return fmt.Errorf("chaos: client of lease worker %d: %w", worker, err)
	}
	defer cli.Close()
	rng := rand.New(rand.NewPCG(uint64(w.cfg.Seed), uint64(1000+worker)))
	for ctx.Err() == nil {
		id, ok := w.grant(ctx, cli)
		if !ok {
			sleepCtx(ctx, w.cfg.ErrorBackoff)
			continue
		}
		key := w.leaseKey(id)
		w.record(ctx, LeaseOp{Kind: LeasePut, Lease: int64(id), Key: key}, func(c context.Context, op *LeaseOp) error {
			_, err := cli.Put(c, key, "leased", clientv3.WithLease(id))
			return err
		})
		for range 2 + rng.IntN(5) {
			sleepCtx(ctx, time.Duration(300+rng.IntN(1200))*time.Millisecond)
			if rng.IntN(2) == 0 {
				w.keepAlive(ctx, cli, id)
			} else {
				w.read(ctx, cli, id, key)
			}
		}
		if rng.IntN(2) == 0 {
			w.revoke(ctx, cli, id)
		} // else it expires on its own
	}
	return nil
}

// record runs one call bounded by OpTimeout and adds it to the history;
// an error makes it Unknown unless call set the outcome itself.
func (w *leaseWorker) record(ctx context.Context, op LeaseOp, call func(context.Context, *LeaseOp) error) LeaseOp {
	octx, cancel := context.WithTimeout(ctx, w.cfg.OpTimeout)
	defer cancel()
	op.Call = w.hist.Now()
	op.Outcome = Unknown
	if err := call(octx, &op); err == nil {
		op.Outcome = OK
	}
	op.Return = w.hist.Now()
	if ctx.Err() == nil || op.Outcome != Failed {
		w.hist.Add(op)
	}
	return op
}

func (w *leaseWorker) grant(ctx context.Context, cli *clientv3.Client) (clientv3.LeaseID, bool) {
	octx, cancel := context.WithTimeout(ctx, w.cfg.OpTimeout)
	defer cancel()
	call := w.hist.Now()
	resp, err := cli.Grant(octx, int64(w.cfg.LeaseTTL/time.Second))
	if err != nil {
		// The id of a grant that may have happened is unknown: nothing
		// can be checked about it, and nothing attaches to it.
		return 0, false
	}
	w.hist.Add(LeaseOp{Kind: LeaseGrant, Lease: int64(resp.ID), TTL: time.Duration(resp.TTL) * time.Second, Call: call, Return: w.hist.Now(), Outcome: OK})
	return resp.ID, true
}

func (w *leaseWorker) keepAlive(ctx context.Context, cli *clientv3.Client, id clientv3.LeaseID) {
	w.record(ctx, LeaseOp{Kind: LeaseKeepAlive, Lease: int64(id)}, func(c context.Context, op *LeaseOp) error {
		resp, err := cli.KeepAliveOnce(c, id)
		switch {
		case err == nil:
			op.TTL = time.Duration(resp.TTL) * time.Second
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			return nil // an answer: the lease is gone (TTL 0)
		default:
			// A failed renewal may still have renewed: that only makes
			// the lease live longer, which the check allows.
			op.Outcome = Failed
		}
		return err
	})
}

func (w *leaseWorker) read(ctx context.Context, cli *clientv3.Client, id clientv3.LeaseID, key string) {
	w.record(ctx, LeaseOp{Kind: LeaseRead, Lease: int64(id), Key: key}, func(c context.Context, op *LeaseOp) error {
		resp, err := cli.Get(c, key)
		if err != nil {
			op.Outcome = Failed
			return err
		}
		op.Present = len(resp.Kvs) > 0
		return nil
	})
}

func (w *leaseWorker) revoke(ctx context.Context, cli *clientv3.Client, id clientv3.LeaseID) {
	w.record(ctx, LeaseOp{Kind: LeaseRevoke, Lease: int64(id)}, func(c context.Context, op *LeaseOp) error {
		_, err := cli.Revoke(c, id)
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			op.Outcome = Failed // it had ended already: this revoke did nothing
		}
		return err
	})
}
