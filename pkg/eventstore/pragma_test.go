package eventstore

import (
	"context"
	"path/filepath"
	"testing"
)

// TestWriteConnectionSettings holds the write connection to the settings
// the log's guarantees and its speed rest on: WAL with a full fsync per
// commit (an acknowledged write survives a power cut), checkpoints only
// where the writer schedules them, and statement journals kept in memory
// rather than spilled to temporary files.
func TestWriteConnectionSettings(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "log.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, c := range []struct {
		pragma, want string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"wal_autocheckpoint", "0"},
		{"temp_store", "2"}, // MEMORY
	} {
		var got string
		if err := s.w.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", c.pragma, err)
		}
		if got != c.want {
			t.Errorf("PRAGMA %s = %s, want %s", c.pragma, got, c.want)
		}
	}
}
