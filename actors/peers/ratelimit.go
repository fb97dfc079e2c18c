package peers

import (
	"log/slog"
	"time"
)

// dropLog logs dropped messages at most once per interval and key, with the
// number dropped since the last line. Owned by one actor.
type dropLog struct {
	log      *slog.Logger
	interval time.Duration
	last     map[string]time.Time
	dropped  map[string]int
}

func newDropLog(log *slog.Logger, interval time.Duration) *dropLog {
	return &dropLog{log: log, interval: interval, last: map[string]time.Time{}, dropped: map[string]int{}}
}

// drop counts one dropped message for reason and logs it if the last line
// for reason is older than the interval.
func (d *dropLog) drop(reason string, attrs ...any) {
	d.dropped[reason]++
	now := time.Now()
	if now.Sub(d.last[reason]) < d.interval {
		return
	}
	d.last[reason] = now
	n := d.dropped[reason]
	d.dropped[reason] = 0
	d.log.Warn("dropping peer message", append([]any{"reason", reason, "dropped", n}, attrs...)...)
}
