package e2e

import (
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/segmentio/ksuid"
)

// scrape fetches a /metrics page and parses it.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s: status %d", url, resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return fams
}

// sample is the value of the series of family name whose labels include
// labels ("k=v" pairs): a counter's or gauge's value, a histogram's count.
// It is NaN when there is no such series.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f, ok := fams[name]
	if !ok {
		return math.NaN()
	}
series:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for _, kv := range labels {
			k, v, _ := strings.Cut(kv, "=")
			if have[k] != v {
				continue series
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return math.NaN()
}

// histogramSum is the sum of a histogram series.
func histogramSum(fams map[string]*dto.MetricFamily, name string) float64 {
	f, ok := fams[name]
	if !ok || len(f.GetMetric()) != 1 || f.GetMetric()[0].Histogram == nil {
		return math.NaN()
	}
	return f.GetMetric()[0].Histogram.GetSampleSum()
}

func wantSample(t *testing.T, fams map[string]*dto.MetricFamily, want float64, name string, labels ...string) {
	t.Helper()
	if got := sample(fams, name, labels...); got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// TestMetrics drives a known mix of requests and checks that every
// service's /metrics counted exactly them.
func TestMetrics(t *testing.T) {
	s := startStack(t)
	writerAdmin, historyAdmin, serverAdmin := s.adminURL("wallet_writer"), s.adminURL("history_writer"), s.adminURL("wallet_server")

	w := ksuid.New().String()
	for range 3 {
		if st, body := post(s, w, "credit", 100); st != 200 {
			t.Fatalf("credit: %d %s", st, body)
		}
	}
	for range 2 {
		st, _, body := s.do("POST", "/wallet/"+w+"/credit", `{"amount": 5}`, map[string]string{"Idempotency-Key": "metrics-1"})
		if st != 200 {
			t.Fatalf("keyed credit: %d %s", st, body)
		}
	}
	if st, body := post(s, w, "debit", 1000); st != 409 {
		t.Fatalf("debit beyond the balance: %d %s", st, body)
	}
	for range 2 {
		if st, _, body := s.do("GET", "/wallet/"+w+"/balance", "", nil); st != 200 {
			t.Fatalf("balance: %d %s", st, body)
		}
	}
	if st, _, _ := s.do("GET", "/no/such/route", "", nil); st != 404 {
		t.Fatalf("unknown route: %d", st)
	}

	// wallet_server: requests by route, method and status; NATS requests.
	api := scrape(t, s.base+"/metrics")
	const httpReqs = "coffer_http_request_duration_seconds"
	wantSample(t, api, 5, httpReqs, "route=/wallet/{id}/credit", "method=POST", "status=200")
	wantSample(t, api, 1, httpReqs, "route=/wallet/{id}/debit", "method=POST", "status=409")
	wantSample(t, api, 2, httpReqs, "route=/wallet/{id}/balance", "method=GET", "status=200")
	wantSample(t, api, 1, httpReqs, "route=unmatched", "method=GET", "status=404")
	wantSample(t, api, 5, "coffer_nats_request_duration_seconds", "action=credit", "outcome=ok")
	wantSample(t, api, 1, "coffer_nats_request_duration_seconds", "action=debit", "outcome=ok")
	if _, ok := scrape(t, serverAdmin+"/metrics")["coffer_http_request_duration_seconds"]; !ok {
		t.Error("wallet_server's admin listener does not serve the same metrics")
	}

	// wallet_writer: commands by outcome, batches, commits, lags.
	wr := scrape(t, writerAdmin+"/metrics")
	const cmds = "coffer_writer_commands_total"
	wantSample(t, wr, 4, cmds, "action=credit", "outcome=applied")
	wantSample(t, wr, 1, cmds, "action=credit", "outcome=replayed")
	wantSample(t, wr, 1, cmds, "action=debit", "outcome=rejected")
	if got := histogramSum(wr, "coffer_writer_batch_commands"); got != 6 {
		t.Errorf("commands over all batches = %v, want 6", got)
	}
	commits := sample(wr, "coffer_writer_commit_duration_seconds")
	if !(commits >= 1 && commits <= 5) {
		t.Errorf("commits = %v, want 1..5 (5 events, the replay adds none)", commits)
	}
	wantSample(t, wr, commits, "coffer_writer_fsyncs_total", "file=wal")
	wantSample(t, wr, 0, "coffer_writer_queue_depth")
	// Every command is timed twice: queued (arrival to its batch) and
	// answered (arrival to answer), the second never shorter.
	wantSample(t, wr, 6, "coffer_writer_queue_wait_seconds")
	wantSample(t, wr, 6, "coffer_writer_command_duration_seconds")
	if q, a := histogramSum(wr, "coffer_writer_queue_wait_seconds"), histogramSum(wr, "coffer_writer_command_duration_seconds"); !(a > q) {
		t.Errorf("time to answer %v s in all, queue wait %v s: the answer must come after the wait", a, q)
	}
	wantSample(t, wr, 1, "coffer_writer_serving")
	eventually(t, 10*time.Second, "outbox lag 0", func() bool {
		return sample(scrape(t, writerAdmin+"/metrics"), "coffer_writer_outbox_lag_events") == 0
	})
	wantSample(t, wr, 0, "coffer_writer_projection_lag_versions")

	// history_writer: every event recorded once, nothing left pending.
	eventually(t, 10*time.Second, "history recorded the 5 events", func() bool {
		h := scrape(t, historyAdmin+"/metrics")
		return sample(h, "coffer_history_events_total", "result=recorded") == 5 &&
			sample(h, "coffer_history_consumer_lag_messages") == 0
	})

	// With Redis gone, committed credits pile up as projection lag, and
	// the lag drains when Redis is back.
	s.redis.Stop()
	for range 2 {
		if st, body := post(s, w, "credit", 1); st != 200 {
			t.Fatalf("credit with Redis down: %d %s", st, body)
		}
	}
	wr = scrape(t, writerAdmin+"/metrics")
	wantSample(t, wr, 2, "coffer_writer_projection_lag_versions")
	wantSample(t, wr, 1, "coffer_writer_projection_lag_streams")
	s.redis.Restart(t)
	eventually(t, 15*time.Second, "projection lag back to 0", func() bool {
		return sample(scrape(t, writerAdmin+"/metrics"), "coffer_writer_projection_lag_versions") == 0
	})
}
