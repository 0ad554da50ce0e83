package faults

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"coffer/pkg/bus"
)

// TestNATSClusterNodeKill runs the suite on three clustered nats-servers,
// the EVENTS stream and the lease bucket with three replicas, and kill -9s
// the node leading the EVENTS stream under load: the services reconnect to
// the others, no acknowledged write is lost, and the history is complete.
func TestNATSClusterNodeKill(t *testing.T) {
	c := newClusterWith(t, map[string]string{"NATS_REPLICAS": "3"}, clusterOpts{natsCluster: true})
	l := startLoad(c, 8, 20)
	time.Sleep(1500 * time.Millisecond)

	info := streamInfo(t, c)
	if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("EVENTS: %d replicas configured, cluster %+v", info.Config.Replicas, info.Cluster)
	}
	leader := info.Cluster.Leader
	if !strings.HasPrefix(leader, "nats-") {
		t.Fatalf("EVENTS leader %q is not one of our nodes", leader)
	}
	killed := time.Now()
	c.kill(leader, syscall.SIGKILL)
	took := l.waitProgress(t, killed, 60*time.Second)
	time.Sleep(3 * time.Second) // load against the two survivors
	after := streamInfo(t, c)
	ops := l.finish(t)
	t.Logf("kill -9 of %s (the EVENTS leader): first answer %s later; new leader %s; %d retries of 503/504/errors",
		leader, took.Round(time.Millisecond), after.Cluster.Leader, l.transient.Load())
	checkInvariants(t, c, ops)
}

// streamInfo asks the cluster about the EVENTS stream.
func streamInfo(t *testing.T, c *cluster) *jetstream.StreamInfo {
	t.Helper()
	var urls []string
	for _, kv := range c.env() {
		if u, ok := strings.CutPrefix(kv, "NATS_URL="); ok {
			urls = append(urls, u)
		}
	}
	nc, err := nats.Connect(urls[len(urls)-1])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var info *jetstream.StreamInfo
	eventually(t, 30*time.Second, "EVENTS stream info", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, bus.EventsStream)
		if err != nil {
			return false
		}
		info, err = s.Info(ctx)
		return err == nil && info.Cluster != nil && info.Cluster.Leader != ""
	})
	return info
}
