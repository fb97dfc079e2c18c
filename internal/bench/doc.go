// Package bench is the load generator behind `troupe bench`: workloads
// against any etcd v3 endpoint through clientv3, latency histograms, the
// report (text, JSON, SVG plot), readings of server processes from /proc,
// and the compare loop that starts two servers side by side.
//
// It knows nothing of troupe's actors: it speaks the etcd v3 API only, so
// the same run measures troupe and etcd alike. Memory per run is bounded:
// latencies go into fixed-size histograms, never a slice per request, and
// the throughput timeline holds one counter per second of the run.
package bench
