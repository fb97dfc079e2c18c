package corruptcheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupedb/troupe/actors/peers"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// fake is the checker's member: a local hash (hashes, taken in turn and
// the last one kept), the other members' answers, leadership, and the
// alarms it was asked to raise.
type fake struct {
	hashes  []Hash
	peers   []peers.PeerHash
	asked   chan int64 // revisions PeerHashes was asked for
	leader  atomic.Bool
	readErr atomic.Pointer[error]
	raised  chan uint64
	// compactHashes, newest first; peersAt answers PeerHashes at a
	// revision when set (else peers).
	compactHashes []Hash
	peersAt       map[int64][]peers.PeerHash
	mu            sync.Mutex // guards peers and peersAt against setPeers
}

// setPeers replaces the answers of the other members while a checker runs.
func (f *fake) setPeers(ps []peers.PeerHash, at map[int64][]peers.PeerHash) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peers, f.peersAt = ps, at
}

func newFake(h Hash, ps ...peers.PeerHash) *fake {
	f := &fake{hashes: []Hash{h}, peers: ps, asked: make(chan int64, 100), raised: make(chan uint64, 100)}
	f.leader.Store(true)
	return f
}

func (f *fake) HashKV(rev int64) (uint32, int64, int64, error) {
	if rev != 0 {
		return 0, 0, 0, fmt.Errorf("fake hashes only the current revision, asked %d", rev)
	}
	h := f.hashes[0]
	if len(f.hashes) > 1 {
		f.hashes = f.hashes[1:]
	}
	return h.Hash, h.Revision, h.CompactRevision, nil
}

func (f *fake) PeerHashes(_ context.Context, rev int64) []peers.PeerHash {
	f.asked <- rev
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.peersAt != nil {
		return f.peersAt[rev]
	}
	return f.peers
}

func (f *fake) IsLeader() bool         { return f.leader.Load() }
func (f *fake) Timeout() time.Duration { return 5 * time.Second }

func (f *fake) LinearizableRead(context.Context) error {
	if err := f.readErr.Load(); err != nil {
		return *err
	}
	return nil
}

func (f *fake) CompactHashes() []Hash { return f.compactHashes }

func (f *fake) RaiseCorrupt(_ context.Context, id uint64) error {
	f.raised <- id
	return nil
}

func answer(id uint64, hash uint32, rev, compacted int64) peers.PeerHash {
	return peers.PeerHash{ID: id, URLs: []string{fmt.Sprintf("http://127.0.0.1:%d", 2380+id)},
		Resp: &messages.HashKV{MemberId: id, Hash: hash, HashRevision: rev, Revision: rev, CompactRevision: compacted}}
}

func failed(id uint64, err error) peers.PeerHash {
	return peers.PeerHash{ID: id, URLs: []string{fmt.Sprintf("http://127.0.0.1:%d", 2380+id)}, Err: err}
}

func jsonLogger(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, nil))
}

