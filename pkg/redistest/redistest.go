// Package redistest runs a real redis-server as a child process of the test,
// on a unix socket in the test's temp dir, without persistence. Import it
// only from _test.go files. A missing redis-server fails the test with the
// command that installs it; it never skips.
package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a running redis-server.
type Server struct {
	Socket string // the unix socket path
	cmd    *exec.Cmd
	dir    string
}

// Start runs a redis-server for the rest of tb.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redistest: redis-server is not installed (%v); install it with `apt-get install -y redis-server` or run ./build.sh, which does", err)
	}
	// unix socket paths are limited to ~108 bytes; t.TempDir can be longer.
	dir, err := os.MkdirTemp("", "redistest")
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	s := &Server{Socket: filepath.Join(dir, "redis.sock"), dir: dir}
	s.start(tb, bin)
	tb.Cleanup(func() {
		s.Stop()
		os.RemoveAll(dir)
	})
	return s
}

func (s *Server) start(tb testing.TB, bin string) {
	tb.Helper()
	s.cmd = exec.Command(bin,
		"--port", "0",
		"--unixsocket", s.Socket,
		"--unixsocketperm", "700",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--loglevel", "warning",
	)
	var out strings.Builder
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	if err := s.cmd.Start(); err != nil {
		tb.Fatalf("redistest: start redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: s.Socket, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.Stop()
			tb.Fatalf("redistest: redis-server not answering PING within 10s: %v\n%s", err, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Restart stops the server and starts a fresh, empty one on the same socket.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.Stop()
	bin, _ := exec.LookPath("redis-server")
	s.start(tb, bin)
}

// Stop kills the server and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
	os.Remove(s.Socket)
}

// URL is the server's address as a REDIS_URL.
func (s *Server) URL() string { return fmt.Sprintf("unix://%s", s.Socket) }

// Client returns a client closed at the end of tb.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: s.Socket})
	tb.Cleanup(func() { c.Close() })
	return c
}
