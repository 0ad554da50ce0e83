// Package engine is Coffer's write side for any domain: the one place
// commands become events. A Writer serves cmd.<domain>.<id>.<action> for
// every domain it hosts as a nats.go/micro service, and a single committer
// decides commands in batches against in-memory state (whatever mix of
// domains a batch holds), writes each batch to the event store in one
// transaction, pushes the new states to Redis and only then answers. An
// outbox publisher carries committed events to JetStream, a projector heals
// Redis whenever it missed a push, and Verify and Rebuild check and recreate
// the read model from the log.
//
// The engine imports no domain. A domain is a package that implements
// Domain and is added to a Writer's Domains with Register; the engine holds
// every one of its streams by (domain, stream id).
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/event"
	"coffer/pkg/eventstore"
	"coffer/pkg/readmodel"
)

// Config tunes a Writer. Zero fields take the documented defaults.
type Config struct {
	// Partition names the set of streams this writer owns; one writer at a
	// time holds it. Default "0": all streams.
	Partition string
	// Partitions is how many partitions the deployment has; Partition is
	// then a number below it. Default 1. It tells the read model's
	// completeness marker how many writers must mark it.
	Partitions int
	// Replicas is how many JetStream servers keep the EVENTS stream and
	// the lease bucket when this writer creates them. Default 1; 3 on a
	// three-node NATS cluster.
	Replicas int
	// MaxBatch is the most commands one transaction holds. Default 512.
	MaxBatch int
	// QueueSize bounds the commands waiting for the committer; past it a
	// command is refused as overloaded. Default 8192.
	QueueSize int
	// LeaseTTL is how long a partition stays taken after its writer
	// stopped renewing. Default 10s.
	LeaseTTL time.Duration
	// RedisTimeout bounds one push to Redis. Default 2s.
	RedisTimeout time.Duration
	// Version is reported by the micro service. Default "0.1.0".
	Version string
	// CheckpointEvery is how often the WAL is folded into the database
	// file. Default 200ms: the WAL stays small (it starts over after each
	// checkpoint) and each checkpoint is short.
	CheckpointEvery time.Duration
	// Owner identifies this writer in its partition lease. A writer that
	// restarts with the same Owner takes its lease back at once. Default:
	// a fresh id, so a restart waits for the old lease to expire.
	Owner string
}

func (c *Config) defaults() {
	if c.Partition == "" {
		c.Partition = "0"
	}
	if c.Partitions <= 0 {
		c.Partitions = 1
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 512
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 8192
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 10 * time.Second
	}
	if c.RedisTimeout <= 0 {
		c.RedisTimeout = 2 * time.Second
	}
	if c.Version == "" {
		c.Version = "0.1.0"
	}
	if c.CheckpointEvery <= 0 {
		c.CheckpointEvery = 200 * time.Millisecond
	}
	if c.Owner == "" {
		c.Owner = ksuid.New().String()
	}
}

// part is where the writer stands in the read model's completeness marker.
func (c *Config) part() (readmodel.Part, error) {
	i, err := strconv.Atoi(c.Partition)
	if err != nil || i < 0 || i >= c.Partitions {
		return readmodel.Part{}, fmt.Errorf("partition %q: want a number from 0 to %d", c.Partition, c.Partitions-1)
	}
	return readmodel.Part{Index: i, Of: c.Partitions}, nil
}

// Writer is the writer of one partition. Build it with New and start it
// with Run.
type Writer struct {
	cfg   Config
	hosts map[string]host // by domain name
	names []string        // the domains' names, in registration order
	nc    *nats.Conn
	js    jetstream.JetStream
	store *eventstore.Store
	proj  *readmodel.Projection
	log   *slog.Logger
	now   func() time.Time
	part  readmodel.Part // this writer's place in the completeness marker

	queue chan *pending
	// mu guards closed, so that no command is queued after the committer's
	// last look at the queue.
	mu     sync.RWMutex
	closed bool

	serving atomic.Bool // holds the lease and takes commands
	stats   counters
	metrics *writerMetrics

	publishedSeq atomic.Int64 // seq of the newest event JetStream acknowledged

	feed      chan []event.Envelope // committed batches for the outbox
	dirty     *dirtySet             // streams Redis is behind on
	alarms    *alarms               // when streams want commands of their own
	redisDown atomic.Bool           // a push failed; the projector has not reached Redis since

	layoutChecked bool // the projector made sure of the read model's key layout
}

