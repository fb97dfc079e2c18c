package metrics

import "github.com/prometheus/client_golang/prometheus"

var (
	// WatcherTotal is the number of watches the watch hub serves (etcd's
	// name).
	WatcherTotal = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "etcd_debugging", Subsystem: "mvcc", Name: "watcher_total",
		Help: "Total number of watchers.",
	})
	// SlowWatcherTotal is the number of unsynced watches: behind, served
	// from history (etcd's name).
	SlowWatcherTotal = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "etcd_debugging", Subsystem: "mvcc", Name: "slow_watcher_total",
		Help: "Total number of unsynced slow watchers.",
	})
)
