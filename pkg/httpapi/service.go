package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"coffer/pkg/bus"
	"coffer/pkg/config"
	"coffer/pkg/connect"
	"coffer/pkg/health"
	"coffer/pkg/metrics"
	"coffer/pkg/readmodel"
)

// Settings is everything wallet_server reads from its environment.
type Settings struct {
	HTTPAddr        string
	AdminAddr       string // empty: no admin listener
	NATSURL         string
	RedisURL        string
	LogLevel        string
	WriteTimeout    time.Duration
	ShutdownTimeout time.Duration
	Limits          Limits
}

// SettingsFromEnv reads Settings through getenv, with local defaults.
func SettingsFromEnv(getenv func(string) string) (Settings, error) {
	env := config.New(getenv)
	s := Settings{
		HTTPAddr:        env.String("HTTP_ADDR", ":8080"),
		AdminAddr:       env.String("ADMIN_ADDR", ""),
		NATSURL:         env.String("NATS_URL", "nats://127.0.0.1:4222"),
		RedisURL:        env.String("REDIS_URL", "redis://127.0.0.1:6379/0"),
		LogLevel:        env.String("LOG_LEVEL", "info"),
		WriteTimeout:    env.Duration("WRITE_TIMEOUT", 5*time.Second),
		ShutdownTimeout: env.Duration("SHUTDOWN_TIMEOUT", 10*time.Second),
		Limits: Limits{
			HoldExpiresIn:    env.Duration("HOLD_EXPIRES_IN", DefaultLimits.HoldExpiresIn),
			HoldMaxExpiresIn: env.Duration("HOLD_MAX_EXPIRES_IN", DefaultLimits.HoldMaxExpiresIn),
			TransferWait:     env.Duration("TRANSFER_WAIT", DefaultLimits.TransferWait),
			ShopWalletID:     env.String("SHOP_WALLET_ID", DefaultLimits.ShopWalletID),
			MaxStreams:       env.Int("SSE_MAX_STREAMS", DefaultLimits.MaxStreams, 1),
			StreamHeartbeat:  env.Duration("SSE_HEARTBEAT", DefaultLimits.StreamHeartbeat),
		},
	}
	if err := env.Err(); err != nil {
		return s, err
	}
	if err := s.Limits.Check(); err != nil {
		return s, fmt.Errorf("HOLD_EXPIRES_IN, HOLD_MAX_EXPIRES_IN, TRANSFER_WAIT, SHOP_WALLET_ID, SSE_MAX_STREAMS, SSE_HEARTBEAT: %w", err)
	}
	return s, nil
}

// Usage is wallet_server's help text.
const Usage = `usage: wallet_server

Serves Coffer's HTTP API. It takes no arguments: settings come from the
environment (HTTP_ADDR, NATS_URL, REDIS_URL, WRITE_TIMEOUT, ...); see the README.
`

// Command runs wallet_server with its command-line arguments: none, or a
// request for help.
func Command(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if run, err := config.NoArgs(args, Usage, stdout, stderr); !run {
		return err
	}
	return RunService(ctx, getenv, stdout, stderr)
}

// RunService is wallet_server's whole life: settings through getenv, JSON
// logs to stdout, serving HTTP until ctx ends, then in-flight requests are
// given SHUTDOWN_TIMEOUT to finish before NATS is drained.
func RunService(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	set, err := SettingsFromEnv(getenv)
	if err != nil {
		return err
	}
	log, err := connect.Logger(stdout, set.LogLevel, "wallet_server")
	if err != nil {
		return err
	}

	rdb, err := connect.Redis(set.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	nc, err := connect.NATS(set.NATSURL, "wallet_server", log)
	if err != nil {
		return err
	}
	defer nc.Close()

	reads := readmodel.New(rdb)
	pipeCtx, stopPipelines := context.WithCancel(context.Background())
	defer stopPipelines()
	reads.EnablePipelining(pipeCtx, 2)
	reg := metrics.NewRegistry()
	srv := &http.Server{
		Handler:           NewServer(log, reads, bus.NewClient(nc, set.WriteTimeout, reg), time.Now, reg, set.Limits),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		// A transfer waits for its command, then for its end.
		WriteTimeout: set.WriteTimeout + set.Limits.TransferWait + 10*time.Second,
		IdleTimeout:  2 * time.Minute,
	}
	if set.AdminAddr != "" {
		// Probes, metrics and the profiler, away from the public API.
		admin := health.Mux(
			health.Check{Name: "redis", Probe: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
			health.Check{Name: "nats", Probe: health.NATSConnected(nc.IsConnected)},
		)
		admin.Handle("GET /metrics", metrics.Handler(reg))
		stopAdmin, err := health.Start(set.AdminAddr, admin, log)
		if err != nil {
			return err
		}
		defer stopAdmin() //nolint:errcheck // the API's own shutdown is what counts
	}
	ln, err := net.Listen("tcp", set.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP_ADDR %s: %w", set.HTTPAddr, err)
	}
	log.Info("listening", "addr", ln.Addr().String(), "write_timeout", set.WriteTimeout.String())

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), set.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); errors.Is(err, context.DeadlineExceeded) {
		log.Warn("shutdown timed out; closing the remaining connections")
		srv.Close()
	}
	if err := connect.Drain(nc, 5*time.Second); err != nil {
		log.Warn("nats drain", "err", err)
	}
	log.Info("wallet server stopped")
	return nil
}