// New returns a Writer of the domains over its dependencies. now is the
// clock events are stamped with.
func New(cfg Config, domains *Domains, nc *nats.Conn, store *eventstore.Store, proj *readmodel.Projection, log *slog.Logger, now func() time.Time) (*Writer, error) {
	cfg.defaults()
	if len(domains.Names()) == 0 {
		return nil, errors.New("a writer needs at least one domain")
	}
	part, err := cfg.part()
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Writer{
		cfg:     cfg,
		hosts:   domains.hosts(),
		names:   domains.Names(),
		nc:      nc,
		js:      js,
		store:   store,
		proj:    proj,
		log:     log,
		now:     now,
		part:    part,
		queue:   make(chan *pending, cfg.QueueSize),
		feed:    make(chan []event.Envelope, 64),
		dirty:   newDirtySet(),
		alarms:  newAlarms(),
		metrics: newWriterMetrics(cfg.Partition),
	}, nil
}

// Run serves commands until ctx ends, then stops taking commands, finishes
// the batch in hand and returns. It returns early with ErrLeaseLost if
// another writer takes the partition.
func (w *Writer) Run(ctx context.Context) error {
	owner := w.cfg.Owner
	lease, err := acquireLease(ctx, w.js, w.cfg.Partition, owner, w.cfg.LeaseTTL, w.cfg.Replicas, w.log)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}

	loaded := map[string]int{}
	if err := w.store.Heads(ctx, func(h eventstore.Head) error {
		hs, ok := w.hosts[h.Domain]
		if !ok {
			return fmt.Errorf("the log holds streams of domain %q, which this writer does not host", h.Domain)
		}
		loaded[h.Domain]++
		return hs.load(h.StreamID, h.Version, h.State)
	}); err != nil {
		return fmt.Errorf("load stream states: %w", err)
	}
	w.log.Info("stream states loaded", "streams", loaded)
	for name, h := range w.hosts {
		h.alarms(func(id string, at time.Time) { w.alarms.schedule(streamKey{name, id}, at) })
	}

	// Background work lives until bgCtx ends, after the committer is done.
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	lost := make(chan error, 1)
	bg.Go(func() {
		if err := lease.renew(bgCtx); err != nil {
			lost <- err
		}
	})
	bg.Go(func() { w.project(bgCtx) })
	bg.Go(func() { w.publishOutbox(bgCtx) })
	bg.Go(func() { w.checkpoint(bgCtx) })
	bg.Go(func() { w.alarmLoop(bgCtx) })

	committed := make(chan struct{})
	go func() {
		defer close(committed)
		w.commitLoop()
	}()

	var actions []string
	for _, name := range w.names {
		for _, a := range w.hosts[name].actions() {
			actions = append(actions, name+"."+a)
		}
	}
	svc, err := micro.AddService(w.nc, micro.Config{
		Name:        bus.WriterService,
		Version:     w.cfg.Version,
		Description: "decides the commands of " + strings.Join(w.names, ", ") + ", logs their events in SQLite, projects them to Redis",
		Metadata:    map[string]string{"partition": w.cfg.Partition, "owner": owner, "domains": strings.Join(w.names, ",")},
		QueueGroup:  bus.WriterService,
		// $SRV.STATS.wallet_writer answers with how far behind each writer
		// is, for wallet_server's GET /status.
		StatsHandler: func(*micro.Endpoint) any { return w.health() },
	})
	if err == nil {
		err = svc.AddEndpoint("commands", micro.HandlerFunc(w.handle),
			micro.WithEndpointSubject(bus.PartitionSubjects(w.part.Index, w.part.Of)),
			micro.WithEndpointMetadata(map[string]string{"actions": strings.Join(actions, ","), "format": "application/json"}))
	}
	if err != nil {
		w.closeQueue()
		<-committed
		stopBackground()
		bg.Wait()
		return fmt.Errorf("start micro service: %w", err)
	}
	w.serving.Store(true)
	w.log.Info("serving commands", "subject", bus.PartitionSubjects(w.part.Index, w.part.Of), "partition", w.cfg.Partition)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-lost:
		w.log.Error("stopping: partition lease lost", "err", runErr)
	}

	w.serving.Store(false)
	if err := svc.Stop(); err != nil {
		w.log.Warn("stop micro service", "err", err)
	}
	w.closeQueue()
	<-committed
	stopBackground() // the outbox makes one last pass on its way out

	bg.Wait()
	if runErr == nil {
		relCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		lease.release(relCtx)
		cancel()
	}
	w.log.Info("writer stopped")
	return runErr
}

