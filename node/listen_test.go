package node

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/troupedb/troupe/actors/listeners"
)

// A taken client or metrics port fails Start before anything else starts,
// as etcd binds its listeners first: no WAL is written and the peer port,
// the other client port and the metrics port are free again.
func TestStartOnTakenPortFailsFirst(t *testing.T) {
	for _, which := range []string{"client", "metrics"} {
		t.Run(which, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			cfg := testConfig(t, dir)
			free, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", freePort(t)))
			held, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()
			taken, _ := url.Parse("http://" + held.Addr().String())
			if which == "client" {
				cfg.ListenClientURLs = []url.URL{*free, *taken}
			} else {
				cfg.ListenMetricsURLs = []url.URL{*free, *taken}
			}
			n, err := Start(cfg)
			if err == nil {
				n.Stop()
				t.Fatalf("started with %s port %s taken", which, taken.Host)
			}
			var le *listeners.ListenError
			if !errors.As(err, &le) || le.URL != taken.String() || !strings.Contains(err.Error(), "fix:") {
				t.Fatalf("error %v, want a ListenError naming %s and the fix", err, taken)
			}
			if _, err := os.Stat(cfg.WALPath()); !os.IsNotExist(err) {
				t.Fatalf("WAL %s after a failed bind: %v", cfg.WALPath(), err)
			}
			for _, u := range []url.URL{*free, cfg.ListenClientURLs[0], cfg.ListenPeerURLs[0]} {
				l, err := net.Listen("tcp", u.Host)
				if err != nil {
					t.Fatalf("%s still bound after the failed start: %v", u.Host, err)
				}
				l.Close()
			}
		})
	}
}
