package faults

import (
	"fmt"
	"os/exec"
	"testing"
	"time"
)

// TestRedisCluster runs the read model on a three-primary Redis Cluster
// under load: every script touches one slot, reads follow the keys to their
// nodes, and after the whole cluster is flushed the writer projects every
// wallet again across the nodes. The invariants hold throughout.
func TestRedisCluster(t *testing.T) {
	c := newClusterWith(t, nil, clusterOpts{redisCluster: true})
	l := startLoad(c, 8, 40)
	time.Sleep(2 * time.Second)
	for _, n := range redisNodes {
		if out, err := exec.Command("redis-cli", "-p", fmt.Sprint(c.ports[n]), "FLUSHALL").CombinedOutput(); err != nil {
			t.Fatalf("FLUSHALL on %s: %v %s", n, err, out)
		}
	}
	flushed := time.Now()
	eventually(t, 30*time.Second, "reads answered again", func() bool { return readable(c, l.wallets[0]) })
	healed := time.Since(flushed)
	time.Sleep(time.Second)
	ops := l.finish(t)
	keys := 0
	for _, n := range redisNodes {
		out, _ := exec.Command("redis-cli", "-p", fmt.Sprint(c.ports[n]), "DBSIZE").Output()
		var k int
		fmt.Sscan(string(out), &k) //nolint:errcheck // a bad count fails below
		if k == 0 {
			t.Errorf("%s holds no keys: the read model is not spread over the cluster", n)
		}
		keys += k
	}
	t.Logf("Redis Cluster of 3 primaries: %d keys over the nodes; reads answered again %s after FLUSHALL on every node",
		keys, healed.Round(time.Millisecond))
	checkInvariants(t, c, ops)
}
