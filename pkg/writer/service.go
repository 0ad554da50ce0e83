// Package writer is wallet_writer: the engine (package engine) with the
// wallet domain registered, its settings from the environment, its admin
// endpoints, and the recovery tools on its command line.
package writer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/segmentio/ksuid"

	"coffer/pkg/bus"
	"coffer/pkg/config"
	"coffer/pkg/connect"
	"coffer/pkg/engine"
	"coffer/pkg/eventstore"
	"coffer/pkg/health"
	"coffer/pkg/item"
	"coffer/pkg/metrics"
	"coffer/pkg/order"
	"coffer/pkg/process"
	"coffer/pkg/readmodel"
	"coffer/pkg/transfer"
	"coffer/pkg/wallet"
)

// Domains are the domains wallet_writer hosts: a domain is added here with
// one line.
func Domains() (*engine.Domains, error) {
	var ds engine.Domains
	if err := errors.Join(
		engine.Register(&ds, wallet.Domain{}),
		engine.Register(&ds, transfer.Domain{}),
		engine.Register(&ds, item.Domain{}),
		engine.Register(&ds, order.Domain{}),
	); err != nil {
		return nil, err
	}
	return &ds, nil
}

// The engine's errors, as the tools return them.
var (
	ErrMismatch      = engine.ErrMismatch
	ErrWriterRunning = engine.ErrWriterRunning
)

// Settings is everything wallet_writer reads from its environment.
type Settings struct {
	NATSURL   string
	RedisURL  string
	DataDir   string
	AdminAddr string
	LogLevel  string
	Sync      eventstore.Sync
	// RedisMinReplicas: each push to Redis waits for this many replicas.
	RedisMinReplicas int
	// Partitions are the partitions this process serves, each with a
	// writer of its own; Writer.Partitions is how many the deployment has.
	Partitions []int
	Writer     engine.Config
	// TransferWorkers is how many transfer events this process's share of
	// the transfers' process manager works on at once; 0: none here.
	TransferWorkers int
	// TransferStepTimeout bounds each command of a transfer's step.
	TransferStepTimeout time.Duration
	// OrderWorkers and OrderStepTimeout are the same for the orders'
	// process manager.
	OrderWorkers     int
	OrderStepTimeout time.Duration
}

// SettingsFromEnv reads Settings through getenv, with local defaults.
func SettingsFromEnv(getenv func(string) string) (Settings, error) {
	env := config.New(getenv)
	s := Settings{
		NATSURL:             env.String("NATS_URL", "nats://127.0.0.1:4222"),
		RedisURL:            env.String("REDIS_URL", "redis://127.0.0.1:6379/0"),
		DataDir:             env.String("DATA_DIR", "./data"),
		AdminAddr:           env.String("ADMIN_ADDR", ":9091"),
		LogLevel:            env.String("LOG_LEVEL", "info"),
		Sync:                eventstore.Sync(env.OneOf("SQLITE_SYNC", "FULL", "FULL", "NORMAL")),
		RedisMinReplicas:    env.Int("REDIS_MIN_REPLICAS", 0, 0),
		TransferWorkers:     env.Int("TRANSFER_WORKERS", 64, 0),
		TransferStepTimeout: env.Duration("TRANSFER_STEP_TIMEOUT", 5*time.Second),
		OrderWorkers:        env.Int("ORDER_WORKERS", 64, 0),
		OrderStepTimeout:    env.Duration("ORDER_STEP_TIMEOUT", 5*time.Second),
		Writer: engine.Config{
			Partitions:      env.Int("PARTITION_COUNT", 1, 1),
			Replicas:        env.Int("NATS_REPLICAS", 1, 1),
			MaxBatch:        env.Int("WRITER_MAX_BATCH", 512, 1),
			QueueSize:       env.Int("WRITER_QUEUE_SIZE", 8192, 1),
			LeaseTTL:        env.Duration("WRITER_LEASE_TTL", 10*time.Second),
			RedisTimeout:    env.Duration("REDIS_TIMEOUT", 2*time.Second),
			CheckpointEvery: env.Duration("WRITER_CHECKPOINT_EVERY", 200*time.Millisecond),
		},
	}
	s.Partitions = env.IntList("WRITER_PARTITIONS", []int{0}, s.Writer.Partitions)
	return s, env.Err()
}

// LogPath is where the writer of a partition keeps its event log.
func LogPath(dataDir, partition string) string {
	return filepath.Join(dataDir, "wallet_writer-p"+partition+".db")
}

