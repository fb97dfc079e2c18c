// Package metrics holds the Prometheus collectors of a troupe process,
// named and shaped as etcd 3.6's so its dashboards and alerts work
// unchanged, plus troupe's own (troupe_*).
//
// Events are counted where they happen (the WAL's fsync, raft's leader
// changes, gRPC calls) into the package-level collectors below; figures a
// member already keeps (leader, applied index, db size, restarts) are read
// from its raftclient.Client when scraped, see Handler.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// etcdDiskBuckets are etcd's buckets for disk latencies: 1ms to ~8s,
// doubling.
var etcdDiskBuckets = prometheus.ExponentialBuckets(0.001, 2, 14)

var (
	// WALFsyncSeconds is the duration of each synced WAL write.
	WALFsyncSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "disk", Name: "wal_fsync_duration_seconds",
		Help:    "The latency distributions of fsync called by WAL.",
		Buckets: etcdDiskBuckets,
	})
	// BackendCommitSeconds is the duration of each bbolt commit.
	BackendCommitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "disk", Name: "backend_commit_duration_seconds",
		Help:    "The latency distributions of commit called by backend.",
		Buckets: etcdDiskBuckets,
	})
	// LeaderChanges counts the leaders this member has seen take over.
	LeaderChanges = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "leader_changes_seen_total",
		Help: "The number of leader changes seen.",
	})
	// ProposalsFailed counts proposals that ended without being applied.
	ProposalsFailed = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "proposals_failed_total",
		Help: "The total number of failed proposals seen.",
	})
	// PeerRoundTripSeconds is the round trip of each answered probe of a
	// peer, by the peer's member id in hex (etcd's "To" label).
	PeerRoundTripSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "network", Name: "peer_round_trip_time_seconds",
		Help:    "Round-Trip-Time histogram between peers",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
	}, []string{"To"})
	// healthSuccess and healthFailed count /health answers, healthCheck*
	// each check of /livez and /readyz, see CountHealth and CountCheck.
	healthSuccess = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "health_success",
		Help: "The total number of successful health checks",
	})
	healthFailed = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "health_failures",
		Help: "The total number of failed health checks",
	})
	healthCheckGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "etcd", Subsystem: "server", Name: "healthcheck",
		Help: "The result of each kind of healthcheck.",
	}, []string{"type", "name"})
	healthCheckCounter = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "healthchecks_total",
		Help: "The total number of each kind of healthcheck.",
	}, []string{"type", "name", "status"})
	// grpcHandled counts finished RPCs, see the interceptors in grpc.go.
	grpcHandled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "grpc", Subsystem: "server", Name: "handled_total",
		Help: "Total number of RPCs completed on the server, regardless of success or failure.",
	}, []string{"grpc_type", "grpc_service", "grpc_method", "grpc_code"})
)

// ObserveWALSync records the duration since start of a WAL write that
// was synced; unsynced writes are not fsyncs and are not recorded. Meant
// to be deferred: defer metrics.ObserveWALSync(sync, time.Now()).
func ObserveWALSync(sync bool, start time.Time) {
	if sync {
		WALFsyncSeconds.Observe(time.Since(start).Seconds())
	}
}

// ObserveBackendCommit records the duration since start of a bbolt
// commit. Meant to be deferred.
func ObserveBackendCommit(start time.Time) {
	BackendCommitSeconds.Observe(time.Since(start).Seconds())
}

// CountLeaderChange counts a change of leader to lead; a lost leader
// (lead 0) is not a change, as in etcd.
func CountLeaderChange(lead uint64) {
	if lead != 0 {
		LeaderChanges.Inc()
	}
}

// CountHealth counts one /health answer.
func CountHealth(ok bool) {
	if ok {
		healthSuccess.Inc()
	} else {
		healthFailed.Inc()
	}
}

// CountCheck records one run of check name of /livez or /readyz (kind),
// as etcd: a gauge of the last result (1 passed) and a counter by status
// ("success" or "error").
func CountCheck(kind, name string, ok bool) {
	val, st := 0.0, "error"
	if ok {
		val, st = 1, "success"
	}
	healthCheckGauge.WithLabelValues(kind, name).Set(val)
	healthCheckCounter.WithLabelValues(kind, name, st).Inc()
}
