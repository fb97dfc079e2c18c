package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	pmodel "github.com/prometheus/common/model"

	"github.com/troupedb/troupe/e2e/e2etest"
)

type httpAnswer struct {
	code        int
	contentType string
	body        string
}

func httpDo(t *testing.T, method, url string) httpAnswer {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx(t), method, url, nil)
	must(t, err)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	return httpAnswer{code: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: string(b)}
}

// TestHTTPEndpointsAsEtcd asks real etcd and the server under test the
// same HTTP requests on their client port (where gRPC is served too) and
// requires the same status, content type and body.
func TestHTTPEndpointsAsEtcd(t *testing.T) {
	sut, _ := startServer(t)
	etcd := e2etest.Start(t, e2etest.Config{Kind: e2etest.Etcd})
	waitStorageVersions(t, etcd, sut)
	for _, r := range []struct{ method, path string }{
		{"GET", "/health"}, {"GET", "/version"}, {"POST", "/health"}, {"GET", "/nope"},
	} {
		want := httpDo(t, r.method, etcd.Endpoint()+r.path)
		got := httpDo(t, r.method, sut.Endpoint()+r.path)
		if got != want {
			t.Errorf("%s %s: etcd answers %+v, %s answers %+v", r.method, r.path, want, sut.Kind(), got)
		}
	}
}

// TestHTTPMetrics checks that /metrics carries etcd's series dashboards
// use, with values that follow the puts made.
func TestHTTPMetrics(t *testing.T) {
	s, cli := startServer(t)
	for i := range 10 {
		_, err := cli.Put(ctx(t), fmt.Sprintf("k%d", i), "v")
		must(t, err)
	}
	_, err := cli.Get(ctx(t), "k0")
	must(t, err)
	fams := scrape(t, s)
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		v, ok := metricValue(fams, name, labels)
		if !ok {
			t.Errorf("no series %s%v", name, labels)
		}
		return v
	}
	checks := []metricCheck{
		{"etcd_server_has_leader", nil, func(v float64) bool { return v == 1 }, "1"},
		{"etcd_server_leader_changes_seen_total", nil, func(v float64) bool { return v >= 1 }, ">= 1"},
		{"etcd_server_proposals_committed_total", nil, func(v float64) bool { return v >= 10 }, ">= 10"},
		{"etcd_server_proposals_applied_total", nil, func(v float64) bool { return v >= 10 }, ">= 10"},
		{"etcd_server_proposals_pending", nil, func(v float64) bool { return v >= 0 }, ">= 0"},
		{"etcd_server_proposals_failed_total", nil, func(v float64) bool { return v >= 0 }, ">= 0"},
		{"etcd_disk_wal_fsync_duration_seconds", nil, func(v float64) bool { return v > 0 }, "count > 0"},
		{"etcd_disk_backend_commit_duration_seconds", nil, func(v float64) bool { return v >= 0 }, "present"},
		{"etcd_mvcc_db_total_size_in_bytes", nil, func(v float64) bool { return v > 0 }, "> 0"},
		{"etcd_server_version", map[string]string{"server_version": "3.6.8"}, func(v float64) bool { return v == 1 }, "1"},
		{"etcd_cluster_version", map[string]string{"cluster_version": "3.6"}, func(v float64) bool { return v == 1 }, "1"},
		{"grpc_server_handled_total", map[string]string{
			"grpc_type": "unary", "grpc_service": "etcdserverpb.KV", "grpc_method": "Put", "grpc_code": "OK",
		}, func(v float64) bool { return v >= 10 }, ">= 10"},
	}
	if s.Kind() == e2etest.Troupe {
		checks = append(checks, metricCheck{"troupe_actor_restarts_total", map[string]string{"actor": "core"}, func(v float64) bool { return v == 0 }, "0"})
		// Every actor kind of a single member has processed messages (at
		// least its Started) and reports its mailbox.
		for _, kind := range []string{"node", "core", "raft", "ticker", "wal", "applier", "snapshotter", "peers", "inbox", "listeners", "actorapi"} {
			labels := map[string]string{"actor": kind}
			checks = append(checks,
				metricCheck{"troupe_actor_messages_processed_total", labels, func(v float64) bool { return v > 0 }, "> 0"},
				metricCheck{"troupe_actor_mailbox_length", labels, func(v float64) bool { return v >= 0 }, ">= 0"})
		}
		for _, kind := range []string{"raft", "wal", "applier"} {
			checks = append(checks, metricCheck{"troupe_actor_messages_processed_total", map[string]string{"actor": kind}, func(v float64) bool { return v >= 10 }, ">= 10 (one per put at least)"})
		}
	}
	for _, c := range checks {
		if v := value(c.name, c.labels); !c.ok(v) {
			t.Errorf("%s%v = %v, want %s", c.name, c.labels, v, c.want)
		}
	}
	if f := fams["etcd_disk_wal_fsync_duration_seconds"]; f != nil {
		b := f.GetMetric()[0].GetHistogram().GetBucket()
		if len(b) < 14 || b[0].GetUpperBound() != 0.001 || b[13].GetUpperBound() != 8.192 {
			t.Errorf("fsync buckets %v, want from etcd's 0.001 .. 8.192", b)
		}
	}
}