// waitForLock takes the log's exclusive lock, waiting while another process
// (say, a predecessor still shutting down) holds it. It returns nil, nil if
// ctx ends first.
func waitForLock(ctx context.Context, path string, log *slog.Logger) (*os.File, error) {
	logged := false
	for {
		f, err := eventstore.Lock(path)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, eventstore.ErrLocked) {
			return nil, err
		}
		if !logged {
			log.Warn("waiting for the event log: another wallet_writer holds it", "path", path)
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// RunService is wallet_writer's whole life: it reads its settings through
// getenv, logs JSON to stdout, and runs one writer for each partition it
// owns (WRITER_PARTITIONS, each with its own log file, lock and lease) until
// ctx ends; then each shuts down in order: stop taking commands, finish the
// batch in hand, flush the outbox, release the lease; then NATS is drained
// and SQLite closed. If one partition's writer fails (it lost its lease),
// the others stop too and the process exits with the error.
func RunService(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	set, err := SettingsFromEnv(getenv)
	if err != nil {
		return err
	}
	log, err := connect.Logger(stdout, set.LogLevel, "wallet_writer")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(set.DataDir, 0o755); err != nil {
		return fmt.Errorf("DATA_DIR: %w", err)
	}

	var stores []*eventstore.Store
	var cfgs []engine.Config
	for _, p := range set.Partitions {
		cfg := set.Writer
		cfg.Partition = strconv.Itoa(p)
		path := LogPath(set.DataDir, cfg.Partition)
		lock, err := waitForLock(ctx, path, log)
		if err != nil || lock == nil {
			return err // nil, nil: stopped while waiting
		}
		defer lock.Close()
		store, err := eventstore.Open(ctx, path, eventstore.Options{Sync: set.Sync})
		if err != nil {
			return err
		}
		defer store.Close()
		if err := store.ClaimPartition(ctx, p, cfg.Partitions); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if cfg.Owner, err = store.Identity(ctx, func() string { return ksuid.New().String() }); err != nil {
			return err
		}
		log.Info("event log open", "path", path, "partition", cfg.Partition, "of", cfg.Partitions,
			"synchronous", string(set.Sync), "writer_id", cfg.Owner)
		stores, cfgs = append(stores, store), append(cfgs, cfg)
	}
	if set.Writer.Partitions > 1 {
		from, to := bus.PartitionMapping(set.Writer.Partitions)
		log.Info("partitioned: the NATS server must map commands to partitions", "from", from, "to", to)
	}

	rdb, err := connect.Redis(set.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()

	nc, err := connect.NATS(set.NATSURL, "wallet_writer", log)
	if err != nil {
		return err
	}
	defer nc.Close()

	reg := metrics.NewRegistry()
	domains, err := Domains()
	if err != nil {
		return err
	}
	writers := make([]*engine.Writer, len(cfgs))
	checks := []health.Check{
		{Name: "nats", Probe: health.NATSConnected(nc.IsConnected)},
		{Name: "redis", Probe: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
	}
	for i, cfg := range cfgs {
		proj := readmodel.New(rdb)
		if set.RedisMinReplicas > 0 {
			proj.RequireReplicas(set.RedisMinReplicas, set.Writer.RedisTimeout/2)
		}
		if writers[i], err = engine.New(cfg, domains, nc, stores[i], proj, log.With("partition", cfg.Partition), time.Now); err != nil {
			return err
		}
		if err := writers[i].RegisterMetrics(reg); err != nil {
			return err
		}
		suffix := ""
		if len(cfgs) > 1 {
			suffix = " p" + cfg.Partition
		}
		checks = append(checks,
			health.Check{Name: "sqlite" + suffix, Probe: stores[i].Ping},
			health.Check{Name: "serving" + suffix, Probe: writers[i].ServingProbe})
	}
	// The process managers: each runs here if it has workers.
	var managers []*process.Manager
	for _, pm := range []struct {
		name    string
		workers int
		timeout time.Duration
		make    func(*nats.Conn, process.Sender, *slog.Logger, int, int) (*process.Manager, error)
	}{
		{"transfers", set.TransferWorkers, set.TransferStepTimeout, transfer.NewManager},
		{"orders", set.OrderWorkers, set.OrderStepTimeout, order.NewManager},
	} {
		if pm.workers == 0 {
			continue
		}
		m, err := pm.make(nc, bus.NewClient(nc, pm.timeout, nil), log.With("component", pm.name), pm.workers, set.Writer.Replicas)
		if err != nil {
			return err
		}
		if err := m.RegisterMetrics(reg); err != nil {
			return err
		}
		checks = append(checks, health.Check{Name: pm.name, Probe: m.ConsumingProbe})
		managers = append(managers, m)
	}
	mux := health.Mux(checks...)
	mux.Handle("GET /debug/stats", health.JSON(func() any {
		if len(writers) == 1 {
			return writers[0].Stats()
		}
		by := map[string]engine.Stats{}
		for i, w := range writers {
			by[cfgs[i].Partition] = w.Stats()
		}
		return by
	}))
	mux.Handle("GET /metrics", metrics.Handler(reg))
	stopAdmin, err := health.Start(set.AdminAddr, mux, log)
	if err != nil {
		return err
	}

	// The writers outlive the process managers: the steps they have in
	// hand are commands to them, answered before they stop.
	runCtx, stopAll := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAll()
	managed := make(chan struct{})
	managerCtx, stopManager := context.WithCancel(runCtx)
	go func() {
		defer close(managed)
		var wg sync.WaitGroup
		for _, m := range managers {
			wg.Go(func() {
				m.Run(managerCtx) //nolint:errcheck // it retries every failure until stopped
			})
		}
		wg.Wait()
	}()
	go func() {
		select {
		case <-ctx.Done():
		case <-runCtx.Done():
		}
		stopManager()
		<-managed
		stopAll()
	}()
	errs := make([]error, len(writers))
	var wg sync.WaitGroup
	for i, w := range writers {
		wg.Go(func() {
			errs[i] = w.Run(runCtx)
			stopAll() // one partition's writer gone: stop the others
		})
	}
	wg.Wait()
	<-managed
	adminErr := stopAdmin()
	if err := connect.Drain(nc, 5*time.Second); err != nil {
		log.Warn("nats drain", "err", err)
	}
	return errors.Join(append(errs, adminErr)...)
}

// Usage is wallet_writer's command-line help.
const Usage = `usage: wallet_writer [serve | verify | rebuild | partitions-conf]

  serve    run the writer (the default)
  verify   recompute every stream from its events and compare with the state
           log and Redis; check every transfer across the partitions and
           that money adds up; print each mismatch; exit 1 if there is any
  rebuild  erase the Redis read model and recreate it from the log
           (stop the writer first; a running writer heals Redis by itself)
  partitions-conf
           print the nats-server configuration that maps commands to the
           PARTITION_COUNT partitions (run.sh starts nats-server with it)

Settings come from the environment (DATA_DIR, REDIS_URL, WRITER_PARTITIONS, ...); see the README.
verify and rebuild work on each partition in WRITER_PARTITIONS in turn.
`

// Command runs wallet_writer with its command-line arguments.
func Command(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	switch {
	case cmd == "serve" && len(args) <= 1:
		return RunService(ctx, getenv, stdout, stderr)
	case (cmd == "verify" || cmd == "rebuild") && len(args) == 1:
		return runTool(ctx, cmd, getenv, stdout)
	case cmd == "partitions-conf" && len(args) == 1:
		set, err := SettingsFromEnv(getenv)
		if err != nil {
			return err
		}
		fmt.Fprint(stdout, bus.PartitionConfig(set.Writer.Partitions))
		return nil
	case config.IsHelp(cmd) && len(args) == 1:
		fmt.Fprint(stdout, Usage)
		return nil
	}
	fmt.Fprint(stderr, Usage)
	return fmt.Errorf("unknown command %q", args)
}

func runTool(ctx context.Context, cmd string, getenv func(string) string, stdout io.Writer) error {
	set, err := SettingsFromEnv(getenv)
	if err != nil {
		return err
	}
	var logs []engine.PartitionLog
	for _, p := range set.Partitions {
		path := LogPath(set.DataDir, strconv.Itoa(p))
		store, err := eventstore.OpenReadOnly(path)
		if err != nil {
			return err
		}
		defer store.Close()
		logs = append(logs, engine.PartitionLog{Part: readmodel.Part{Index: p, Of: set.Writer.Partitions}, Path: path, Store: store})
	}
	domains, err := Domains()
	if err != nil {
		return err
	}
	rdb, err := connect.Redis(set.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	proj := readmodel.New(rdb)
	if cmd == "rebuild" {
		return engine.Rebuild(ctx, domains, logs, proj, stdout)
	}
	var errs []error
	for _, l := range logs {
		if len(logs) > 1 {
			fmt.Fprintf(stdout, "partition %d:\n", l.Part.Index)
		}
		errs = append(errs, engine.Verify(ctx, domains, l.Part, l.Store, proj, stdout, time.Now()))
	}
	// Transfers and orders span partitions: they are checked with every
	// log at hand.
	if len(logs) < set.Writer.Partitions {
		fmt.Fprintf(stdout, "transfers and orders: not checked; they span partitions, and this verify reads %d of %d (list them all in WRITER_PARTITIONS)\n",
			len(logs), set.Writer.Partitions)
		return errors.Join(errs...)
	}
	stores := make([]*eventstore.Store, len(logs))
	for i, l := range logs {
		stores[i] = l.Store
	}
	if n, err := transfer.Verify(ctx, stores, time.Now(), stdout); err != nil || n > 0 {
		errs = append(errs, err, fmt.Errorf("%d transfer problems: %w", n, ErrMismatch))
	}
	if n, err := order.Verify(ctx, stores, time.Now(), stdout); err != nil || n > 0 {
		errs = append(errs, err, fmt.Errorf("%d order problems: %w", n, ErrMismatch))
	}
	return errors.Join(errs...)
}
