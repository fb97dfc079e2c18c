package chaos

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// finalReads reads every key linearizably once the cluster is healed and
// records the reads in the history, so that porcupine checks them too.
func finalReads(ctx context.Context, cli *clientv3.Client, cfg Config, h *History, pid int) (map[string]string, error) {
	final := map[string]string{}
	for k := range cfg.Keys {
		key := cfg.key(k)
		var last error
		for attempt := 0; ; attempt++ {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("chaos: final read of %s: %w (last: %v)", key, ctx.Err(), last)
			}
			op := Op{Process: pid, Worker: -1, Kind: Get, Key: key}
			c, cancel := context.WithTimeout(ctx, cfg.OpTimeout)
			op.Call = h.Now()
			resp, err := cli.Get(c, key)
			op.Return = h.Now()
			cancel()
			if err != nil {
				last = err
				time.Sleep(100 * time.Millisecond)
				continue
			}
			op.Outcome, op.Revision = OK, resp.Header.Revision
			if len(resp.Kvs) > 0 {
				op.Read = string(resp.Kvs[0].Value)
			}
			h.Add(op)
			final[key] = op.Read
			break
		}
	}
	return final, nil
}

// lostWrites checks that no acknowledged write was lost: the final value of
// each key must come from a write that may have happened (acknowledged or
// unknown), and no acknowledged write may have started after that write
// returned (it would have overwritten it, values being unique). A key
// never written for sure may be absent.
func lostWrites(ops []Op, final map[string]string) []string {
	var out []string
	byValue := map[string]Op{}
	acked := map[string][]Op{}
	for _, op := range ops {
		if op.mayWrite() {
			byValue[op.Value] = op
		}
		if op.wrote() {
			acked[op.Key] = append(acked[op.Key], op)
		}
	}
	keys := make([]string, 0, len(final))
	for k := range final {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := final[k]
		if v == "" {
			if len(acked[k]) > 0 {
				out = append(out, fmt.Sprintf("key %s is absent after %d acknowledged writes, e.g. %v", k, len(acked[k]), acked[k][len(acked[k])-1]))
			}
			continue
		}
		w, ok := byValue[v]
		if !ok || w.Key != k {
			out = append(out, fmt.Sprintf("key %s ends with %q, which no write to it wrote", k, v))
			continue
		}
		for _, a := range acked[k] {
			if a.Call > w.Return && w.Outcome == OK {
				out = append(out, fmt.Sprintf("key %s ends with %q of %v, but the acknowledged %v started after it returned: lost", k, v, w, a))
				break
			}
		}
	}
	return out
}

// checkLinearizable runs porcupine; on a violation it writes the
// visualization to a temp file and returns its path.
func checkLinearizable(ops []Op, timeout time.Duration) (porcupine.CheckResult, string, error) {
	res, info := porcupine.CheckOperationsVerbose(kvModel, porcupineOps(ops), timeout)
	if res != porcupine.Illegal {
		return res, "", nil
	}
	f, err := os.CreateTemp("", "chaos-porcupine-*.html")
	if err != nil {
		return res, "", err
	}
	defer f.Close()
	if err := porcupine.Visualize(kvModel, info, f); err != nil {
		return res, "", err
	}
	return res, f.Name(), nil
}

// converge waits until every member holds the same data at the cluster's
// final revision: a serializable Range of every key on each member, and
// HashKV at that revision where the server has it. It returns the method
// used, the revision, and an error if the members differ or do not catch
// up in time.
func converge(ctx context.Context, cli *clientv3.Client, eps []string, tc *tls.Config) (string, int64, error) {
	// No writes run any more, so the revision of a linearizable read is
	// the final one.
	var rev int64
	for rev == 0 {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := cli.Get(c, "chaos-converge")
		cancel()
		if err == nil {
			rev = resp.Header.Revision
		} else if ctx.Err() != nil {
			return "", 0, fmt.Errorf("chaos: revision: %w", err)
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
	// Both ways where HashKV exists: the hash covers every revision, the
	// range names the keys that differ.
	how, err := rangeAll(ctx, eps, tc, rev)
	if err != nil {
		return how, rev, err
	}
	hashes, err := hashAll(ctx, cli, eps, rev)
	if status.Code(err) == codes.Unimplemented {
		return how + " (no HashKV)", rev, nil
	}
	how = "range and hashkv"
	if err != nil {
		return how, rev, err
	}
	for i, h := range hashes {
		if h != hashes[0] {
			return how, rev, fmt.Errorf("chaos: members differ at revision %d: HashKV %s=%d, %s=%d", rev, member(0), hashes[0], member(i), h)
		}
	}
	return how, rev, nil
}

// hashAll asks each member for HashKV at rev, retrying while it has not
// applied rev yet.
func hashAll(ctx context.Context, cli *clientv3.Client, eps []string, rev int64) ([]uint32, error) {
	hashes := make([]uint32, len(eps))
	for i, ep := range eps {
		for {
			c, cancel := context.WithTimeout(ctx, 2*time.Second)
			resp, err := cli.HashKV(c, ep, rev)
			cancel()
			if err == nil {
				hashes[i] = resp.Hash
				break
			}
			if status.Code(err) == codes.Unimplemented {
				return nil, err
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("chaos: HashKV of %s at revision %d: %w", member(i), rev, err)
			}
			time.Sleep(50 * time.Millisecond) // ErrFutureRev: not caught up yet
		}
	}
	return hashes, nil
}

// rangeAll compares a serializable Range of every key at rev on each
// member, once each member's revision reached rev (ErrFutureRev before).
func rangeAll(ctx context.Context, eps []string, tc *tls.Config, rev int64) (string, error) {
	views := make([]string, len(eps))
	for i, ep := range eps {
		cli, err := newClient([]string{ep}, tc)
		if err != nil {
			return "range", err
		}
		for {
			c, cancel := context.WithTimeout(ctx, 2*time.Second)
			// At rev, not the latest: leases may still expire meanwhile.
			resp, err := cli.Get(c, "\x00", clientv3.WithFromKey(), clientv3.WithSerializable(), clientv3.WithRev(rev))
			cancel()
			if err == nil {
				var s string
				for _, kv := range resp.Kvs {
					s += fmt.Sprintf("%q=%q c=%d m=%d v=%d; ", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version)
				}
				views[i] = fmt.Sprintf("rev=%d %s", rev, s)
				break
			}
			if ctx.Err() != nil {
				cli.Close()
				return "range", fmt.Errorf("chaos: %s did not reach revision %d: %v", member(i), rev, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		cli.Close()
	}
	for i, v := range views {
		if v != views[0] {
			return "range", fmt.Errorf("chaos: members differ:\n  %s: %.600s\n  %s: %.600s", member(0), views[0], member(i), v)
		}
	}
	return "range", nil
}
