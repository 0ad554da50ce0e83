package connect

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestLogger: each documented level logs JSON lines naming the service at
// that level and above; anything else is refused with the variable's name
// and the levels it takes.
func TestLogger(t *testing.T) {
	for _, level := range []string{"debug", "info", "warn", "error"} {
		t.Run(level, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := Logger(&buf, level, "svc")
			if err != nil {
				t.Fatal(err)
			}
			log.Debug("d")
			log.Error("e")
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			want := 1
			if level == "debug" {
				want = 2
			}
			if len(lines) != want {
				t.Fatalf("%d lines, want %d: %q", len(lines), want, buf.String())
			}
			var rec map[string]any
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rec); err != nil || rec["service"] != "svc" || rec["msg"] != "e" {
				t.Fatalf("last line %q (%v)", lines[len(lines)-1], err)
			}
		})
	}
	_, err := Logger(&bytes.Buffer{}, "loud", "svc")
	if err == nil || !strings.Contains(err.Error(), `LOG_LEVEL="loud"`) || !strings.Contains(err.Error(), "debug, info, warn or error") {
		t.Fatalf("LOG_LEVEL=loud: %v", err)
	}
}
