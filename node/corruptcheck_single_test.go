package node

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupedb/troupe/internal/polltest"
)

// TestCorruptCheckSingleMember: with every check on, a single member
// restarts (nothing to compare: the initial check passes) and its own
// periodic and compaction checks raise no alarm.
func TestCorruptCheckSingleMember(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.InitialCorruptCheck = true
	cfg.CorruptCheckTime = 50 * time.Millisecond
	cfg.CompactHashCheck = true
	cfg.CompactHashCheckTime = 50 * time.Millisecond
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := client(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 3 {
		if _, err := c.Put(ctx, "k", "v"); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	n, err = Start(cfg)
	if err != nil {
		t.Fatalf("restart with the initial corruption check: %v", err)
	}
	defer n.Stop()
	c = client(t, cfg)
	resp, err := c.Compact(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Wait (real time: the checker's timers are the node's) until each
	// kind of check ran after the compaction, then look for alarms.
	polltest.Eventually(t, 10*time.Second, "a periodic and a compaction hash check ran", func() (bool, string) {
		// One compaction hash to check: the compaction's.
		return logs.record("finished peer corruption check") != nil &&
			logs.recordWith("finished compaction hash check", "number-of-hashes-checked", 1.0) != nil, ""
	})
	if logs.record("storing new hash") == nil {
		t.Error("the compaction stored no hash")
	}
	alarms, err := c.AlarmList(ctx)
	if err != nil || len(alarms.Alarms) != 0 {
		t.Fatalf("alarms %v, %v; want none (compacted at header revision %d)", alarms, err, resp.Header.Revision)
	}
}

// syncBuffer is a log sink the test reads while members write to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// record returns the first JSON log record whose msg is msg, nil if none.
func (b *syncBuffer) record(msg string) map[string]any { return b.recordWith(msg, "msg", msg) }

// recordWith returns the first JSON log record whose msg is msg and whose
// attribute key has value (as encoding/json decodes it), nil if none.
func (b *syncBuffer) recordWith(msg, key string, value any) map[string]any {
	for _, line := range strings.Split(b.String(), "\n") {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) == nil && r["msg"] == msg && r[key] == value {
			return r
		}
	}
	return nil
}
