package writer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/segmentio/ksuid"

	"coffer/pkg/config"
	"coffer/pkg/connect"
	"coffer/pkg/eventstore"
	"coffer/pkg/health"
	"coffer/pkg/metrics"
	"coffer/pkg/readmodel"
)

// Settings is everything wallet_writer reads from its environment.
type Settings struct {
	NATSURL   string
	RedisURL  string
	DataDir   string
	AdminAddr string
	LogLevel  string
	Sync      eventstore.Sync
	Writer    Config
}

// SettingsFromEnv reads Settings through getenv, with local defaults.
func SettingsFromEnv(getenv func(string) string) (Settings, error) {
	env := config.New(getenv)
	s := Settings{
		NATSURL:   env.String("NATS_URL", "nats://127.0.0.1:4222"),
		RedisURL:  env.String("REDIS_URL", "redis://127.0.0.1:6379/0"),
		DataDir:   env.String("DATA_DIR", "./data"),
		AdminAddr: env.String("ADMIN_ADDR", ":9091"),
		LogLevel:  env.String("LOG_LEVEL", "info"),
		Sync:      eventstore.Sync(env.OneOf("SQLITE_SYNC", "FULL", "FULL", "NORMAL")),
		Writer: Config{
			Partition:       env.String("WRITER_PARTITION", "0"),
			MaxBatch:        env.Int("WRITER_MAX_BATCH", 512, 1),
			QueueSize:       env.Int("WRITER_QUEUE_SIZE", 8192, 1),
			LeaseTTL:        env.Duration("WRITER_LEASE_TTL", 10*time.Second),
			RedisTimeout:    env.Duration("REDIS_TIMEOUT", 2*time.Second),
			CheckpointEvery: env.Duration("WRITER_CHECKPOINT_EVERY", 200*time.Millisecond),
		},
	}
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
// getenv, logs JSON to stdout, serves until ctx ends and then shuts down in
// order: stop taking commands, finish the batch in hand, flush the outbox,
// release the lease, drain NATS, close SQLite.
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
	path := LogPath(set.DataDir, set.Writer.Partition)
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
	if set.Writer.Owner, err = store.Identity(ctx, func() string { return ksuid.New().String() }); err != nil {
		return err
	}
	log.Info("event log open", "path", path, "synchronous", string(set.Sync), "writer_id", set.Writer.Owner)

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

	w, err := New(set.Writer, nc, store, readmodel.New(rdb), log, time.Now)
	if err != nil {
		return err
	}

	mux := health.Mux(
		health.Check{Name: "nats", Probe: health.NATSConnected(nc.IsConnected)},
		health.Check{Name: "redis", Probe: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
		health.Check{Name: "sqlite", Probe: store.Ping},
		health.Check{Name: "serving", Probe: w.ServingProbe},
	)
	mux.Handle("GET /debug/stats", health.JSON(func() any { return w.Stats() }))
	reg := metrics.NewRegistry()
	if err := w.RegisterMetrics(reg); err != nil {
		return err
	}
	mux.Handle("GET /metrics", metrics.Handler(reg))
	stopAdmin, err := health.Start(set.AdminAddr, mux, log)
	if err != nil {
		return err
	}

	runErr := w.Run(ctx)
	adminErr := stopAdmin()
	if err := connect.Drain(nc, 5*time.Second); err != nil {
		log.Warn("nats drain", "err", err)
	}
	return errors.Join(runErr, adminErr)
}

// Usage is wallet_writer's command-line help.
const Usage = `usage: wallet_writer [serve | verify | rebuild]

  serve    run the writer (the default)
  verify   recompute every wallet from its events and compare with the state
           log and Redis; print each mismatch; exit 1 if there is any
  rebuild  erase the Redis read model and recreate it from the log
           (stop the writer first; a running writer heals Redis by itself)

Settings come from the environment (DATA_DIR, REDIS_URL, WRITER_PARTITION, ...); see the README.
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
	case cmd == "help" || cmd == "-h" || cmd == "--help":
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
	set.Writer.defaults()
	part, err := set.Writer.part()
	if err != nil {
		return err
	}
	path := LogPath(set.DataDir, set.Writer.Partition)
	store, err := eventstore.OpenReadOnly(path)
	if err != nil {
		return err
	}
	defer store.Close()
	rdb, err := connect.Redis(set.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	proj := readmodel.New(rdb)
	if cmd == "verify" {
		return Verify(ctx, part, store, proj, stdout)
	}
	return Rebuild(ctx, part, path, store, proj, stdout)
}
