package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/e2e/e2etest"
	"github.com/troupedb/troupe/internal/bench"
	"github.com/troupedb/troupe/internal/polltest"
)

// BenchmarkNullKV is the floor of the put, linearizable get and txn-put
// rows: the same loads as BenchmarkPut, BenchmarkRange and BenchmarkTxnPut
// against e2e/nullkv, a process that answers etcd's KV service with canned
// responses behind troupe's gRPC server options and listener (no store,
// no raft). Its server-cpu-us/op is what gRPC, HTTP/2 and protobuf alone
// cost a server on this machine; troupe's CPU per op minus it is troupe's
// own work. interceptors=on adds the metrics and recovery interceptors a
// member runs. Run it next to the rows it is the floor of, for example
//
//	go test -c -o /tmp/e2e.test ./e2e && cd e2e
//	/tmp/e2e.test -test.run '^$' -test.bench 'BenchmarkNullKV/interceptors=off' -test.benchtime 20000x
//	/tmp/e2e.test -test.run '^$' -test.bench 'BenchmarkPut/server=(troupe|etcd)/clients=256/tls=off' -test.benchtime 20000x
func BenchmarkNullKV(b *testing.B) {
	bin := buildNullKV(b)
	for _, icpt := range []string{"off", "on"} {
		b.Run("interceptors="+icpt, func(b *testing.B) {
			pid, ep := startNullKV(b, bin, icpt == "on")
			for _, load := range []struct {
				name    string
				clients int
				run     func(b *testing.B, clis []*clientv3.Client, pid int)
			}{
				{"put/clients=256", 256, func(b *testing.B, clis []*clientv3.Client, pid int) { putLoad(b, clis, 0, []int{pid}) }},
				{"put/clients=1", 1, func(b *testing.B, clis []*clientv3.Client, pid int) { putLoad(b, clis, 0, []int{pid}) }},
				{"range/clients=256", 256, nullRange},
				{"txn-put/clients=64", 64, nullTxnPut},
			} {
				b.Run(load.name, func(b *testing.B) {
					clis := make([]*clientv3.Client, load.clients)
					for i := range clis {
						clis[i] = nullClient(b, ep)
					}
					load.run(b, clis, pid)
				})
			}
		})
	}
}

func nullRange(b *testing.B, clis []*clientv3.Client, pid int) {
	opLoad(b, clis, []int{pid}, "get", func(c context.Context, cli *clientv3.Client, i int64) error {
		resp, err := cli.Get(c, fmt.Sprintf("range/0/%04d", i%1000))
		if err == nil && len(resp.Kvs) != 1 {
			err = fmt.Errorf("get of key %d: %d kvs, want 1", i%1000, len(resp.Kvs))
		}
		return err
	})
}

func nullTxnPut(b *testing.B, clis []*clientv3.Client, pid int) {
	value := strings.Repeat("v", 256)
	opLoad(b, clis, []int{pid}, "txn", func(c context.Context, cli *clientv3.Client, i int64) error {
		resp, err := cli.Txn(c).Then(clientv3.OpPut(fmt.Sprintf("txn/0/%010d", i), value)).Commit()
		if err == nil && !resp.Succeeded {
			err = fmt.Errorf("txn %d did not succeed", i)
		}
		return err
	})
}

// buildNullKV builds e2e/nullkv into the benchmark's temporary directory.
func buildNullKV(b *testing.B) string {
	root, err := e2etest.ModuleRoot()
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(b.TempDir(), "nullkv")
	cmd := exec.Command("go", "build", "-o", bin, "./e2e/nullkv")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build ./e2e/nullkv: %v\n%s", err, out)
	}
	return bin
}

// startNullKV starts bin on a free port of 127.0.0.1, waits until it
// answers, and stops it when b ends. It returns the process id and the
// endpoint.
func startNullKV(b *testing.B, bin string, interceptors bool) (int, string) {
	ports, err := bench.FreePorts(1)
	if err != nil {
		b.Fatal(err)
	}
	ep := fmt.Sprintf("127.0.0.1:%d", ports[0])
	cmd := exec.Command(bin, "--listen-client-urls", "http://"+ep, fmt.Sprintf("--interceptors=%t", interceptors))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	b.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	cli := nullClient(b, ep)
	polltest.Eventually(b, 10*time.Second, "nullkv answers Status", func() (bool, string) {
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := cli.Status(c, ep); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	return cmd.Process.Pid, ep
}

func nullClient(b *testing.B, ep string) *clientv3.Client {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cli.Close() })
	return cli
}