// checkpoint folds the WAL into the database file every CheckpointEvery
// that saw commits: the bulk beside the committer, the last few frames
// between two commits, so the WAL starts over (Store.Checkpoint).
func (w *Writer) checkpoint(ctx context.Context) {
	t := time.NewTicker(w.cfg.CheckpointEvery)
	defer t.Stop()
	var checked int64 // commits as of the last checkpoint
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		commits := w.stats.commits.Load()
		if commits == checked {
			continue // nothing new in the WAL
		}
		copied, err := w.store.Checkpoint(ctx)
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("WAL checkpoint failed; retrying", "err", err)
			}
			continue
		}
		checked = commits
		if copied > 0 {
			w.metrics.fsyncs.WithLabelValues("db").Inc() // it copied pages and synced the file
		}
	}
}

// ServingProbe is a readiness probe: it fails until the writer holds its
// partition's lease and takes commands, and again once it stops.
func (w *Writer) ServingProbe(context.Context) error {
	if !w.serving.Load() {
		return fmt.Errorf("not serving partition %s (waiting for its lease, or stopping)", w.cfg.Partition)
	}
	return nil
}

// counters are the writer's running totals, for /debug/stats.
type counters struct {
	commits, commands, events, replayed, maxBatch atomic.Int64
	redecided                                     atomic.Int64
	appendNanos, finishNanos, decideNanos         atomic.Int64
}

// Stats is a snapshot of the writer's totals: each commit is one SQLite
// transaction and, with synchronous=FULL, one fsync of the WAL.
type Stats struct {
	Commits  int64 `json:"commits"`
	Commands int64 `json:"commands"`
	Events   int64 `json:"events"`
	Replayed int64 `json:"replayed"`
	// Batches decided again because their write met a taken idempotency
	// key (a retry among them) or stream version.
	Redecided       int64   `json:"redecided"`
	MaxBatch        int64   `json:"max_batch"`
	EventsPerCommit float64 `json:"events_per_commit"`
	QueueDepth      int     `json:"queue_depth"`
	// Mean time per batch of each stage, in milliseconds.
	DecideMillis float64 `json:"decide_ms"`
	AppendMillis float64 `json:"append_ms"`
	FinishMillis float64 `json:"finish_ms"`
	RedisBehind  int     `json:"redis_streams_behind"`
}

// Stats returns the writer's totals so far.
func (w *Writer) Stats() Stats {
	s := Stats{
		Commits:     w.stats.commits.Load(),
		Commands:    w.stats.commands.Load(),
		Events:      w.stats.events.Load(),
		Replayed:    w.stats.replayed.Load(),
		Redecided:   w.stats.redecided.Load(),
		MaxBatch:    w.stats.maxBatch.Load(),
		QueueDepth:  len(w.queue),
		RedisBehind: w.dirty.len(),
	}
	if s.Commits > 0 {
		s.EventsPerCommit = float64(s.Events) / float64(s.Commits)
		per := func(n int64) float64 { return float64(n) / float64(s.Commits) / 1e6 }
		s.DecideMillis = per(w.stats.decideNanos.Load())
		s.AppendMillis = per(w.stats.appendNanos.Load())
		s.FinishMillis = per(w.stats.finishNanos.Load())
	}
	return s
}

// pending is one command waiting for the committer.
type pending struct {
	host    host
	id      string // the stream
	action  string
	wire    bus.Command
	cmd     command
	key     eventstore.Key // what the command is stored under
	reply   string         // the requester's inbox
	arrived time.Time      // when handle took it
}

