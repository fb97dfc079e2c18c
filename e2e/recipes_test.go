package e2e

// clientv3's concurrency recipes under contention, with their invariants
// checked: mutual exclusion (no lost increment), one leader at a time, and
// serializable transactions (money is neither made nor lost). They need
// leases (sessions) and watch (waiting for the lock, observing the leader)
// besides KV.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// recipeTimeout bounds one recipe test's contended phase.
const recipeTimeout = 60 * time.Second

// TestRecipeMutex: N clients each add 1 to a counter M times with a plain
// Get and Put under the mutex; the counter ends at N*M only if no two held
// the lock at once.
func TestRecipeMutex(t *testing.T) {
	s, cli := startServer(t)
	mutexCounter(t, cli, func(int) *clientv3.Client { return s.Client(t) })
}

// TestRecipeMutexCluster is TestRecipeMutex on three members, each client
// on one member: the lock's lease and watch go through followers too.
func TestRecipeMutexCluster(t *testing.T) {
	c := e2etest.StartCluster(t, e2etest.ClusterConfig{})
	mutexCounter(t, c.Client(t), func(i int) *clientv3.Client { return c.MemberClient(t, i%c.Size()) })
}

// mutexCounter runs the counter with n workers, worker i on client(i),
// and checks the result with cli.
func mutexCounter(t *testing.T, cli *clientv3.Client, client func(i int) *clientv3.Client) {
	const n, m, counter = 5, 20, "/recipe/counter"
	c, cancel := context.WithTimeout(context.Background(), recipeTimeout)
	defer cancel()

	var holders atomic.Int32 // clients inside the critical section
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wc := client(i)
		wg.Go(func() { errs[i] = mutexWorker(c, wc, counter, m, &holders) })
	}
	wg.Wait()
	must(t, errors.Join(errs...))
	got, err := cli.Get(ctx(t), counter)
	must(t, err)
	if len(got.Kvs) != 1 || string(got.Kvs[0].Value) != strconv.Itoa(n*m) {
		t.Fatalf("counter %v after %d x %d increments under the mutex", toKVs(got.Kvs), n, m)
	}
	// the lock's keys went with their unlocks
	left, err := cli.Get(ctx(t), "/recipe/lock/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	must(t, err)
	if left.Count != 0 {
		t.Fatalf("%d lock keys left after every unlock", left.Count)
	}
}

func mutexWorker(c context.Context, cli *clientv3.Client, counter string, m int, holders *atomic.Int32) error {
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(30), concurrency.WithContext(c))
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	defer sess.Close()
	mu := concurrency.NewMutex(sess, "/recipe/lock/")
	for range m {
		if err := mu.Lock(c); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if h := holders.Add(1); h != 1 {
			return fmt.Errorf("%d holders of the mutex at once", h)
		}
		resp, err := cli.Get(c, counter)
		if err != nil {
			return err
		}
		v := 0
		if len(resp.Kvs) == 1 {
			v, _ = strconv.Atoi(string(resp.Kvs[0].Value))
		}
		if _, err := cli.Put(c, counter, strconv.Itoa(v+1)); err != nil {
			return err
		}
		holders.Add(-1)
		if err := mu.Unlock(c); err != nil {
			return fmt.Errorf("unlock: %w", err)
		}
	}
	return nil
}

// TestRecipeMutexTryLock: TryLock fails with ErrLocked while another
// session holds the lock, and takes it once released.
func TestRecipeMutexTryLock(t *testing.T) {
	_, cli := startServer(t)
	s1, err := concurrency.NewSession(cli)
	must(t, err)
	defer s1.Close()
	s2, err := concurrency.NewSession(cli)
	must(t, err)
	defer s2.Close()
	m1, m2 := concurrency.NewMutex(s1, "/recipe/try/"), concurrency.NewMutex(s2, "/recipe/try/")
	must(t, m1.Lock(ctx(t)))
	if err := m2.TryLock(ctx(t)); !errors.Is(err, concurrency.ErrLocked) {
		t.Fatalf("TryLock while held: %v, want ErrLocked", err)
	}
	must(t, m1.Unlock(ctx(t)))
	must(t, m2.TryLock(ctx(t)))
	// closing a session revokes its lease, which frees its lock
	must(t, s2.Close())
	must(t, m1.TryLock(ctx(t)))
}

// TestRecipeElection: candidates campaign together; one leads at a time,
// each proclaims a second value and resigns, which hands leadership to the
// next; an observer sees every leader's values, in the order they led.
func TestRecipeElection(t *testing.T) {
	s, cli := startServer(t)
	const n, prefix = 4, "/recipe/election/"
	c, cancel := context.WithTimeout(context.Background(), recipeTimeout)
	defer cancel()

	osess, err := concurrency.NewSession(cli)
	must(t, err)
	defer osess.Close()
	obs := &observer{}
	go obs.run(concurrency.NewElection(osess, prefix).Observe(c)) // ends with c

	var mu sync.Mutex
	var leader string   // the candidate that leads now, "" between leaders
	var values []string // every value a leader announced, in order
	report := func(name, v string) error {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case v == "":
			leader = ""
		case leader != "" && leader != name:
			return fmt.Errorf("%s leads while %s still does", name, leader)
		default:
			leader = name
			values = append(values, v)
		}
		return nil
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wc := s.Client(t)
		wg.Go(func() { errs[i] = candidate(c, wc, prefix, fmt.Sprintf("c%d", i), report, obs) })
	}
	wg.Wait()
	must(t, errors.Join(errs...))
	if len(values) != 2*n {
		t.Fatalf("leaders announced %q, want 2 values from each of %d", values, n)
	}
	if seen := obs.values(); fmt.Sprint(seen) != fmt.Sprint(values) {
		t.Fatalf("observed %q, want %q", seen, values)
	}
}

