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
		info.Metadata["partition"] != "0" || info.Metadata["owner"] == "" || info.Metadata["domains"] != "wallet,transfer,item,order" {
		t.Fatalf("$SRV.INFO: %+v", info)
	}
	if len(info.Endpoints) != 1 {
		t.Fatalf("endpoints: %+v", info.Endpoints)
	}
	ep := info.Endpoints[0]
	if ep.Name != "commands" || ep.Subject != bus.CommandSubjects || ep.QueueGroup != bus.WriterService ||
		ep.Metadata["actions"] != "wallet.open,wallet.credit,wallet.debit,wallet.update,wallet.freeze,wallet.unfreeze,wallet.close,wallet.hold,wallet.capture,wallet.void,wallet.transfer_in,wallet.transfer_out,wallet.reverse,transfer.request,transfer.record,transfer.reverse,item.add,item.update,item.restock,item.reserve,item.release,item.sell,order.place,order.record" {
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
	// Commands the writer refuses before deciding count as errors.
	for _, c := range []struct {
		subject, data string
		code          bus.Code
	}{
		{bus.CommandSubject("wallet", "not-a-ksuid", "credit"), `{"command_id":"c1","data":{"amount":5}}`, bus.CodeInvalidWalletID},
		{bus.CommandSubject("nowhere", w, "credit"), `{"command_id":"c2","data":{"amount":5}}`, bus.CodeNotFound},
		{bus.CommandSubject("wallet", w, "steal"), `{"command_id":"c3","data":{"amount":5}}`, bus.CodeNotFound},
		{bus.CommandSubject("wallet", w, "credit"), `{"command_id":"c4","data":{"amount":0}}`, bus.CodeInvalidAmount},
		{bus.CommandSubject("wallet", w, "credit"), `{"command_id":"c5","data":{"amount":5,"x":1}}`, bus.CodeInvalidBody},
		{bus.CommandSubject("wallet", w, "credit"), `{"data":{"amount":5}}`, bus.CodeInvalidBody},
	} {
		msg, err := nc.Request(c.subject, []byte(c.data), 5*time.Second)
		if err != nil || msg.Header.Get(micro.ErrorCodeHeader) != string(c.code) {
			t.Fatalf("%s %s: %v %v, want %s", c.subject, c.data, msg, err, c.code)
		}
	}
	var after micro.Stats
	ask(micro.StatsVerb, &after)
	if len(before.Endpoints) != 1 || len(after.Endpoints) != 1 {
		t.Fatalf("stats endpoints: %+v / %+v", before.Endpoints, after.Endpoints)
	}
	b, a := before.Endpoints[0], after.Endpoints[0]
	if a.NumRequests-b.NumRequests != 9 || a.NumErrors-b.NumErrors != 6 || a.LastError == "" {
		t.Fatalf("$SRV.STATS moved from %+v to %+v; want 9 more requests, 6 more errors", b, a)
	}
}
