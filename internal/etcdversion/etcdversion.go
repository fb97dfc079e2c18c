// Package etcdversion names the etcd release troupe answers as: clients
// (Kubernetes among them, which wants 3.6 from 1.34 on) read these in
// Maintenance.Status, /version and /metrics and choose what they use from
// them, so they are etcd 3.6.8's values, the release troupe's answers are
// compared with.
package etcdversion

const (
	// Server is etcd's server version (Status.Version, /version's
	// etcdserver, etcd_server_version's server_version label).
	Server = "3.6.8"
	// Cluster is the version the cluster agreed on (/version's
	// etcdcluster): etcd sets it to the lowest member's major.minor.0.
	Cluster = "3.6.0"
	// Storage is the version of the backend's schema (/version's storage,
	// Status.StorageVersion).
	Storage = "3.6.0"
	// API is the major.minor of the client API (etcd_cluster_version's
	// cluster_version label, `troupe --version`'s etcd API Version).
	API = "3.6"
)
