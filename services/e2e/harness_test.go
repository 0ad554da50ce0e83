package e2e

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"coffer/pkg/history"
	"coffer/pkg/httpapi"
	"coffer/pkg/natstest"
	"coffer/pkg/redistest"
	"coffer/pkg/testwait"
	"coffer/pkg/writer"
)

// stack is the whole suite for one test.
type stack struct {
	t       *testing.T
	nats    *natstest.Server
	redis   *redistest.Server
	dataDir string
	base    string // wallet_server's base URL
	client  *http.Client

	mu       sync.Mutex
	services map[string]*service
}

// service is one running RunService.
type service struct {
	cancel context.CancelFunc
	done   chan error
	logs   *logSink
}

func startStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{
		t:       t,
		nats:    natstest.Start(t),
		redis:   redistest.Start(t),
		dataDir: t.TempDir(),
		// Answers are checked as the server gave them: a redirect is
		// never followed (the API has none to give).
		client: &http.Client{Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
		services: map[string]*service{},
	}
	s.start("wallet_writer")
	s.start("history_writer")
	s.base = s.baseURL(s.start("wallet_server"))
	s.waitReady()
	return s
}

// baseURL waits for a wallet_server to say where it listens.
func (s *stack) baseURL(srv *service) string {
	s.t.Helper()
	line := srv.logs.wait(s.t, `"msg":"listening"`, 10*time.Second)
	var l struct{ Addr string }
	if err := json.Unmarshal([]byte(line), &l); err != nil {
		s.t.Fatalf("listening line %q: %v", line, err)
	}
	return "http://" + l.Addr
}

func (s *stack) env(extra map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := extra[k]; ok {
			return v
		}
		switch k {
		case "NATS_URL":
			return s.nats.ClientURL()
		case "REDIS_URL":
			return s.redis.URL()
		case "DATA_DIR":
			return s.dataDir
		case "HTTP_ADDR", "ADMIN_ADDR":
			return "127.0.0.1:0"
		case "LOG_LEVEL":
			return "debug"
		case "WRITER_LEASE_TTL":
			return "2s"
		}
		return ""
	}
}

var runners = map[string]func(context.Context, func(string) string, io.Writer, io.Writer) error{
	"wallet_writer":  writer.RunService,
	"history_writer": history.RunService,
	"wallet_server":  httpapi.RunService,
}

// start runs a service until the test ends or stop is called.
func (s *stack) start(name string) *service {
	return s.startWith(name, nil)
}

// startWith runs a service with some settings changed; name may carry a
// suffix after "#" to run a second instance ("wallet_server#slow").
func (s *stack) startWith(name string, extra map[string]string) *service {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	svc := &service{cancel: cancel, done: make(chan error, 1), logs: &logSink{}}
	run := runners[strings.SplitN(name, "#", 2)[0]]
	go func() { svc.done <- run(ctx, s.env(extra), svc.logs, svc.logs) }()
	s.mu.Lock()
	s.services[name] = svc
	s.mu.Unlock()
	s.t.Cleanup(func() {
		s.stop(name)
		if s.t.Failed() {
			s.t.Logf("%s logs:\n%s", name, svc.logs.String())
		}
	})
	return svc
}

// stop stops a service gracefully and waits for it.
func (s *stack) stop(name string) {
	s.t.Helper()
	s.mu.Lock()
	svc := s.services[name]
	delete(s.services, name)
	s.mu.Unlock()
	if svc == nil {
		return
	}
	svc.cancel()
	select {
	case err := <-svc.done:
		if err != nil {
			s.t.Errorf("%s stopped with: %v", name, err)
		}
	case <-time.After(20 * time.Second):
		s.t.Errorf("%s did not stop within 20s", name)
	}
}

func (s *stack) logs(name string) *logSink {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.services[name].logs
}

func (s *stack) waitReady() {
	s.t.Helper()
	eventually(s.t, 15*time.Second, "wallet_server ready", func() bool {
		st, _, _ := s.do("GET", "/readyz", "", nil)
		return st == http.StatusOK
	})
}

// do sends one request and returns status, headers and body; a transport
// failure fails the test, so call it only from the test goroutine.
func (s *stack) do(method, path, body string, hdr map[string]string) (int, http.Header, []byte) {
	s.t.Helper()
	st, h, b, err := s.request(method, path, body, hdr)
	if err != nil {
		s.t.Fatal(err)
	}
	return st, h, b
}

// request is do for any goroutine.
func (s *stack) request(method, path, body string, hdr map[string]string) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	if body != "" {
		// What curl -d sends: the API must read JSON anyway.
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	return resp.StatusCode, resp.Header, b, nil
}

// writerDB opens the writer's SQLite file read-only.
func (s *stack) writerDB() *sql.DB {
	return s.openDB("wallet_writer-p0.db")
}

func (s *stack) historyDB() *sql.DB {
	return s.openDB("history.db")
}

func (s *stack) openDB(name string) *sql.DB {
	s.t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.dataDir, name)+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { db.Close() })
	return db
}

func queryInt(t *testing.T, db *sql.DB, q string, args ...any) int64 {
	t.Helper()
	var n sql.NullInt64
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n.Int64
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testwait.Until(t, within, what, cond)
}

// logSink collects a service's JSON log lines.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// wait returns the first line containing substr.
func (l *logSink) wait(t *testing.T, substr string, within time.Duration) string {
	t.Helper()
	var found string
	eventually(t, within, "log line with "+substr, func() bool {
		sc := bufio.NewScanner(strings.NewReader(l.String()))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if strings.Contains(sc.Text(), substr) {
				found = sc.Text()
				return true
			}
		}
		return false
	})
	return found
}
