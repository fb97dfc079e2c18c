package node

import (
	"strings"
	"testing"
	"time"
)

// TestAutoCompactionFlags: etcd 3.4's parsing of the retention: plain
// numbers are hours (periodic) or revisions (revision), else a duration.
func TestAutoCompactionFlags(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		period    time.Duration
		revisions int64
		err       string
	}{
		{nil, 0, 0, ""},
		{[]string{"--auto-compaction-retention", "1"}, time.Hour, 0, ""},
		{[]string{"--auto-compaction-retention", "30m"}, 30 * time.Minute, 0, ""},
		{[]string{"--auto-compaction-mode", "revision", "--auto-compaction-retention", "1000"}, 0, 1000, ""},
		{[]string{"--auto-compaction-mode", "revision"}, 0, 0, ""},
		{[]string{"--auto-compaction-retention", "soon"}, 0, 0, "error parsing CompactionRetention"},
		{[]string{"--auto-compaction-retention", "-1h"}, 0, 0, "negative"},
		{[]string{"--auto-compaction-mode", "daily", "--auto-compaction-retention", "1"}, 0, 0, "unsupported compaction mode"},
		{[]string{"--auto-compaction-mode", "daily"}, 0, 0, ""}, // off: etcd checks the mode only when on
	} {
		c := parse(t, tc.args...)
		period, revs, err := c.autoCompaction()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || c.Validate() == nil {
				t.Errorf("%q: err %v, want %q (and Validate failing)", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || period != tc.period || revs != tc.revisions {
			t.Errorf("%q: %v %d %v, want %v %d", tc.args, period, revs, err, tc.period, tc.revisions)
		}
	}
	if c := Default(); c.AutoCompactionMode != "periodic" || c.AutoCompactionRetention != "0" {
		t.Errorf("defaults %q %q", c.AutoCompactionMode, c.AutoCompactionRetention)
	}
	// A Config built in code leaves both empty: off; a retention alone
	// means the default mode.
	if p, r, err := (&Config{}).autoCompaction(); p != 0 || r != 0 || err != nil {
		t.Errorf("empty config: %v %d %v", p, r, err)
	}
	if p, _, err := (&Config{AutoCompactionRetention: "2"}).autoCompaction(); p != 2*time.Hour || err != nil {
		t.Errorf("retention without mode: %v %v", p, err)
	}
}
