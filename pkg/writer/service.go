package writer

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"coffer/pkg/config"
	"coffer/pkg/connect"
	"coffer/pkg/eventstore"
	"coffer/pkg/readmodel"
)

// RunService is wallet_writer's whole life: it reads its settings through
// getenv, logs JSON to stdout, serves until ctx ends and then shuts down in
// order: stop taking commands, finish the batch in hand, flush the outbox,
// release the lease, drain NATS, close SQLite.
func RunService(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	env := config.New(getenv)
	natsURL := env.String("NATS_URL", "nats://127.0.0.1:4222")
	redisURL := env.String("REDIS_URL", "redis://127.0.0.1:6379/0")
	dataDir := env.String("DATA_DIR", "./data")
	level := env.String("LOG_LEVEL", "info")
	cfg := Config{
		Partition:    env.String("WRITER_PARTITION", "0"),
		MaxBatch:     env.Int("WRITER_MAX_BATCH", 512, 1),
		QueueSize:    env.Int("WRITER_QUEUE_SIZE", 8192, 1),
		LeaseTTL:     env.Duration("WRITER_LEASE_TTL", 10*time.Second),
		RedisTimeout: env.Duration("REDIS_TIMEOUT", 2*time.Second),
	}
	sync := env.OneOf("SQLITE_SYNC", "FULL", "FULL", "NORMAL")
	if err := env.Err(); err != nil {
		return err
	}
	log, err := connect.Logger(stdout, level)
	if err != nil {
		return err
	}
	log = log.With("service", "wallet_writer")

	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("DATA_DIR: %w", err)
	}
	path := filepath.Join(dataDir, "wallet_writer-p"+cfg.Partition+".db")
	store, err := eventstore.Open(ctx, path, eventstore.Options{Sync: eventstore.Sync(sync)})
	if err != nil {
		return err
	}
	defer store.Close()
	log.Info("event log open", "path", path, "synchronous", sync)

	rdb, err := connect.Redis(redisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()

	nc, err := connect.NATS(natsURL, "wallet_writer", log)
	if err != nil {
		return err
	}
	defer nc.Close()

	w, err := New(cfg, nc, store, readmodel.New(rdb), log, time.Now)
	if err != nil {
		return err
	}
	runErr := w.Run(ctx)
	if err := connect.Drain(nc, 5*time.Second); err != nil {
		log.Warn("nats drain", "err", err)
	}
	return runErr
}
