package history

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"coffer/pkg/config"
	"coffer/pkg/connect"
	"coffer/pkg/health"
	"coffer/pkg/metrics"
)

// Settings is everything history_writer reads from its environment.
type Settings struct {
	NATSURL   string
	DataDir   string
	AdminAddr string
	LogLevel  string
	Batch     int
	Replicas  int
}

// SettingsFromEnv reads Settings through getenv, with local defaults.
func SettingsFromEnv(getenv func(string) string) (Settings, error) {
	env := config.New(getenv)
	s := Settings{
		NATSURL:   env.String("NATS_URL", "nats://127.0.0.1:4222"),
		DataDir:   env.String("DATA_DIR", "./data"),
		AdminAddr: env.String("ADMIN_ADDR", ":9092"),
		LogLevel:  env.String("LOG_LEVEL", "info"),
		Batch:     env.Int("HISTORY_BATCH", 256, 1),
		Replicas:  env.Int("NATS_REPLICAS", 1, 1),
	}
	return s, env.Err()
}

// Usage is history_writer's help text.
const Usage = `usage: history_writer

Records every event of the EVENTS stream in the global history. It takes no
arguments: settings come from the environment (NATS_URL, DATA_DIR,
HISTORY_BATCH, ...); see the README.
`

// Command runs history_writer with its command-line arguments: none, or a
// request for help.
func Command(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if run, err := config.NoArgs(args, Usage, stdout, stderr); !run {
		return err
	}
	return RunService(ctx, getenv, stdout, stderr)
}

// RunService is history_writer's whole life: settings through getenv, JSON
// logs to stdout, recording until ctx ends, then the batch in hand is stored
// and acknowledged before NATS is drained and SQLite closed.
func RunService(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	set, err := SettingsFromEnv(getenv)
	if err != nil {
		return err
	}
	log, err := connect.Logger(stdout, set.LogLevel, "history_writer")
	if err != nil {
		return err
	}

	if err := os.MkdirAll(set.DataDir, 0o755); err != nil {
		return fmt.Errorf("DATA_DIR: %w", err)
	}
	path := filepath.Join(set.DataDir, "history.db")
	hl, err := Open(ctx, path)
	if err != nil {
		return err
	}
	defer hl.Close()
	log.Info("history log open", "path", path)

	nc, err := connect.NATS(set.NATSURL, "history_writer", log)
	if err != nil {
		return err
	}
	defer nc.Close()

	rec, err := NewRecorder(nc, hl, log, time.Now, set.Batch, set.Replicas)
	if err != nil {
		return err
	}

	admin := health.Mux(
		health.Check{Name: "nats", Probe: health.NATSConnected(nc.IsConnected)},
		health.Check{Name: "sqlite", Probe: hl.Ping},
		health.Check{Name: "consumer", Probe: rec.ConsumingProbe},
	)
	reg := metrics.NewRegistry()
	if err := rec.RegisterMetrics(reg); err != nil {
		return err
	}
	admin.Handle("GET /metrics", metrics.Handler(reg))
	stopAdmin, err := health.Start(set.AdminAddr, admin, log)
	if err != nil {
		return err
	}

	err = rec.Run(ctx)
	adminErr := stopAdmin()
	if derr := connect.Drain(nc, 5*time.Second); derr != nil {
		log.Warn("nats drain", "err", derr)
	}
	log.Info("history writer stopped")
	return errors.Join(err, adminErr)
}
