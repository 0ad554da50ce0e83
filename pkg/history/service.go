package history

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"coffer/pkg/config"
	"coffer/pkg/connect"
)

// RunService is history_writer's whole life: settings through getenv, JSON
// logs to stdout, recording until ctx ends, then the batch in hand is stored
// and acknowledged before NATS is drained and SQLite closed.
func RunService(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	env := config.New(getenv)
	natsURL := env.String("NATS_URL", "nats://127.0.0.1:4222")
	dataDir := env.String("DATA_DIR", "./data")
	level := env.String("LOG_LEVEL", "info")
	batch := env.Int("HISTORY_BATCH", 256, 1)
	if err := env.Err(); err != nil {
		return err
	}
	log, err := connect.Logger(stdout, level)
	if err != nil {
		return err
	}
	log = log.With("service", "history_writer")

	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("DATA_DIR: %w", err)
	}
	path := filepath.Join(dataDir, "history.db")
	hl, err := Open(ctx, path)
	if err != nil {
		return err
	}
	defer hl.Close()
	log.Info("history log open", "path", path)

	nc, err := connect.NATS(natsURL, "history_writer", log)
	if err != nil {
		return err
	}
	defer nc.Close()

	rec, err := NewRecorder(nc, hl, log, time.Now, batch)
	if err != nil {
		return err
	}
	err = rec.Run(ctx)
	if derr := connect.Drain(nc, 5*time.Second); derr != nil {
		log.Warn("nats drain", "err", derr)
	}
	log.Info("history writer stopped")
	return err
}
