package metrics

import (
	"net/http"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/troupedb/troupe/internal/etcdversion"
	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// Member is what the gauges read at each scrape (a raftclient.Client).
type Member interface {
	View() *memberview.View
	AppliedIndex() uint64
	Pending() int
	Store() *mvcc.Store // nil while the core is down
}

// Registry returns a registry with the package's collectors, the Go and
// process collectors, and gauges read from m at each scrape. Each call
// makes a new registry, so a restarted listener registers nothing twice.
func Registry(m Member) *prometheus.Registry {
	state := m.View()
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		WALFsyncSeconds, BackendCommitSeconds, LeaderChanges, ProposalsFailed, grpcHandled,
		PeerRoundTripSeconds, actorCollector{},
		WatcherTotal, SlowWatcherTotal,
		healthSuccess, healthFailed, healthCheckGauge, healthCheckCounter,
	)
	reg.MustRegister(versionGauges()...)
	if extensive.Load() {
		reg.MustRegister(grpcHandlingSeconds)
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	// etcd reports the committed and applied indexes as these "totals",
	// as gauges.
	reg.MustRegister(
		gauge("etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.", func() float64 {
			return boolFloat(state.Leader() != 0)
		}),
		gauge("etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise.", func() float64 {
			return boolFloat(state.IsLeader())
		}),
		gauge("etcd_server_proposals_committed_total", "The total number of consensus proposals committed.", func() float64 {
			return float64(state.RaftIndex())
		}),
		gauge("etcd_server_proposals_applied_total", "The total number of consensus proposals applied.", func() float64 {
			return float64(m.AppliedIndex())
		}),
		gauge("etcd_server_proposals_pending", "The current number of pending proposals to commit.", func() float64 {
			return float64(m.Pending())
		}),
		gauge("etcd_mvcc_db_total_size_in_bytes", "Total size of the underlying database physically allocated in bytes.", func() float64 {
			return float64(dbSize(m, false))
		}),
		gauge("etcd_mvcc_db_total_size_in_use_in_bytes", "Total size of the underlying database logically in use in bytes.", func() float64 {
			return float64(dbSize(m, true))
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "troupe_actor_restarts_total", Help: "Restarts of an actor by its supervisor.",
			ConstLabels: prometheus.Labels{"actor": "core"},
		}, func() float64 { return float64(state.Restarts()) }),
	)
	return reg
}

// Handler serves the registry of m in Prometheus' text format.
func Handler(m Member) http.Handler {
	return promhttp.HandlerFor(Registry(m), promhttp.HandlerOpts{})
}

func dbSize(m Member, inUse bool) int64 {
	st := m.Store()
	if st == nil {
		return 0
	}
	total, used := st.DBSize()
	if inUse {
		return used
	}
	return total
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// versionGauges are etcd's "which version is running" gauges: 1, with the
// version as a label.
func versionGauges() []prometheus.Collector {
	one := func(name, help, label, value string) prometheus.Collector {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: prometheus.Labels{label: value}})
		g.Set(1)
		return g
	}
	return []prometheus.Collector{
		one("etcd_server_version", "Which version is running. 1 for 'server_version' label with current version.",
			"server_version", etcdversion.Server),
		one("etcd_cluster_version", "Which version is running. 1 for 'cluster_version' label with current cluster version",
			"cluster_version", etcdversion.API),
		one("etcd_server_go_version", "Which Go version server is running with. 1 for 'server_go_version' label with current version.",
			"server_go_version", runtime.Version()),
	}
}
