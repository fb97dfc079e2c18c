package applier

import "go.etcd.io/etcd/api/v3/mvccpb"

// Changes collects the watch events of one Apply batch: the core opens the
// store with Options.Changed = Changes.Add, and the applier hands what
// was collected to the watch hub at the end of the batch. Writer (applier)
// goroutine only.
type Changes struct {
	events []*mvccpb.Event
}

// Add appends one write transaction's events.
func (c *Changes) Add(_ int64, evs []*mvccpb.Event) { c.events = append(c.events, evs...) }

// take returns the events collected since the last take.
func (c *Changes) take() []*mvccpb.Event {
	evs := c.events
	c.events = nil
	return evs
}