func newPending(h host, id, action string, wire bus.Command, cmd command, reply string, arrived time.Time) *pending {
	return &pending{host: h, id: id, action: action, wire: wire, cmd: cmd, key: storeKey(h.name(), id, wire), reply: reply, arrived: arrived}
}

// storeKey is the idempotency key a command is stored under, in its
// stream: the client's key when it sent one, else the command id
// wallet_server made. The prefixes keep the two spaces apart.
func storeKey(domain, id string, wire bus.Command) eventstore.Key {
	k := "c:" + wire.CommandID
	if wire.IdempotencyKey != "" {
		k = "k:" + wire.IdempotencyKey
	}
	return eventstore.Key{Domain: domain, StreamID: id, IdemKey: k}
}

// handle runs on the micro service's subscription goroutine: it checks and
// decodes the command and queues it, so the committer can batch.
func (w *Writer) handle(req micro.Request) {
	arrived := time.Now()
	domain, id, action, err := bus.ParseCommandSubject(req.Subject())
	if err != nil {
		w.refuse(req, &bus.Error{Code: bus.CodeNotFound, Detail: err.Error()})
		return
	}
	h, ok := w.hosts[domain]
	if !ok {
		w.refuse(req, &bus.Error{Code: bus.CodeNotFound, Detail: fmt.Sprintf("this writer hosts no domain %q", domain)})
		return
	}
	if perr := h.checkID(id); perr != nil {
		w.refuse(req, perr)
		return
	}
	var wire bus.Command
	if err := json.Unmarshal(req.Data(), &wire); err != nil || wire.CommandID == "" {
		w.refuse(req, &bus.Error{Code: bus.CodeInvalidBody, Detail: "command body must be JSON with command_id and data"})
		return
	}
	cmd, perr := h.decode(id, action, wire.Data)
	if perr != nil {
		w.refuse(req, perr)
		return
	}
	wire.RequestID = req.Headers().Get(bus.RequestIDHeader)
	if req.Reply() == "" {
		return // nobody to answer; a command is only taken as a request
	}
	p := newPending(h, id, action, wire, cmd, req.Reply(), arrived)
	if ref := cmd.refers(); ref != "" {
		// A point read of the log, off the subscription's goroutine: the
		// other commands do not wait for it.
		go func() {
			rec, found, err := w.store.StreamEventByID(context.Background(), domain, id, ref)
			if err == nil {
				err = cmd.attach(rec, found)
			}
			if err != nil {
				w.log.Error("cannot read the event a command refers to", "domain", domain, "stream", id, "event", ref, "err", err)
				w.refuse(req, &bus.Error{Code: bus.CodeStorageUnavailable, Detail: "the event log could not be read; retry"})
				return
			}
			w.enqueue(req, p)
		}()
		return
	}
	w.enqueue(req, p)
}

// enqueue hands a decoded command to the committer, or refuses it when the
// writer is stopping or its queue is full.
func (w *Writer) enqueue(req micro.Request, p *pending) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		w.refuse(req, &bus.Error{Code: bus.CodeWriterUnavailable, Detail: "the writer is shutting down; retry"})
		return
	}
	select {
	case w.queue <- p:
	default:
		w.refuse(req, &bus.Error{Code: bus.CodeOverloaded, Detail: fmt.Sprintf("the writer has %d commands waiting; retry shortly", cap(w.queue))})
	}
}

func (w *Writer) refuse(req micro.Request, e *bus.Error) {
	body, _ := json.Marshal(bus.Reply{Error: e})
	if err := req.Error(string(e.Code), e.Detail, body); err != nil {
		w.log.Warn("cannot answer command", "subject", req.Subject(), "err", err)
	}
}

// closeQueue stops taking commands; the committer drains what is queued.
func (w *Writer) closeQueue() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
}

// feedOutbox hands a committed batch to the outbox, or drops it if the
// outbox is behind: it then reads the batch from the log.
func (w *Writer) feedOutbox(recs []eventstore.Record) {
	evs := make([]event.Envelope, len(recs))
	for i := range recs {
		evs[i] = recs[i].Event
	}
	select {
	case w.feed <- evs:
	default:
	}
}
