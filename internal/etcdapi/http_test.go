package etcdapi

import (
	"net/http/httptest"
	"testing"

	"github.com/troupedb/troupe/internal/memberview"
)

// TestHealthWithoutLeader: etcd 3.4 answers 503 {"health":"false"} while
// no leader is known.
func TestHealthWithoutLeader(t *testing.T) {
	state := memberview.New(memberview.Member{ID: 1}, 1)
	rec := httptest.NewRecorder()
	healthHandler(state, nil).ServeHTTP(rec, httptest.NewRequest("GET", "/health", nil))
	if rec.Code != 503 || rec.Body.String() != `{"health":"false"}`+"\n" {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
}
