// Package natstest starts a real nats-server with JetStream inside the test
// process, on a random loopback port, storing in the test's temp dir. Import
// it only from _test.go files.
package natstest

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Server is a running test nats-server.
type Server struct {
	*server.Server
	opts *server.Options
}

// Start runs a nats-server with JetStream for the rest of tb. Port 0 picks a
// free port; a given port lets a test restart a server where clients expect it.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return StartAt(tb, -1, tb.TempDir())
}

// StartAt runs a nats-server on port (-1 for a random one) with its JetStream
// store in dir.
func StartAt(tb testing.TB, port int, dir string) *Server {
	tb.Helper()
	return start(tb, &server.Options{}, port, dir)
}

// StartWithConfig runs a nats-server configured by conf, the text of a
// nats-server configuration file, on a random port with JetStream in the
// test's temp dir: a test of a configuration the suite hands to the real
// server.
func StartWithConfig(tb testing.TB, conf string) *Server {
	tb.Helper()
	dir := tb.TempDir()
	path := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		tb.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		tb.Fatalf("natstest: configuration %q: %v", conf, err)
	}
	return start(tb, opts, -1, dir)
}

func start(tb testing.TB, opts *server.Options, port int, dir string) *Server {
	tb.Helper()
	opts.Host, opts.Port = "127.0.0.1", port
	opts.JetStream, opts.StoreDir = true, dir
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		tb.Fatalf("natstest: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		tb.Fatal("natstest: nats-server not ready within 10s")
	}
	ts := &Server{Server: s, opts: opts}
	tb.Cleanup(ts.Stop)
	return ts
}

// Map adds a subject mapping to the server's global account, as a
// "mappings" block of nats.conf does.
func (s *Server) Map(tb testing.TB, from, to string) {
	tb.Helper()
	if err := s.GlobalAccount().AddMapping(from, to); err != nil {
		tb.Fatalf("natstest: mapping %s -> %s: %v", from, to, err)
	}
}

// Stop shuts the server down and waits until it is gone.
func (s *Server) Stop() {
	s.Shutdown()
	s.WaitForShutdown()
}

// Port is the port the server listens on.
func (s *Server) Port() int { return s.Addr().(*net.TCPAddr).Port }

// Connect returns a client connection closed at the end of tb.
func (s *Server) Connect(tb testing.TB) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		tb.Fatalf("natstest: connect: %v", err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// StopJetStream turns JetStream off while core NATS keeps serving, as when
// the JetStream layer is lost; StartJetStream brings it back from its store.
func (s *Server) StopJetStream(tb testing.TB) {
	tb.Helper()
	if err := s.DisableJetStream(); err != nil {
		tb.Fatalf("natstest: disable JetStream: %v", err)
	}
}

// StartJetStream re-enables JetStream from the server's store dir.
func (s *Server) StartJetStream(tb testing.TB) {
	tb.Helper()
	if err := s.EnableJetStream(&server.JetStreamConfig{StoreDir: s.opts.StoreDir}); err != nil {
		tb.Fatalf("natstest: enable JetStream: %v", err)
	}
}
