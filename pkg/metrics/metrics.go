// Package metrics is the Prometheus side of every Coffer service: one
// registry per service (never the global one, so tests can run several
// services in one process), the Go and process collectors, and the
// /metrics handler. Each package defines and updates its own metrics.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every Coffer metric.
const Namespace = "coffer"

// LatencyBuckets are the histogram buckets of request and commit latencies,
// in seconds: 0.25 ms to 10 s, covering a Redis read to a write timeout.
var LatencyBuckets = []float64{.00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// NewRegistry returns a registry holding the Go runtime and process
// collectors.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Handler serves reg in the Prometheus text format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
