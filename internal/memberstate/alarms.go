package memberstate

import "github.com/troupedb/troupe/persistence/alarm"

// SetAlarms publishes the applied alarms; the applier is the one writer.
func (s *State) SetAlarms(set alarm.Set) { s.alarms.Store(&set) }

// Alarms returns the alarms the applier last applied (empty before the
// first core start). Listeners refuse writes with them before proposing,
// Status and /health report them.
func (s *State) Alarms() alarm.Set {
	if p := s.alarms.Load(); p != nil {
		return *p
	}
	return alarm.Set{}
}
