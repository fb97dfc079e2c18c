package chaos

import (
	"context"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func put(p int, k, v string, call, ret int, o Outcome) Op {
	return Op{Process: p, Kind: Put, Key: k, Value: v, Call: ms(call), Return: ms(ret), Outcome: o}
}

func get(p int, k, read string, call, ret int) Op {
	return Op{Process: p, Kind: Get, Key: k, Read: read, Call: ms(call), Return: ms(ret), Outcome: OK}
}

func cas(p int, k, expect, v string, won bool, call, ret int, o Outcome) Op {
	return Op{Process: p, Kind: CAS, Key: k, Expect: expect, Value: v, Succeeded: won, Call: ms(call), Return: ms(ret), Outcome: o}
}

func TestLinearizability(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []Op
		want porcupine.CheckResult
	}{
		{"sequential", []Op{put(0, "a", "1", 0, 1, OK), get(0, "a", "1", 2, 3), cas(0, "a", "1", "2", true, 4, 5, OK), get(1, "a", "2", 6, 7)}, porcupine.Ok},
		{"concurrent read sees either", []Op{put(0, "a", "1", 0, 10, OK), get(1, "a", "", 1, 2), get(2, "a", "1", 3, 4)}, porcupine.Ok},
		{"stale read", []Op{put(0, "a", "1", 0, 1, OK), get(1, "a", "", 2, 3)}, porcupine.Illegal},
		{"read goes back", []Op{put(0, "a", "1", 0, 1, OK), put(0, "a", "2", 2, 3, OK), get(1, "a", "1", 4, 5)}, porcupine.Illegal},
		{"unknown put seen", []Op{put(0, "a", "1", 0, 1, Unknown), get(1, "a", "1", 5, 6)}, porcupine.Ok},
		{"unknown put never seen", []Op{put(0, "a", "1", 0, 1, Unknown), get(1, "a", "", 5, 6)}, porcupine.Ok},
		{"unknown put applied late", []Op{put(0, "a", "1", 0, 1, Unknown), get(1, "a", "", 5, 6), get(1, "a", "1", 7, 8)}, porcupine.Ok},
		{"cas won against another value", []Op{put(0, "a", "1", 0, 1, OK), cas(0, "a", "x", "2", true, 2, 3, OK)}, porcupine.Illegal},
		{"cas lost although it held", []Op{put(0, "a", "1", 0, 1, OK), cas(0, "a", "1", "2", false, 2, 3, OK)}, porcupine.Illegal},
		{"unknown cas applied", []Op{put(0, "a", "1", 0, 1, OK), cas(1, "a", "1", "2", false, 2, 3, Unknown), get(2, "a", "2", 9, 10)}, porcupine.Ok},
		{"unknown cas cannot apply", []Op{put(0, "a", "1", 0, 1, OK), cas(1, "a", "x", "2", false, 2, 3, Unknown), get(2, "a", "2", 9, 10)}, porcupine.Illegal},
		{"keys independent", []Op{put(0, "a", "1", 0, 1, OK), put(0, "b", "2", 2, 3, OK), get(1, "a", "1", 4, 5), get(1, "b", "2", 4, 5)}, porcupine.Ok},
		{"failed read ignored", []Op{put(0, "a", "1", 0, 1, OK), {Kind: Get, Key: "a", Call: ms(2), Return: ms(3), Outcome: Failed}}, porcupine.Ok},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, vis, err := checkLinearizable(tc.ops, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("porcupine says %s, want %s", got, tc.want)
			}
			if (vis != "") != (got == porcupine.Illegal) {
				t.Fatalf("visualization %q for result %s", vis, got)
			}
			if vis != "" {
				b, err := os.ReadFile(vis)
				if err != nil || !strings.Contains(string(b), "<html") {
					t.Fatalf("visualization %s: %v", vis, err)
				}
				os.Remove(vis)
			}
		})
	}
}