// observer collects the distinct successive values Observe reports.
type observer struct {
	mu   sync.Mutex
	seen []string
}

func (o *observer) run(ch <-chan *clientv3.GetResponse) {
	for resp := range ch {
		v := string(resp.Kvs[0].Value)
		o.mu.Lock()
		if len(o.seen) == 0 || o.seen[len(o.seen)-1] != v {
			o.seen = append(o.seen, v)
		}
		o.mu.Unlock()
	}
}

func (o *observer) values() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.seen...)
}

// await waits until the last observed value is v: a leader holds on
// until the observer saw it, so that the observer's start does not race
// the first leader.
func (o *observer) await(c context.Context, v string) error {
	for {
		if seen := o.values(); len(seen) > 0 && seen[len(seen)-1] == v {
			return nil
		}
		select {
		case <-c.Done():
			return fmt.Errorf("observer never saw %q (saw %q): %w", v, o.values(), c.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// candidate campaigns as name and reports each value it announces as
// leader, then proclaims a second one, checks Leader names it, reports
// that it stops leading ("") and resigns.
func candidate(c context.Context, cli *clientv3.Client, prefix, name string, report func(name, v string) error, obs *observer) error {
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(30), concurrency.WithContext(c))
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	defer sess.Close()
	e := concurrency.NewElection(sess, prefix)
	if err := e.Campaign(c, name); err != nil {
		return fmt.Errorf("%s campaign: %w", name, err)
	}
	if err := report(name, name); err != nil {
		return err
	}
	if err := obs.await(c, name); err != nil {
		return err
	}
	second := name + "-proclaimed"
	if err := e.Proclaim(c, second); err != nil {
		return fmt.Errorf("%s proclaim: %w", name, err)
	}
	if err := report(name, second); err != nil {
		return err
	}
	resp, err := e.Leader(c)
	if err != nil {
		return fmt.Errorf("%s leader: %w", name, err)
	}
	if got := string(resp.Kvs[0].Value); got != second {
		return fmt.Errorf("%s leads but Leader says %q", name, got)
	}
	if err := obs.await(c, second); err != nil {
		return err
	}
	if err := report(name, ""); err != nil {
		return err
	}
	return e.Resign(c)
}

// TestRecipeSTM: a bank of accounts with random concurrent transfers
// through concurrency.NewSTM. The total never changes, no balance goes
// negative, and every transaction that reads all accounts consistently sees
// the total: every attempt under the serializable levels (they read at one
// revision), the committed attempt under repeatable reads (an attempt that
// saw a mix of revisions is one whose commit fails).
func TestRecipeSTM(t *testing.T) {
	_, cli := startServer(t)
	for _, tc := range []struct {
		name     string
		iso      concurrency.Isolation
		attempts bool // every attempt sees a consistent snapshot
	}{
		{"serializable-snapshot", concurrency.SerializableSnapshot, true},
		{"serializable", concurrency.Serializable, true},
		{"repeatable-reads", concurrency.RepeatableReads, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bank(t, cli, "/recipe/bank/"+tc.name+"/", tc.iso, tc.attempts)
		})
	}
}

func bank(t *testing.T, cli *clientv3.Client, prefix string, iso concurrency.Isolation, checkAttempts bool) {
	const accounts, balance, workers, transfers = 5, 100, 4, 25
	const total = accounts * balance
	keys := make([]string, accounts)
	for i := range keys {
		keys[i] = fmt.Sprintf("%sacct%d", prefix, i)
		_, err := cli.Put(ctx(t), keys[i], strconv.Itoa(balance))
		must(t, err)
	}
	c, cancel := context.WithTimeout(context.Background(), recipeTimeout)
	defer cancel()
	var retries atomic.Int64
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range transfers {
				from, to, amount := rng.IntN(accounts), rng.IntN(accounts), 1+rng.IntN(30)
				var sum, tries int
				_, err := concurrency.NewSTM(cli, func(s concurrency.STM) error {
					tries++
					sum = 0
					bal := make([]int, accounts)
					for i, k := range keys { // one Get each: the isolation level is what makes them agree
						v, err := strconv.Atoi(s.Get(k))
						if err != nil {
							return fmt.Errorf("%s: %w", k, err)
						}
						bal[i] = v
						sum += v
					}
					if checkAttempts && sum != total {
						return fmt.Errorf("attempt %d read a total of %d, want %d", tries, sum, total)
					}
					if from == to || bal[from] < amount {
						return nil
					}
					s.Put(keys[from], strconv.Itoa(bal[from]-amount))
					s.Put(keys[to], strconv.Itoa(bal[to]+amount))
					return nil
				}, concurrency.WithIsolation(iso), concurrency.WithAbortContext(c))
				if err == nil && sum != total {
					err = fmt.Errorf("the committed attempt read a total of %d, want %d", sum, total)
				}
				if err != nil {
					errs[w] = fmt.Errorf("worker %d: %w", w, err)
					return
				}
				retries.Add(int64(tries - 1))
			}
		})
	}
	wg.Wait()
	must(t, errors.Join(errs...))
	resp, err := cli.Get(ctx(t), prefix, clientv3.WithPrefix())
	must(t, err)
	sum := 0
	for _, kv := range resp.Kvs {
		v, err := strconv.Atoi(string(kv.Value))
		must(t, err)
		if v < 0 {
			t.Fatalf("%s went negative: %d", kv.Key, v)
		}
		sum += v
	}
	if len(resp.Kvs) != accounts || sum != total {
		t.Fatalf("%d accounts with a total of %d, want %d with %d", len(resp.Kvs), sum, accounts, total)
	}
	t.Logf("%d transfers, %d retried attempts", workers*transfers, retries.Load())
}
