// Package health serves the probes every Coffer service answers: /healthz
// (the process is alive) and /readyz (each dependency answers), and runs the
// small admin listener of the services that have no API of their own.
package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// Check is one dependency readyz asks.
type Check struct {
	Name  string
	Probe func(context.Context) error
}

// Healthz answers 200 while the process can answer at all.
func Healthz(w http.ResponseWriter, _ *http.Request) {
	write(w, http.StatusOK, map[string]any{"status": "ok"})
}

// Readyz answers 200 when every check passes within a second, else 503, and
// says which check failed and why.
func Readyz(checks ...Check) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		results := make(map[string]string, len(checks))
		status, word := http.StatusOK, "ready"
		for _, c := range checks {
			if err := c.Probe(ctx); err != nil {
				results[c.Name] = err.Error()
				status, word = http.StatusServiceUnavailable, "unavailable"
				continue
			}
			results[c.Name] = "ok"
		}
		write(w, status, map[string]any{"status": word, "checks": results})
	}
}

func write(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(body, '\n')) //nolint:errcheck // the client left
}

// Mux returns a mux with /healthz and /readyz over checks, and the Go
// profiler under /debug/pprof/ (the admin listener is for operators only);
// callers may add more routes to it.
func Mux(checks ...Check) *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", Healthz)
	m.HandleFunc("GET /readyz", Readyz(checks...))
	m.HandleFunc("GET /debug/pprof/", pprof.Index)
	m.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	m.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	m.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	m.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return m
}

// JSON returns a handler that answers with v() as JSON.
func JSON(v func() any) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { write(w, http.StatusOK, v()) }
}

// Start listens on addr at once (so a taken port fails the service at
// start), serves h in the background, and returns the function that stops
// the listener and reports how it ended. It logs the address it listens on
// ("admin listening"), so a caller that asked for port 0 can find it.
func Start(addr string, h http.Handler, log *slog.Logger) (stop func() error, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ADMIN_ADDR %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	log.Info("admin listening", "addr", ln.Addr().String())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err := srv.Shutdown(ctx)
		if serr := <-done; !errors.Is(serr, http.ErrServerClosed) {
			return serr
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return nil // a slow probe is no reason to fail a shutdown
		}
		return err
	}, nil
}

// NATSConnected is a Probe for a NATS connection's state.
func NATSConnected(isConnected func() bool) func(context.Context) error {
	return func(context.Context) error {
		if !isConnected() {
			return errors.New("not connected")
		}
		return nil
	}
}