// TestInitialCheck: only a member with another hash at the same revision
// and compact revision fails the check; members that answer otherwise or
// not at all are logged with etcd's messages and pass.
func TestInitialCheck(t *testing.T) {
	local := Hash{Hash: 111, Revision: 9, CompactRevision: 3}
	tests := []struct {
		name    string
		peers   []peers.PeerHash
		wantErr []string // substrings of the error; nil: passes
		wantLog string
	}{
		{name: "same hash", peers: []peers.PeerHash{answer(2, 111, 9, 3), answer(3, 111, 12, 3)},
			wantLog: "initial corruption checking passed; no corruption"},
		{name: "different hash", peers: []peers.PeerHash{answer(2, 111, 9, 3), answer(3, 222, 12, 3)},
			wantErr: []string{"a found data inconsistency with peers", "member 3 ", "http://127.0.0.1:2383", "hash 222 at revision 9", "this member 111", "compact revision 3", "fix:"},
			wantLog: `"msg":"found different hash values from remote peer","local-member-id":"a","local-member-revision":9,"local-member-compact-revision":3,"local-member-hash":111,"remote-peer-id":"3","remote-peer-endpoints":["http://127.0.0.1:2383"],"remote-peer-revision":12,"remote-peer-compact-revision":3,"remote-peer-hash":222`},
		{name: "different compact revision", peers: []peers.PeerHash{answer(2, 222, 9, 5)},
			wantLog: "found different compact revision values from remote peer"},
		{name: "slow peer", peers: []peers.PeerHash{failed(2, fmt.Errorf("u: %w", mvcc.ErrFutureRev))},
			wantLog: "cannot fetch hash from slow remote peer"},
		{name: "compacted peer", peers: []peers.PeerHash{failed(2, fmt.Errorf("u: %w", mvcc.ErrCompacted))},
			wantLog: "cannot fetch hash from remote peer; local member is behind"},
		{name: "other cluster", peers: []peers.PeerHash{failed(2, fmt.Errorf("u: %w", peers.ErrClusterIDMismatch))},
			wantLog: "cluster ID mismatch"},
		{name: "unreachable", peers: []peers.PeerHash{failed(2, errors.New("future: timeout"))},
			wantLog: "failed hash kv request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			f := newFake(local, tt.peers...)
			err := initialCheck(context.Background(), 0xa, f, jsonLogger(&buf))
			if rev := <-f.asked; rev != 9 {
				t.Errorf("asked the others at revision %d, want the local one, 9", rev)
			}
			if tt.wantErr == nil && err != nil {
				t.Fatalf("error %v, want none", err)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, ErrInconsistent) {
					t.Fatalf("error %v, want ErrInconsistent", err)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not name %q", err, s)
					}
				}
			}
			if !strings.Contains(buf.String(), tt.wantLog) {
				t.Errorf("log does not hold %q:\n%s", tt.wantLog, buf.String())
			}
		})
	}
}

// TestComparePeriodic: etcd's PeriodicCheck rules; the first member found
// is the one alarmed.
func TestComparePeriodic(t *testing.T) {
	h := Hash{Hash: 111, Revision: 9, CompactRevision: 3}
	tests := []struct {
		name    string
		h2      Hash
		rev2    int64
		peers   []peers.PeerHash
		want    uint64 // 0: none
		wantLog string
	}{
		{name: "consistent", h2: h, rev2: 9, peers: []peers.PeerHash{answer(2, 111, 9, 3), failed(3, errors.New("down"))},
			wantLog: `"number-of-peers-checked":1`},
		{name: "follower hash differs", h2: Hash{Hash: 444, Revision: 11, CompactRevision: 3}, rev2: 11,
			peers: []peers.PeerHash{answer(2, 111, 9, 3), answer(3, 222, 10, 3)}, want: 3, wantLog: "same compact revision then hashes must match"},
		{name: "leader changed under itself", h2: Hash{Hash: 112, Revision: 9, CompactRevision: 3}, rev2: 9,
			peers: []peers.PeerHash{answer(2, 222, 9, 3)}, want: 0xa, wantLog: "found hash mismatch"},
		{name: "follower ahead", h2: h, rev2: 9, peers: []peers.PeerHash{answer(2, 111, 10, 3)}, want: 2,
			wantLog: "revision from follower must be less than or equal to leader's"},
		{name: "follower compacted more", h2: h, rev2: 9, peers: []peers.PeerHash{answer(2, 999, 9, 4)}, want: 2,
			wantLog: "compact revision from follower must be less than or equal to leader's"},
		{name: "follower compacted less", h2: Hash{Hash: 555, Revision: 9, CompactRevision: 5}, rev2: 9,
			peers: []peers.PeerHash{answer(2, 999, 9, 2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			id, found := comparePeriodic(0xa, h, tt.h2, tt.rev2, tt.peers, jsonLogger(&buf))
			if found != (tt.want != 0) || id != tt.want {
				t.Fatalf("alarm for %x (found %v), want %x", id, found, tt.want)
			}
			if !strings.Contains(buf.String(), tt.wantLog) {
				t.Errorf("log does not hold %q:\n%s", tt.wantLog, buf.String())
			}
		})
	}
}
