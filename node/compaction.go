package node

import (
	"fmt"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupedb/troupe/actors/compactor"
	"github.com/troupedb/troupe/internal/metrics"
)

// Defaults of the auto compaction flags, as etcd 3.4's: off.
const (
	DefaultAutoCompactionMode      = compactor.ModePeriodic
	DefaultAutoCompactionRetention = "0"
)

// autoCompaction parses --auto-compaction-mode and
// --auto-compaction-retention as etcd 3.4 does: a whole number is hours
// in periodic mode and revisions in revision mode, anything else a Go
// duration (in revision mode too, where its nanoseconds count as
// revisions, as in etcd). A zero retention turns auto compaction off.
func (c *Config) autoCompaction() (period time.Duration, revisions int64, err error) {
	retention, mode := c.AutoCompactionRetention, c.AutoCompactionMode
	if retention == "" {
		retention = DefaultAutoCompactionRetention
	}
	if mode == "" { // a Config built in code
		mode = DefaultAutoCompactionMode
	}
	var d time.Duration
	if h, err := strconv.Atoi(retention); err == nil && h >= 0 {
		d = time.Duration(h)
		if mode == compactor.ModePeriodic {
			d *= time.Hour
		}
	} else if d, err = time.ParseDuration(retention); err != nil {
		return 0, 0, fmt.Errorf("--auto-compaction-retention %q: error parsing CompactionRetention: %v; give hours ('1') or a duration ('30m')", retention, err)
	}
	if d == 0 {
		return 0, 0, nil // off, whatever the mode (etcd checks it only when on)
	}
	switch mode {
	case compactor.ModePeriodic:
		if d < 0 {
			return 0, 0, fmt.Errorf("--auto-compaction-retention %q is negative", retention)
		}
		return d, 0, nil
	case compactor.ModeRevision:
		if d < 0 {
			return 0, 0, fmt.Errorf("--auto-compaction-retention %q is negative", retention)
		}
		return 0, int64(d), nil
	default:
		return 0, 0, fmt.Errorf("--auto-compaction-mode %q: unsupported compaction mode; use 'periodic' or 'revision'", c.AutoCompactionMode)
	}
}

// spawnCompactor starts the auto compactor when a retention is set. It
// proposes compactions through the member's raft client, as the KV
// service does for clients.
func (s *supervisor) spawnCompactor(ctx actor.Context) error {
	period, revisions, err := s.cfg.autoCompaction()
	if err != nil || (period == 0 && revisions == 0) {
		return err
	}
	mode := compactor.ModeRevision
	if period > 0 {
		mode = compactor.ModePeriodic
	}
	_, err = ctx.SpawnNamed(compactor.Props(compactor.Config{
		Mode: mode, Period: period, Revisions: revisions,
		Member: compactionMember{raft: s.raft},
		Logger: s.cfg.Logger,
	}).Configure(metrics.Mailbox("compactor")), "compactor")
	if err != nil {
		return fmt.Errorf("spawn compactor: %w", err)
	}
	return nil
}
