package e2e

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"github.com/nats-io/nats.go"

	"coffer/pkg/bus"
	"coffer/pkg/httpapi"
	"coffer/pkg/wallet"
)

// Without an Idempotency-Key, the command id wallet_server makes still keeps
// a retried command from being applied twice.
func TestCommandIDProtectsRetries(t *testing.T) {
	s := startStack(t)
	client := bus.NewClient(s.nats.Connect(t), 5*time.Second, nil)
	id := ksuid.New().String()
	cmd := bus.Command{CommandID: ksuid.New().String(), Data: wallet.EncodeCommandData(9)}
	first, replayed1, err := client.Send(t.Context(), wallet.Name, id, string(wallet.Credit), cmd)
	if err != nil || first.Error != nil || replayed1 {
		t.Fatalf("first send: %+v %v %v", first, replayed1, err)
	}
	again, replayed2, err := client.Send(t.Context(), wallet.Name, id, string(wallet.Credit), cmd)
	if err != nil || !replayed2 || string(again.Result) != string(first.Result) {
		t.Fatalf("retry: %s replayed=%v %v", again.Result, replayed2, err)
	}
	if n := queryInt(t, s.writerDB(), `SELECT COUNT(*) FROM events WHERE domain = 'wallet' AND stream_id = ?`, id); n != 1 {
		t.Fatalf("%d events for one command sent twice", n)
	}
}

func TestNoWriterIs503AtOnce(t *testing.T) {
	s := startStack(t)
	s.stop("wallet_writer")
	start := time.Now()
	st, h, body := s.do("POST", "/wallet/"+ksuid.New().String()+"/credit", `{"amount": 1}`, nil)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("no-writer answer took %s", took)
	}
	if st != http.StatusServiceUnavailable || decode[httpapi.Problem](t, body).Code != bus.CodeWriterUnavailable || h.Get("Retry-After") == "" {
		t.Fatalf("no writer: %d %v %s", st, h, body)
	}
	if st, _, _ := s.do("GET", "/readyz", "", nil); st != http.StatusServiceUnavailable {
		t.Fatalf("readyz without a writer: %d", st)
	}
}

func TestSilentWriterIs504(t *testing.T) {
	s := startStack(t)
	s.stop("wallet_writer")
	// Something that takes commands and never answers: a stuck writer.
	nc := s.nats.Connect(t)
	if _, err := nc.QueueSubscribe(bus.CommandSubjects, bus.WriterService, func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	base := s.baseURL(s.startWith("wallet_server#slow", map[string]string{"WRITE_TIMEOUT": "300ms"}))
	s.base = base
	start := time.Now()
	st, _, body := s.do("POST", "/wallet/"+ksuid.New().String()+"/credit", `{"amount": 1}`, map[string]string{"Idempotency-Key": "k"})
	took := time.Since(start)
	if st != http.StatusGatewayTimeout || decode[httpapi.Problem](t, body).Code != bus.CodeWriterTimeout {
		t.Fatalf("silent writer: %d %s", st, body)
	}
	if took < 300*time.Millisecond || took > 3*time.Second {
		t.Fatalf("504 after %s with WRITE_TIMEOUT=300ms", took)
	}
}

// A full writer queue refuses with 503 overloaded and Retry-After; what it
// accepted is applied exactly once.
func TestFullQueueIs503(t *testing.T) {
	s := startStack(t)
	s.stop("wallet_writer")
	s.startWith("wallet_writer#tiny", map[string]string{"WRITER_QUEUE_SIZE": "1", "WRITER_MAX_BATCH": "1"})
	s.waitReady()
	id := ksuid.New().String()
	const n = 200
	var mu sync.Mutex
	var ok, overloaded int
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			st, h, body, err := s.request("POST", "/wallet/"+id+"/credit", `{"amount": 1}`, nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Error(err)
			case st == 200:
				ok++
			case st == 503 && decodeQuiet[httpapi.Problem](body).Code == bus.CodeOverloaded && h.Get("Retry-After") != "":
				overloaded++
			default:
				t.Errorf("%d %s", st, body)
			}
		})
	}
	wg.Wait()
	if overloaded == 0 {
		t.Fatalf("%d concurrent credits into a queue of 1 were never refused", n)
	}
	_, _, body := s.do("GET", "/wallet/"+id+"/balance", "", nil)
	if b := decode[result](t, body).Balance; b != int64(ok) {
		t.Fatalf("balance %d after %d accepted credits of 1 (%d refused)", b, ok, overloaded)
	}
	t.Logf("%d applied, %d refused as overloaded", ok, overloaded)
}
