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
