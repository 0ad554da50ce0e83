package bus_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/natstest"
	"coffer/pkg/wallet"
)

// TestPartitionOfAgreesWithTheServer sends commands for many wallets
// through a real server's partition mapping and checks that each lands on
// the partition PartitionOf predicts, and that ParseCommandSubject reads
// the mapped subject back.
func TestPartitionOfAgreesWithTheServer(t *testing.T) {
	const n = 4
	srv := natstest.Start(t)
	srv.Map(t, bus.CommandSubjects, mappingTo(n))
	nc := srv.Connect(t)
	sub, err := nc.SubscribeSync("cmd.part.>")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	for range 400 {
		id := ksuid.New().String()
		if err := nc.Publish(bus.CommandSubject(id, wallet.Debit), nil); err != nil {
			t.Fatal(err)
		}
		msg, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		want := bus.PartitionOf(id, n)
		if msg.Subject != "cmd.part."+strconv.Itoa(want)+"."+id+".debit" {
			t.Fatalf("wallet %s: the server mapped to %s, PartitionOf says %d", id, msg.Subject, want)
		}
		gotID, action, err := bus.ParseCommandSubject(msg.Subject)
		if err != nil || gotID != id || action != wallet.Debit {
			t.Fatalf("ParseCommandSubject(%s) = %s %s %v", msg.Subject, gotID, action, err)
		}
		seen[want]++
	}
	if len(seen) != n {
		t.Fatalf("400 wallets fell into %d of %d partitions: %v", len(seen), n, seen)
	}
}

func mappingTo(n int) string { _, to := bus.PartitionMapping(n); return to }

func TestPartitionSubjects(t *testing.T) {
	if got := bus.PartitionSubjects(0, 1); got != bus.CommandSubjects {
		t.Fatalf("one partition serves %q, want %q", got, bus.CommandSubjects)
	}
	if got := bus.PartitionSubjects(3, 4); got != "cmd.part.3.*.*" {
		t.Fatalf("partition 3 of 4 serves %q", got)
	}
	for _, bad := range []string{"cmd.part.x.id.credit", "cmd.part.1.id", "cmd.parts.1.id.credit"} {
		if _, _, err := bus.ParseCommandSubject(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ParseCommandSubject(%q) = %v, want an error naming it", bad, err)
		}
	}
}
