package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// TestQuotaNoSpace fills a small --quota-backend-bytes: writes then fail
// with etcd's ErrGRPCNoSpace (code and message), and reads still work.
func TestQuotaNoSpace(t *testing.T) {
	s := e2etest.Start(t, e2etest.Config{Args: []string{"--quota-backend-bytes", "1048576"}})
	cli := s.Client(t)
	value := strings.Repeat("q", 16<<10)
	var nospace error
	var last string
	for i := 0; i < 400 && nospace == nil; i++ {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		key := "quota/" + strings.Repeat("k", 3) + string(rune('a'+i%26)) + "/" + time.Now().Format("150405.000000")
		_, err := cli.Put(c, key, value)
		cancel()
		if err != nil {
			nospace = err
			break
		}
		last = key
	}
	if nospace == nil {
		t.Fatal("400 puts of 16 KiB fit in a 1 MiB quota")
	}
	requireErr(t, nospace, rpctypes.ErrGRPCNoSpace)
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(c, last)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("read after NOSPACE: %v %v", resp, err)
	}
}
