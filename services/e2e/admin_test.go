package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

// adminURL waits for a service's admin listener and returns its base URL.
func (s *stack) adminURL(name string) string {
	s.t.Helper()
	line := s.logs(name).wait(s.t, `"msg":"admin listening"`, 10*time.Second)
	var l struct{ Addr string }
	if err := json.Unmarshal([]byte(line), &l); err != nil {
		s.t.Fatalf("admin line %q: %v", line, err)
	}
	return "http://" + l.Addr
}

func getJSON(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %s: %v", url, b, err)
	}
	return resp.StatusCode, v
}

func TestAdminProbes(t *testing.T) {
	s := startStack(t)
	for _, name := range []string{"wallet_writer", "history_writer"} {
		base := s.adminURL(name)
		if st, _ := getJSON(t, base+"/healthz"); st != 200 {
			t.Fatalf("%s healthz: %d", name, st)
		}
		eventually(t, 10*time.Second, name+" ready", func() bool {
			st, _ := getJSON(t, base+"/readyz")
			return st == 200
		})
	}
	writer := s.adminURL("wallet_writer")
	s.redis.Stop()
	st, body := getJSON(t, writer+"/readyz")
	checks, _ := body["checks"].(map[string]any)
	if st != 503 || checks["redis"] == "ok" || checks["sqlite"] != "ok" || checks["nats"] != "ok" {
		t.Fatalf("writer readyz with Redis down: %d %v", st, body)
	}
	if st, _ := getJSON(t, writer+"/healthz"); st != 200 {
		t.Fatalf("writer healthz with Redis down: %d", st)
	}
}
