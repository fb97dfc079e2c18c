package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Run runs cfg's workload and reports it. ctx ends the run early (the
// report then covers what ran, and the error says why it stopped).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch cfg.Workload {
	case WatchLatency:
		return runWatchLatency(ctx, &cfg)
	case Abandon:
		return runAbandon(ctx, &cfg)
	}
	clis, err := dial(ctx, &cfg, cfg.Conns)
	if err != nil {
		return nil, err
	}
	defer closeAll(clis)
	val := randomValue(cfg.ValSize)
	if (cfg.Workload == Range || cfg.Workload == RangeLarge) && !cfg.SkipLoad {
		if err := load(ctx, &cfg, clis, val); err != nil {
			return nil, err
		}
	}
	setup, op := requestOf(&cfg, val)
	watch, err := startServerWatch(cfg.ServerPIDs)
	if err != nil {
		return nil, err
	}
	p, runErr := loop(ctx, &cfg, cfg.Workload, clis, int64(cfg.Total), cfg.Duration, setup, op)
	if p == nil {
		return nil, runErr
	}
	r := newResult(&cfg, p, p.hist.Count())
	if r.Servers, err = watch.finish(r.Ops); err != nil {
		return nil, err
	}
	if cfg.Workload == RangeLarge {
		r.Notes["keys_ranged_per_op"] = float64(cfg.KeySpace)
		r.Notes["value_bytes_per_op"] = float64(cfg.KeySpace) * float64(cfg.ValSize)
	}
	return r, runErr
}

// requestOf is the request of a request-response workload, and the
// per-client setup it needs (nil for none).
func requestOf(cfg *Config, val string) (func(context.Context, *clientv3.Client, *worker) error, opFunc) {
	switch cfg.Workload {
	case Range, RangeLarge:
		opts := readOpts(cfg)
		if cfg.Workload == RangeLarge {
			// The whole key space in one response: the server's memory
			// per request shows.
			opts = append(opts, clientv3.WithFromKey())
			return nil, func(ctx context.Context, cli *clientv3.Client, _ *worker, _ int64) error {
				_, err := cli.Get(ctx, "\x00", opts...)
				return err
			}
		}
		return nil, func(ctx context.Context, cli *clientv3.Client, w *worker, seq int64) error {
			_, err := cli.Get(ctx, keyOf(w.key, w.keyNumber(cfg, seq)), opts...)
			return err
		}
	case TxnPut:
		return nil, func(ctx context.Context, cli *clientv3.Client, w *worker, seq int64) error {
			// Consecutive keys from the picked one: a txn may not put a
			// key twice.
			first := w.keyNumber(cfg, seq*int64(cfg.TxnOps))
			ops := make([]clientv3.Op, cfg.TxnOps)
			for i := range ops {
				ops[i] = clientv3.OpPut(keyOf(w.key, (first+i)%cfg.KeySpace), val)
			}
			_, err := cli.Txn(ctx).Then(ops...).Commit()
			return err
		}
	case Mixed:
		opts := readOpts(cfg)
		return nil, func(ctx context.Context, cli *clientv3.Client, w *worker, seq int64) error {
			key := keyOf(w.key, w.keyNumber(cfg, seq))
			var err error
			if w.rnd.Float64() < cfg.ReadRatio {
				_, err = cli.Get(ctx, key, opts...)
			} else {
				_, err = cli.Put(ctx, key, val)
			}
			return err
		}
	case LeaseKeepAlive:
		// As etcd's benchmark: each client keeps one lease alive with one
		// LeaseKeepAlive request after another.
		setup := func(ctx context.Context, cli *clientv3.Client, w *worker) error {
			resp, err := cli.Grant(ctx, 60)
			if err != nil {
				return fmt.Errorf("lease-keepalive: grant: %w", err)
			}
			w.lease = resp.ID
			return nil
		}
		return setup, func(ctx context.Context, cli *clientv3.Client, w *worker, _ int64) error {
			_, err := cli.KeepAliveOnce(ctx, w.lease)
			return err
		}
	}
	return nil, func(ctx context.Context, cli *clientv3.Client, w *worker, seq int64) error {
		_, err := cli.Put(ctx, keyOf(w.key, w.keyNumber(cfg, seq)), val)
		return err
	}
}

func readOpts(cfg *Config) []clientv3.OpOption {
	if cfg.Consistency == "s" {
		return []clientv3.OpOption{clientv3.WithSerializable()}
	}
	return nil
}

// load writes every key of the key space once, with at least 16 clients,
// before a read workload.
func load(ctx context.Context, cfg *Config, clis []*clientv3.Client, val string) error {
	lc := *cfg
	lc.Rate = 0
	lc.Clients = max(cfg.Clients, 16)
	p, err := loop(ctx, &lc, "load", clis, int64(cfg.KeySpace), 0, nil,
		func(ctx context.Context, cli *clientv3.Client, w *worker, seq int64) error {
			_, err := cli.Put(ctx, keyOf(w.key, int(seq)), val)
			return err
		})
	if err != nil {
		return fmt.Errorf("load %d keys: %w", cfg.KeySpace, err)
	}
	if len(p.errs) > 0 {
		msgs := slices.Sorted(maps.Keys(p.errs))
		return fmt.Errorf("load %d keys: %d puts failed: %s", cfg.KeySpace, int64(cfg.KeySpace)-p.hist.Count(), strings.Join(msgs, "; "))
	}
	return nil
}

// randomValue is n random bytes, the value of every put (as etcd's
// benchmark: random, so compression cannot flatter a server).
func randomValue(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return string(b)
}
