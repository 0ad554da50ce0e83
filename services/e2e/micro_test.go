package e2e

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
)

// TestMicroServiceDescribesTheWriter asks the writer what `nats micro info`
// and `nats micro stats` ask: $SRV.INFO and $SRV.STATS.
func TestMicroServiceDescribesTheWriter(t *testing.T) {
	s := startStack(t)
	nc := s.nats.Connect(t)
	ask := func(verb micro.Verb, v any) {
		t.Helper()
		subj, err := micro.ControlSubject(verb, bus.WriterService, "")
		if err != nil {
			t.Fatal(err)
		}
		msg, err := nc.Request(subj, nil, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", subj, err)
		}
		if err := json.Unmarshal(msg.Data, v); err != nil {
			t.Fatalf("%s: %s: %v", subj, msg.Data, err)
		}
	}

	var info micro.Info
	ask(micro.InfoVerb, &info)
	if info.Name != bus.WriterService || info.Version == "" || info.Description == "" ||
		info.Metadata["partition"] != "0" || info.Metadata["owner"] == "" {
		t.Fatalf("$SRV.INFO: %+v", info)
	}
	if len(info.Endpoints) != 1 {
		t.Fatalf("endpoints: %+v", info.Endpoints)
	}
	ep := info.Endpoints[0]
	if ep.Name != "commands" || ep.Subject != bus.CommandSubjects || ep.QueueGroup != bus.WriterService ||
		ep.Metadata["actions"] != "credit,debit" {
		t.Fatalf("the commands endpoint: %+v", ep)
	}

	var before micro.Stats
	ask(micro.StatsVerb, &before)
	w := ksuid.New().String()
	for range 3 {
		if st, body := post(s, w, "credit", 10); st != 200 {
			t.Fatalf("credit: %d %s", st, body)
		}
	}
	// A command the writer refuses before deciding counts as an error.
	if msg, err := nc.Request(bus.CommandSubject("not-a-ksuid", "credit"), []byte(`{}`), 5*time.Second); err != nil || msg.Header.Get(micro.ErrorCodeHeader) != string(bus.CodeInvalidWalletID) {
		t.Fatalf("a command for a bad wallet id: %v %v", msg, err)
	}
	var after micro.Stats
	ask(micro.StatsVerb, &after)
	if len(before.Endpoints) != 1 || len(after.Endpoints) != 1 {
		t.Fatalf("stats endpoints: %+v / %+v", before.Endpoints, after.Endpoints)
	}
	b, a := before.Endpoints[0], after.Endpoints[0]
	if a.NumRequests-b.NumRequests != 4 || a.NumErrors-b.NumErrors != 1 || a.LastError == "" {
		t.Fatalf("$SRV.STATS moved from %+v to %+v; want 4 more requests, 1 more error", b, a)
	}
}
