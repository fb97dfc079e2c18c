package chaos

import (
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

func putEv(rev int64, k, v string) Event { return Event{Revision: rev, Key: k, Value: v} }
func delEv(rev int64, k string) Event    { return Event{Revision: rev, Key: k, Delete: true} }

func TestCheckWatches(t *testing.T) {
	history := []Event{
		putEv(2, "a", "1"), putEv(3, "b", "1"),
		putEv(4, "a", "2"), putEv(4, "c", "1"), // one transaction
		delEv(5, "a"), putEv(6, "b", "2"), putEv(7, "d", "1"),
	}
	all := Watched{Name: "all", Key: "a", End: "\x00", StartRev: 2}
	for _, tc := range []struct {
		name   string
		w      Watched
		events []Event
		upTo   int64
		want   string // substring of the violation, "" for none
	}{
		{"everything", all, history, 7, ""},
		{"prefix of the history", all, history[:3], 0, ""},
		{"a transaction in either order", all, []Event{history[0], history[1], history[3], history[2]}, 0, ""},
		{"one key", Watched{Name: "a", Key: "a", StartRev: 1}, []Event{history[0], history[2], history[4]}, 7, ""},
		{"a range from a revision", Watched{Name: "r", Key: "b", End: "d", StartRev: 4}, []Event{history[3], history[5]}, 7, ""},
		{"empty range", Watched{Name: "e", Key: "x", End: "y", StartRev: 2}, nil, 7, ""},
		{"gap", all, []Event{history[0], history[2], history[3]}, 0, "gap: 1 due events missing before put(a, \"2\")@4, first put(b, \"1\")@3"},
		{"duplicate", all, []Event{history[0], history[1], history[1]}, 0, "duplicate"},
		{"out of order", all, []Event{history[1], history[0]}, 0, "out of order"},
		{"wrong value", all, []Event{history[0], putEv(3, "b", "x")}, 0, "was not committed"},
		{"delete reported as put", all, append(append([]Event(nil), history[:4]...), putEv(5, "a", "")), 0, "was not committed"},
		{"outside the range", Watched{Name: "a", Key: "a", StartRev: 1}, []Event{history[0], history[1]}, 0, "outside the watched range"},
		{"before the start", Watched{Name: "late", Key: "a", End: "\x00", StartRev: 4}, []Event{history[1]}, 0, "before the start"},
		{"beyond the history", all, append(append([]Event(nil), history...), putEv(8, "a", "3")), 0, "beyond the committed history"},
		{"incomplete at catch-up", all, history[:5], 7, "caught up to 7 but 2 due events never arrived, first put(b, \"2\")@6"},
		{"complete up to a revision", all, history[:5], 5, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.w
			w.Events, w.UpTo = tc.events, tc.upTo
			got := CheckWatches(history, []Watched{w})
			switch {
			case tc.want == "" && len(got) > 0:
				t.Fatalf("violations %q, want none", got)
			case tc.want != "" && !strings.Contains(strings.Join(got, "\n"), tc.want):
				t.Fatalf("violations %q, want one with %q", got, tc.want)
			}
		})
	}
}

func kvAt(k, v string, mod int64) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{Key: []byte(k), Value: []byte(v), ModRevision: mod}
}

func TestHistoryFromReads(t *testing.T) {
	reads := []RevisionRead{
		{Revision: 3, KVs: []*mvccpb.KeyValue{kvAt("a", "1", 2), kvAt("b", "1", 3)}},
		{Revision: 4, KVs: []*mvccpb.KeyValue{kvAt("a", "2", 4), kvAt("b", "1", 3), kvAt("c", "1", 4)}},
		{Revision: 5, KVs: []*mvccpb.KeyValue{kvAt("b", "1", 3), kvAt("c", "1", 4)}},
		{Revision: 6, KVs: []*mvccpb.KeyValue{kvAt("b", "1", 6), kvAt("c", "1", 4)}}, // same value put again
	}
	got, err := HistoryFromReads(reads)
	if err != nil {
		t.Fatal(err)
	}
	want := []Event{putEv(4, "a", "2"), putEv(4, "c", "1"), delEv(5, "a"), putEv(6, "b", "1")}
	if len(got) != len(want) {
		t.Fatalf("history %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("history %v, want %v", got, want)
		}
	}
	if _, err := HistoryFromReads([]RevisionRead{reads[0], reads[2]}); err == nil {
		t.Fatal("reads at 3 and 5 accepted: want consecutive revisions")
	}
}

// TestCheckWatchesOneLinePerFault: an event outside the range is reported
// once, not again as a difference from the history.
func TestCheckWatchesOneLinePerFault(t *testing.T) {
	history := []Event{putEv(2, "a", "1"), putEv(3, "b", "1")}
	w := Watched{Name: "a", Key: "a", StartRev: 2, Events: []Event{history[0], history[1]}, UpTo: 3}
	if got := CheckWatches(history, []Watched{w}); len(got) != 1 {
		t.Fatalf("violations %q, want exactly one", got)
	}
}

// TestCheckWatchesDuplicateOnce: a duplicate is reported as such only.
func TestCheckWatchesDuplicateOnce(t *testing.T) {
	history := []Event{putEv(2, "a", "1"), putEv(3, "a", "2")}
	w := Watched{Name: "a", Key: "a", StartRev: 2, Events: []Event{history[0], history[0], history[1]}, UpTo: 3}
	if got := CheckWatches(history, []Watched{w}); len(got) != 1 || !strings.Contains(got[0], "duplicate") {
		t.Fatalf("violations %q, want one duplicate", got)
	}
}