type metricCheck struct {
	name   string
	labels map[string]string
	ok     func(float64) bool
	want   string
}

// scrape reads s's /metrics.
func scrape(t *testing.T, s *e2etest.Server) map[string]*dto.MetricFamily {
	t.Helper()
	a := httpDo(t, "GET", s.Endpoint()+"/metrics")
	if a.code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", a.code, a.body)
	}
	parser := expfmt.NewTextParser(pmodel.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(a.body))
	must(t, err)
	return fams
}

// metricValue sums the series of name with labels: gauge and counter
// values, histogram sample counts; ok is false when there is none.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (sum float64, ok bool) {
	f, found := fams[name]
	if !found {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		ok = true
		switch {
		case m.GetGauge() != nil:
			sum += m.GetGauge().GetValue()
		case m.GetCounter() != nil:
			sum += m.GetCounter().GetValue()
		case m.GetHistogram() != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum, ok
}

// TestClusterMetrics: the series that need peers are there on every
// member of a cluster: etcd_network_peer_round_trip_time_seconds per
// other member ("To", its id in hex), and troupe's peer actors.
func TestClusterMetrics(t *testing.T) {
	c := e2etest.StartCluster(t, e2etest.ClusterConfig{Size: 3})
	cli := c.Client(t)
	_, err := cli.Put(ctx(t), "k", "v")
	must(t, err)
	for i, m := range c.Members() {
		deadline := time.Now().Add(15 * time.Second)
		for {
			fams := scrape(t, m)
			n := 0
			if f := fams["etcd_network_peer_round_trip_time_seconds"]; f != nil {
				for _, s := range f.GetMetric() {
					if s.GetHistogram().GetSampleCount() > 0 && hasLabelName(s, "To") {
						n++
					}
				}
			}
			missing := n < 2
			if c.Kind() == e2etest.Troupe {
				if v, _ := metricValue(fams, "troupe_actor_messages_processed_total", map[string]string{"actor": "peer"}); v == 0 {
					missing = true
				}
			}
			if !missing {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("member %d: round trip times to %d peers after 15 s, want 2 (and troupe's peer actors counted)", i, n)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
}

func hasLabelName(m *dto.Metric, name string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() != "" {
			return true
		}
	}
	return false
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
			n++
		}
	}
	return n == len(want)
}

// TestMetricsURL: --listen-metrics-urls serves /metrics and /health, as
// etcd's metrics listener does.
func TestMetricsURL(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	e2etest.Start(t, e2etest.Config{Kind: e2etest.Troupe, Args: []string{"--listen-metrics-urls", "http://" + addr}})
	for _, path := range []string{"/metrics", "/health"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
	}
}