func TestLostWrites(t *testing.T) {
	a := put(0, "k", "A", 0, 10, OK)
	b := put(1, "k", "B", 20, 30, OK)
	bUnknown := put(1, "k", "B", 20, 30, Unknown)
	overlapping := put(1, "k", "B", 5, 30, OK)
	for _, tc := range []struct {
		name  string
		ops   []Op
		final string
		lost  bool
	}{
		{"last write wins", []Op{a, b}, "B", false},
		{"earlier write lost the later", []Op{a, b}, "A", true},
		{"concurrent writes either", []Op{a, overlapping}, "A", false},
		{"absent after acked write", []Op{a}, "", true},
		{"absent after unknown write", []Op{bUnknown}, "", false},
		{"unknown write may win", []Op{a, bUnknown}, "B", false},
		{"unknown write may not happen", []Op{a, bUnknown}, "A", false},
		{"value from nowhere", []Op{a}, "Z", true},
		{"failed cas wrote nothing", []Op{a, cas(2, "k", "x", "C", false, 40, 50, OK)}, "C", true},
		{"won cas counts", []Op{a, cas(2, "k", "A", "C", true, 40, 50, OK)}, "A", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := lostWrites(tc.ops, map[string]string{"k": tc.final})
			if (len(got) > 0) != tc.lost {
				t.Fatalf("lostWrites = %q, want lost=%v", got, tc.lost)
			}
		})
	}
}

// fakeCluster records what the injector does to it.
type fakeCluster struct {
	mu     sync.Mutex
	calls  []string
	alive  []bool
	leader int
}

func (f *fakeCluster) record(s string) { f.mu.Lock(); f.calls = append(f.calls, s); f.mu.Unlock() }
func (f *fakeCluster) Size() int       { return len(f.alive) }
func (f *fakeCluster) Endpoints() []string {
	return make([]string, len(f.alive))
}
func (f *fakeCluster) Alive(i int) bool { return f.alive[i] }
func (f *fakeCluster) Kill(i int) error {
	f.record("kill " + member(i))
	f.alive[i] = false
	return nil
}
func (f *fakeCluster) Restart(i int) error {
	f.record("restart " + member(i))
	f.alive[i] = true
	return nil
}
func (f *fakeCluster) Leader(context.Context) (int, error) { return f.leader, nil }
func (f *fakeCluster) Stop(i int) error {
	f.record("stop " + member(i))
	f.alive[i] = false
	return nil
}
func (f *fakeCluster) Pause(i int) error  { f.record("pause " + member(i)); return nil }
func (f *fakeCluster) Resume(i int) error { return nil }
func (f *fakeCluster) RestartWithFailpoints(i int, s string) error {
	f.record("failpoints " + member(i) + " " + s)
	return nil
}

// TestScheduleReplays: the same seed gives the same faults on the same
// members.
func TestScheduleReplays(t *testing.T) {
	schedule := func(seed int64) []string {
		f := &fakeCluster{alive: []bool{true, true, true}, leader: 1}
		cfg := Config{Seed: seed, HoldMin: time.Microsecond, HoldMax: time.Microsecond}
		cfg.setDefaults(f)
		in := &injector{c: f, cfg: cfg, faults: cfg.Faults, rng: newRand(seed, 1<<32), logf: t.Logf, counts: map[Fault]int{}, now: func() time.Duration { return 0 }}
		for range 30 {
			f.record(string(in.faults[in.rng.IntN(len(in.faults))]))
			if _, err := in.apply(Fault(f.calls[len(f.calls)-1]), in.hold()); err != nil {
				t.Fatal(err)
			}
		}
		// Members of a lost majority restart concurrently, in any order.
		calls := f.calls
		for i := 0; i < len(calls); i++ {
			j := i
			for j < len(calls) && strings.HasPrefix(calls[j], "restart ") {
				j++
			}
			sort.Strings(calls[i:j])
			i = j
		}
		return calls
	}
	a, b, c := schedule(7), schedule(7), schedule(8)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("seed 7 twice:\n%q\n%q", a, b)
	}
	if reflect.DeepEqual(a, c) {
		t.Fatalf("seeds 7 and 8 gave the same schedule %q", a)
	}
	all := strings.Join(a, "\n")
	for _, want := range []string{"kill m", "restart m", "stop m", "pause m", "failpoints m"} {
		if !strings.Contains(all, want) {
			t.Errorf("30 faults never did %q:\n%s", want, all)
		}
	}
}
