package engine

import (
	"coffer/pkg/bus"
	"github.com/prometheus/client_golang/prometheus"

	"coffer/pkg/metrics"
)

// Command outcomes, the values of coffer_writer_commands_total's outcome.
const (
	outcomeApplied  = "applied"  // the command's events were recorded
	outcomeRejected = "rejected" // refused as a business outcome (a debit for funds), and the refusal recorded
	outcomeReplayed = "replayed" // decided before: the stored outcome was answered again
	outcomeRefused  = "refused"  // not decided: invalid, overflowing, or a reused key
	outcomeFailed   = "failed"   // the log could not be read or written; nothing applied
	outcomeNothing  = "nothing"  // an alarm that was no longer due: nothing to decide
)

// writerMetrics are the writer's Prometheus metrics. They are updated
// whether or not anyone registered them.
type writerMetrics struct {
	batch    prometheus.Histogram
	commit   prometheus.Histogram
	fsyncs   *prometheus.CounterVec
	commands *prometheus.CounterVec
	queued   prometheus.Histogram // arrival to the start of the command's batch
	answered prometheus.Histogram // arrival to the answer
}

func newWriterMetrics(partition string) *writerMetrics {
	labels := prometheus.Labels{"partition": partition}
	latency := func(name, help string) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metrics.Namespace, Subsystem: "writer", Name: name, ConstLabels: labels,
			Help: help, Buckets: metrics.LatencyBuckets,
		})
	}
	return &writerMetrics{
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metrics.Namespace, Subsystem: "writer", Name: "batch_commands", ConstLabels: labels,
			Help:    "Commands decided together in one batch (one transaction when any of them is recorded).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
		}),
		commit: latency("commit_duration_seconds", "Time to write one batch to the SQLite log, durable (its fsync included); committed batches only."),
		queued: latency("queue_wait_seconds", "Time a command waited for the committer: from its arrival until its batch began."),
		answered: latency("command_duration_seconds",
			"Time from a command's arrival to its answer: the queue, the decision, the durable commit and the Redis push."),
		fsyncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "writer", Name: "fsyncs_total", ConstLabels: labels,
			Help: "fsyncs of the SQLite files: file=wal, one per committed batch (synchronous=FULL); file=db, one per checkpoint that copied pages.",
		}, []string{"file"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "writer", Name: "commands_total", ConstLabels: labels,
			Help: "Commands answered, by domain, action and outcome: applied, rejected (refused as a business outcome, e.g. a debit for funds, and recorded), replayed, refused (invalid, overflow, reused key; nothing recorded), failed (storage).",
		}, []string{"domain", "action", "outcome"}),
	}
}

// RegisterMetrics registers the writer's metrics with reg: those above, and
// gauges read when scraped.
func (w *Writer) RegisterMetrics(reg prometheus.Registerer) error {
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: metrics.Namespace, Subsystem: "writer", Name: name, Help: help,
			ConstLabels: prometheus.Labels{"partition": w.cfg.Partition}}, f)
	}
	for _, c := range []prometheus.Collector{
		w.metrics.batch, w.metrics.commit, w.metrics.fsyncs, w.metrics.commands, w.metrics.queued, w.metrics.answered,
		gauge("queue_depth", "Commands waiting for the committer.", func() float64 { return float64(len(w.queue)) }),
		gauge("projection_lag_versions", "Stream versions committed but not yet in Redis (an upper bound when Redis lost data).",
			func() float64 { return float64(w.dirty.lagVersions()) }),
		gauge("projection_lag_streams", "Streams whose newest version Redis lacks.", func() float64 { return float64(w.dirty.len()) }),
		gauge("outbox_lag_events", "Events committed but not yet acknowledged by JetStream.",
			func() float64 { return float64(max(0, w.store.Committed()-w.publishedSeq.Load())) }),
		gauge("serving", "1 while this writer holds its partition's lease and takes commands.", func() float64 {
			if w.serving.Load() {
				return 1
			}
			return 0
		}),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// health is what the writer tells of itself in its service stats.
func (w *Writer) health() bus.WriterHealth {
	return bus.WriterHealth{
		Partition:             w.cfg.Partition,
		Serving:               w.serving.Load(),
		QueueDepth:            len(w.queue),
		ProjectionLagVersions: w.dirty.lagVersions(),
		ProjectionLagStreams:  w.dirty.len(),
		OutboxLagEvents:       max(0, w.store.Committed()-w.publishedSeq.Load()),
	}
}
