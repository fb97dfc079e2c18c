package corruptcheck

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/troupedb/troupe/actors/peers"
)

// TestCompactHashCheck: etcd's CompactHashCheck rules over the hashes kept
// at the last compactions (newest first).
func TestCompactHashCheck(t *testing.T) {
	h20 := Hash{Hash: 2020, Revision: 20, CompactRevision: 10}
	h10 := Hash{Hash: 1010, Revision: 10, CompactRevision: 5}
	tests := []struct {
		name        string
		checked     int64
		peersAt     map[int64][]peers.PeerHash
		wantAlarms  []uint64
		wantChecked int64
		wantAsked   []int64
		wantLog     string
	}{
		{name: "all agree on the newest",
			peersAt:     map[int64][]peers.PeerHash{20: {answer(2, 2020, 30, 10), answer(3, 2020, 30, 10)}},
			wantChecked: 20, wantAsked: []int64{20}, wantLog: "successfully checked hash on whole cluster"},
		{name: "already checked",
			checked: 20, wantChecked: 20, wantLog: `"number-of-hashes-checked":0`},
		{name: "a member did not answer: the older one is tried",
			peersAt: map[int64][]peers.PeerHash{
				20: {answer(2, 2020, 30, 10), failed(3, errors.New("future: timeout"))},
				10: {answer(2, 1010, 30, 5), answer(3, 1010, 30, 5)},
			},
			wantChecked: 10, wantAsked: []int64{20, 10}, wantLog: "skipped revision in compaction hash check; was not able to check all peers"},
		{name: "another compact revision is skipped",
			peersAt:   map[int64][]peers.PeerHash{20: {answer(2, 9999, 30, 20)}, 10: nil},
			wantAsked: []int64{20, 10}, wantLog: "the peer's CompactRevision 20 doesn't match leader's CompactRevision 10"},
		{name: "the minority is corrupt",
			peersAt:    map[int64][]peers.PeerHash{20: {answer(2, 2020, 30, 10), answer(3, 3030, 30, 10)}},
			wantAlarms: []uint64{3}, wantAsked: []int64{20},
			wantLog: `"msg":"Detected compaction hash mismatch","leader-id":"1","leader-revision":20,"leader-compact-revision":10,"leader-hash":2020,"peer-hash":3030,"peer-ids":"3","quorum-exist":true`},
		{name: "the leader is the minority",
			peersAt:    map[int64][]peers.PeerHash{20: {answer(2, 3030, 30, 10), answer(3, 3030, 30, 10)}},
			wantAlarms: []uint64{1}, wantAsked: []int64{20}, wantLog: `"peer-ids":"1"`},
		{name: "no majority: member 0",
			peersAt:    map[int64][]peers.PeerHash{20: {answer(2, 3030, 30, 10), answer(3, 4040, 30, 10)}},
			wantAlarms: []uint64{0}, wantAsked: []int64{20},
			wantLog: "Detected compaction hash mismatch but cannot identify the corrupted members, so intentionally set the memberID as 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			f := newFake(Hash{})
			f.compactHashes = []Hash{h20, h10}
			f.peersAt = tt.peersAt
			alarms, checked := compactHashCheck(context.Background(), 1, f, tt.checked, jsonLogger(&buf))
			close(f.asked)
			var asked []int64
			for r := range f.asked {
				asked = append(asked, r)
			}
			if !slices.Equal(alarms, tt.wantAlarms) || checked != tt.wantChecked || !slices.Equal(asked, tt.wantAsked) {
				t.Fatalf("alarms %v, checked %d, asked at %v; want %v, %d, %v", alarms, checked, asked, tt.wantAlarms, tt.wantChecked, tt.wantAsked)
			}
			if !strings.Contains(buf.String(), tt.wantLog) {
				t.Errorf("log does not hold %q:\n%s", tt.wantLog, buf.String())
			}
		})
	}
}
