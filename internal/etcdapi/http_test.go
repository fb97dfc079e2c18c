package etcdapi

import (
	"net/http"
	"net/http/httptest"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/persistence/alarm"
)

// TestHealthChecksFailing: the answers of etcd 3.6.8 when a check fails
// before any read is made: an alarm (unless excluded), no leader, a
// CORRUPT alarm for /readyz/data_corruption, a learner for
// /readyz/non_learner; and the methods refused.
func TestHealthChecksFailing(t *testing.T) {
	state := memberview.New(memberview.Member{ID: 1}, 1)
	mux := http.NewServeMux()
	handleHealth(mux, newProber(state, nil))
	get := func(method, path string) (int, string) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec.Code, rec.Body.String()
	}
	for _, tc := range []struct {
		alarms  []alarm.Alarm
		learner bool
		path    string
		code    int
		body    string
	}{
		{path: "/health", code: 503, body: `{"health":"false","reason":"RAFT NO LEADER"}` + "\n"},
		{path: "/readyz/non_learner", code: 200, body: "ok\n"},
		{path: "/readyz/non_learner?verbose", learner: true, code: 503, body: "[-]non_learner failed: not supported for learner\n\n"},
		{path: "/readyz/data_corruption?verbose", code: 200, body: "[+]data_corruption ok\nok\n"},
		{
			path: "/health", alarms: []alarm.Alarm{{MemberID: 2, Type: pb.AlarmType_NOSPACE}},
			code: 503, body: `{"health":"false","reason":"ALARM NOSPACE"}` + "\n",
		},
		{
			path: "/health?exclude=NOSPACE", alarms: []alarm.Alarm{{MemberID: 2, Type: pb.AlarmType_NOSPACE}},
			code: 503, body: `{"health":"false","reason":"RAFT NO LEADER"}` + "\n",
		},
		{
			path: "/health?exclude=NOSPACE", alarms: []alarm.Alarm{{MemberID: 2, Type: pb.AlarmType_NOSPACE}, {MemberID: 1, Type: pb.AlarmType_CORRUPT}},
			code: 503, body: `{"health":"false","reason":"ALARM CORRUPT"}` + "\n",
		},
		{
			path: "/readyz/data_corruption", alarms: []alarm.Alarm{{MemberID: 1, Type: pb.AlarmType_CORRUPT}},
			code: 503, body: "[-]data_corruption failed: alarm activated: CORRUPT\n\n",
		},
	} {
		state.SetAlarms(alarm.NewSet(tc.alarms))
		state.SetLearner(tc.learner)
		if code, body := get("GET", tc.path); code != tc.code || body != tc.body {
			t.Errorf("GET %s with alarms %v, learner %v: %d %q, want %d %q", tc.path, tc.alarms, tc.learner, code, body, tc.code, tc.body)
		}
	}
	for _, path := range []string{"/health", "/livez", "/readyz", "/readyz/non_learner"} {
		if code, body := get("POST", path); code != 405 || body != "Method Not Allowed\n" {
			t.Errorf("POST %s: %d %q", path, code, body)
		}
	}
	if code, _ := get("GET", "/readyz/nope"); code != 404 {
		t.Errorf("GET /readyz/nope: %d, want 404", code)
	}
}
