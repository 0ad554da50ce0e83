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
	"coffer/pkg/readmodel"
)

// RunService is wallet_server's whole life: settings through getenv, JSON
// logs to stdout, serving HTTP until ctx ends, then in-flight requests are
// given SHUTDOWN_TIMEOUT to finish before NATS is drained.
func RunService(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	env := config.New(getenv)
	addr := env.String("HTTP_ADDR", ":8080")
	natsURL := env.String("NATS_URL", "nats://127.0.0.1:4222")
	redisURL := env.String("REDIS_URL", "redis://127.0.0.1:6379/0")
	level := env.String("LOG_LEVEL", "info")
	writeTimeout := env.Duration("WRITE_TIMEOUT", 5*time.Second)
	shutdownTimeout := env.Duration("SHUTDOWN_TIMEOUT", 10*time.Second)
	if err := env.Err(); err != nil {
		return err
	}
	log, err := connect.Logger(stdout, level)
	if err != nil {
		return err
	}
	log = log.With("service", "wallet_server")

	rdb, err := connect.Redis(redisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	nc, err := connect.NATS(natsURL, "wallet_server", log)
	if err != nil {
		return err
	}
	defer nc.Close()

	srv := &http.Server{
		Handler:           NewServer(log, readmodel.New(rdb), bus.NewClient(nc, writeTimeout), time.Now),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      writeTimeout + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          nil,
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("HTTP_ADDR %s: %w", addr, err)
	}
	log.Info("listening", "addr", ln.Addr().String(), "write_timeout", writeTimeout.String())

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		log.Warn("shutdown timed out; closing the remaining connections")
		srv.Close()
	}
	if derr := connect.Drain(nc, 5*time.Second); derr != nil {
		log.Warn("nats drain", "err", derr)
	}
	log.Info("wallet server stopped")
	return nil
}
