package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"coffer/pkg/history"
	"coffer/pkg/httpapi"
	"coffer/pkg/readmodel"
	"coffer/pkg/wallet"
	"coffer/pkg/writer"
)

func (s *stack) tool(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := writer.Command(t.Context(), args, s.env(nil), &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestVerifyAndRebuild(t *testing.T) {
	s := startStack(t)
	ids := []string{ksuid.New().String(), ksuid.New().String(), ksuid.New().String()}
	for i, id := range ids {
		for j := range 4 {
			post(s, id, "credit", int64(10*(i+1)+j))
		}
		post(s, id, "debit", 1_000_000) // a rejection, in the log and in Redis
		post(s, id, "debit", 3)
	}

	out, err := s.tool(t, "verify")
	if err != nil || !strings.Contains(out, "verified 3 wallets, 0 transfers, 0 items, 0 orders, 18 events") || !strings.Contains(out, ": 0 problems") {
		t.Fatalf("verify of a healthy stack: %v\n%s", err, out)
	}

	// Corrupt Redis in four ways.
	rc := s.redis.Client(t)
	ctx := t.Context()
	orphan := ksuid.New().String()
	for _, cmd := range [][]any{
		{"SET", readmodel.StateKey(wallet.Name, ids[0]), `{"wallet_id":"` + ids[0] + `","balance":999999,"version":6,"updated_at":"2026-01-01T00:00:00Z"}`},
		{"ZREMRANGEBYSCORE", readmodel.ListKey(wallet.Name, ids[1], wallet.ListTransactions), 2, 2},
		{"SET", readmodel.StateKey(wallet.Name, ids[2]), "garbage"},
		{"SET", readmodel.StateKey(wallet.Name, orphan), `{"wallet_id":"x","balance":5,"version":1}`},
	} {
		if err := rc.Do(ctx, cmd...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	out, err = s.tool(t, "verify")
	if !errors.Is(err, writer.ErrMismatch) {
		t.Fatalf("verify of a corrupted Redis: %v\n%s", err, out)
	}
	for _, want := range []string{
		"MISMATCH wallet " + ids[0] + `: Redis has {"wallet_id":"` + ids[0] + `","balance":999999,"version":6,`,
		"MISMATCH wallet " + ids[1] + ": Redis has 4 tx entries; the log has 5",
		"MISMATCH wallet " + ids[2] + `: Redis has garbage; the log has {"wallet_id":"` + ids[2] + `","balance":`,
		"MISMATCH wallet " + orphan + ": Redis holds keys for a stream that has no events in the log",
		": 4 problems",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}

	// Rebuild refuses to run beside the writer, then repairs everything.
	if out, err := s.tool(t, "rebuild"); !errors.Is(err, writer.ErrWriterRunning) {
		t.Fatalf("rebuild beside a live writer: %v\n%s", err, out)
	}
	s.stop("wallet_writer")
	out, err = s.tool(t, "rebuild")
	if err != nil || !strings.Contains(out, "projected 3 wallets") {
		t.Fatalf("rebuild: %v\n%s", err, out)
	}
	out, err = s.tool(t, "verify")
	if err != nil || !strings.Contains(out, ": 0 problems") {
		t.Fatalf("verify after rebuild: %v\n%s", err, out)
	}
	s.start("wallet_writer")
	s.waitReady()
	if st, b := post(s, ids[0], "credit", 1); st != 200 {
		t.Fatalf("credit after rebuild: %d %s", st, b)
	}

	// A state log that disagrees with its events is found too.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.dataDir, "wallet_writer-p0.db")+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The state log is the state column of the events.
	if _, err := db.Exec(`UPDATE events SET state = '{"balance":' || (json_extract(state, '$.balance') + 1) || '}'
		WHERE domain = 'wallet' AND stream_id = ? AND version = 2`, ids[1]); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "verify finds the state log edit", func() bool {
		out, err = s.tool(t, "verify")
		return errors.Is(err, writer.ErrMismatch) && strings.Contains(out, "MISMATCH wallet "+ids[1]+`: state log has {"balance":`)
	})
}

// TestCommandLines holds each service to its command line: --help prints
// its usage and starts nothing; an argument it does not take is an error,
// not a server started anyway.
func TestCommandLines(t *testing.T) {
	noEnv := func(string) string { return "" }
	for _, c := range []struct {
		name string
		cmd  func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error
	}{
		{"wallet_writer", writer.Command},
		{"wallet_server", httpapi.Command},
		{"history_writer", history.Command},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if err := c.cmd(t.Context(), []string{"--help"}, noEnv, &out, &errOut); err != nil || !strings.HasPrefix(out.String(), "usage: "+c.name) {
				t.Fatalf("--help: %v %q", err, out.String())
			}
			out.Reset()
			if err := c.cmd(t.Context(), []string{"--frobnicate"}, noEnv, &out, &errOut); err == nil || !strings.Contains(errOut.String(), "usage: "+c.name) {
				t.Fatalf("an unknown argument: %v, stderr %q", err, errOut.String())
			}
		})
	}
}
