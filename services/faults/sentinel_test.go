package faults

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestRedisFailoverByHand runs the read model on a Redis primary with a
// replica and a Sentinel, the writer requiring one replica to acknowledge
// every push (REDIS_MIN_REPLICAS=1), and fails the primary over to the
// replica by hand (SENTINEL FAILOVER) under load. The services follow the
// new primary through the Sentinel; no acknowledged state is missing from
// it; reads agree with the log.
func TestRedisFailoverByHand(t *testing.T) {
	c := newClusterWith(t, map[string]string{"REDIS_MIN_REPLICAS": "1"}, clusterOpts{redisSentinel: true})
	sentinel := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("redis-cli", append([]string{"-p", fmt.Sprint(c.ports["redis-sentinel"])}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cli %v: %v %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	primary := func() string { return strings.Fields(sentinel("SENTINEL", "get-master-addr-by-name", "coffer"))[1] }
	if got := primary(); got != fmt.Sprint(c.ports["redis"]) {
		t.Fatalf("the Sentinel's primary is on port %s, want %d", got, c.ports["redis"])
	}
	l := startLoad(c, 8, 20)
	time.Sleep(1500 * time.Millisecond)

	start := time.Now()
	if out := sentinel("SENTINEL", "FAILOVER", "coffer"); out != "OK" {
		t.Fatalf("SENTINEL FAILOVER: %s", out)
	}
	eventually(t, 30*time.Second, "the replica promoted", func() bool { return primary() == fmt.Sprint(c.ports["redis-replica"]) })
	promoted := time.Since(start)
	took := l.waitProgress(t, start, 30*time.Second)
	time.Sleep(3 * time.Second) // load against the new primary
	ops := l.finish(t)
	t.Logf("SENTINEL FAILOVER under load: replica promoted in %s, first answer %s after the command; %d retries of 503/504/errors",
		promoted.Round(time.Millisecond), took.Round(time.Millisecond), l.transient.Load())
	checkInvariants(t, c, ops)
}
