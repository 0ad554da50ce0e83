package faults

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"coffer/pkg/bus"
)

// TestPartitionedWriters runs two writer processes, each owning two of four
// partitions, behind the NATS server's partition mapping, under concurrent
// load. Then one writer stops and a new process takes its partitions and
// files, and the load carries on. Every wallet's events must be in exactly
// one log, its partition's, and the usual invariants hold across all four.
func TestPartitionedWriters(t *testing.T) {
	const n = 4
	c := newClusterWith(t, map[string]string{"PARTITION_COUNT": fmt.Sprint(n)}, clusterOpts{
		natsConf: bus.PartitionConfig(n), // as run.sh writes it
		writers: map[string]map[string]string{
			"wallet_writer#a": {"WRITER_PARTITIONS": "0,1"},
			"wallet_writer#b": {"WRITER_PARTITIONS": "2,3"},
		},
		toolEnv: map[string]string{"WRITER_PARTITIONS": "0,1,2,3"},
	})
	l := startLoad(c, 8, 40)
	time.Sleep(1500 * time.Millisecond)

	// b hands its partitions to c: a clean stop releases the leases, c
	// opens the same files and takes over at once.
	stopped := time.Now()
	if code, _ := c.terminate("wallet_writer#b"); code != 0 {
		t.Errorf("wallet_writer#b exited %d", code)
	}
	c.opts.writers["wallet_writer#c"] = map[string]string{"WRITER_PARTITIONS": "2,3"}
	c.start("wallet_writer#c")
	// How long until a wallet of partition 2 is credited again.
	var probe string
	for _, w := range l.wallets {
		if bus.PartitionOf(w, n) == 2 {
			probe = w
			break
		}
	}
	if probe == "" {
		t.Fatal("no wallet of the load in partition 2")
	}
	eventually(t, 30*time.Second, "partition 2 answering again", func() bool {
		st, _, _, err := request(c.base(), "POST", "/wallet/"+probe+"/credit", `{"amount": 1}`, map[string]string{"Idempotency-Key": "probe"})
		return err == nil && st == 200
	})
	took := time.Since(stopped)
	time.Sleep(1500 * time.Millisecond)
	ops := append(l.finish(t), op{key: "probe", wallet: probe, delta: 1, applied: true, recorded: true})

	for _, w := range []string{"wallet_writer#a", "wallet_writer#c"} {
		log := c.log(w)
		if !strings.Contains(log, `"msg":"serving commands"`) {
			t.Fatalf("%s never served:\n%s", w, log)
		}
	}
	if !strings.Contains(c.log("wallet_writer#a"), `"subject":"cmd.part.0.*.*.*"`) || !strings.Contains(c.log("wallet_writer#c"), `"subject":"cmd.part.3.*.*.*"`) {
		t.Fatal("the writers do not serve their partitions' subjects")
	}
	per := map[int]int{}
	for _, o := range ops {
		per[bus.PartitionOf(o.wallet, n)]++
	}
	if len(per) != n {
		t.Fatalf("the load touched %d of %d partitions: %v", len(per), n, per)
	}
	t.Logf("2 writers × 2 of 4 partitions; partition 2 answered again %s after wallet_writer#b was told to stop (wallet_writer#c took partitions 2 and 3 and their files); operations per partition %v", took.Round(time.Millisecond), per)
	checkInvariants(t, c, ops)
	c.kill("wallet_writer#a", syscall.SIGTERM)
}
