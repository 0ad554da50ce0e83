package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestMetricSum reads a metric the way the bench waits on the outbox and
// history lags: every series added up, other metrics with the same prefix
// ignored, and an unreadable gauge or a missing metric an error.
func TestMetricSum(t *testing.T) {
	page := ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, page) }))
	t.Cleanup(srv.Close)
	for _, c := range []struct {
		name, page string
		want       float64
		fails      bool
	}{
		{"labelled series add up", "# HELP lag x\n# TYPE lag gauge\nlag{partition=\"0\"} 3\nlag{partition=\"1\"} 4\nlag_total 100\n", 7, false},
		{"a plain series", "lag 0\n", 0, false},
		{"NaN is not caught up", "lag NaN\n", 0, true},
		{"missing", "other 1\nlag_total 2\n", 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			page = c.page
			got, err := metricSum(srv.URL, "lag")
			if (err != nil) != c.fails || got != c.want {
				t.Errorf("metricSum = %v, %v; want %v (error: %v)", got, err, c.want, c.fails)
			}
		})
	}
}

// TestWriterStats reads the writer's /debug/stats: one writer's as it is,
// a writer of several partitions' added up, each stage's mean per commit
// weighed by its partition's commits.
func TestWriterStats(t *testing.T) {
	page := ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, page) }))
	t.Cleanup(srv.Close)
	b := &bench{admin: srv.URL}
	page = `{"commits":10,"events":40,"max_batch":9,"decide_ms":0.5,"append_ms":2,"finish_ms":1.5}`
	if s, err := b.writerStats(); err != nil || s != (writerStats{Commits: 10, Events: 40, MaxBatch: 9, DecideMS: 0.5, AppendMS: 2, FinishMS: 1.5}) {
		t.Fatalf("one writer: %+v %v", s, err)
	}
	page = `{"0":{"commits":10,"events":40,"max_batch":9,"decide_ms":1,"append_ms":2,"finish_ms":3},
		"1":{"commits":30,"events":60,"max_batch":4,"decide_ms":3,"append_ms":2,"finish_ms":1}}`
	s, err := b.writerStats()
	if err != nil || s.Commits != 40 || s.Events != 100 || s.MaxBatch != 9 || s.DecideMS != 2.5 || s.AppendMS != 2 || s.FinishMS != 1.5 {
		t.Fatalf("two partitions: %+v %v", s, err)
	}
	if got := s.stageTotals(); got != [3]float64{100, 80, 60} {
		t.Fatalf("stage totals %v", got)
	}
}
