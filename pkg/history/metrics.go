package history

import (
	"context"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"coffer/pkg/bus"
	"coffer/pkg/metrics"
)

// recorderMetrics are history_writer's Prometheus metrics, updated whether
// or not anyone registered them.
type recorderMetrics struct {
	events *prometheus.CounterVec
	insert prometheus.Histogram
}

func newRecorderMetrics() *recorderMetrics {
	return &recorderMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "history", Name: "events_total",
			Help: "Events received from the EVENTS stream, by result: recorded (new), duplicate (already in the log: a redelivery or a republish), invalid (not an event; dropped and logged).",
		}, []string{"result"}),
		insert: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metrics.Namespace, Subsystem: "history", Name: "insert_duration_seconds",
			Help:    "Time to store one fetched batch durably in the history log.",
			Buckets: metrics.LatencyBuckets,
		}),
	}
}

// RegisterMetrics registers the recorder's metrics with reg, and the
// consumer's lag, read from JetStream when scraped.
func (r *Recorder) RegisterMetrics(reg prometheus.Registerer) error {
	lag := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: metrics.Namespace, Subsystem: "history", Name: "consumer_lag_messages",
		Help: "Events in the EVENTS stream not yet recorded and acknowledged: the durable consumer's pending plus unacknowledged messages (NaN when JetStream cannot be asked).",
	}, r.consumerLag)
	for _, c := range []prometheus.Collector{r.metrics.events, r.metrics.insert, lag} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (r *Recorder) consumerLag() float64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := r.js.Consumer(ctx, bus.EventsStream, Consumer)
	if err != nil {
		return math.NaN()
	}
	info, err := c.Info(ctx)
	if err != nil {
		return math.NaN()
	}
	return float64(info.NumPending) + float64(info.NumAckPending)
}
