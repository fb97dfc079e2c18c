package e2e

import (
	"strings"
	"testing"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// TestInitialElectionTickAdvanceAsEtcd starts three-member clusters of
// etcd 3.6.8 and troupe with --initial-election-tick-advance on (the
// default) and off: with it, each member fast-forwards its ticks once its
// peers answer, and logs it as etcd does; without it, each says it skips.
func TestInitialElectionTickAdvanceAsEtcd(t *testing.T) {
	for _, kind := range []string{e2etest.Etcd, e2etest.Troupe} {
		for _, advance := range []bool{true, false} {
			name := kind + "/advance"
			args := []string{}
			if !advance {
				name = kind + "/skip"
				args = []string{"--initial-election-tick-advance=false"}
			}
			t.Run(name, func(t *testing.T) {
				c := e2etest.StartCluster(t, e2etest.ClusterConfig{Kind: kind, Args: args})
				want, not := "initialized peer connections; fast-forwarding election ticks", "skipping initial election tick advance"
				if !advance {
					want, not = not, want
				}
				advanced := 0
				for i := range c.Size() {
					log := c.Log(i)
					if strings.Contains(log, not) {
						t.Errorf("member %d logged %q", i, not)
					}
					if strings.Contains(log, want) {
						advanced++
					}
				}
				// With the advance, a member that heard from the leader
				// before both peers answered may not log it (etcd's too);
				// the first ones always do.
				if advanced == 0 || (!advance && advanced != c.Size()) {
					t.Errorf("%d of %d members logged %q", advanced, c.Size(), want)
				}
			})
		}
	}
}
