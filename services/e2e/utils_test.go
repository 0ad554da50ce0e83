package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/ksuid"
)

// python runs `python3 -m utils.<tool> args...` from the repository root.
func python(t *testing.T, ctx context.Context, tool string, args ...string) *exec.Cmd {
	t.Helper()
	bin, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is not installed (%v): run ./build.sh deps test, or apt-get install -y python3", err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"-m", "utils." + tool}, args...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	return cmd
}

func runPython(t *testing.T, tool string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := python(t, ctx, tool, args...).CombinedOutput()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("utils.%s: %v\n%s", tool, err, out)
		}
		code = ee.ExitCode()
	}
	return string(out), code
}

func TestPythonTools(t *testing.T) {
	s := startStack(t)

	t.Run("help", func(t *testing.T) {
		for _, tool := range []string{"curl", "loadtest"} {
			if out, code := runPython(t, tool, "--help"); code != 0 || !strings.Contains(out, "usage: python3 -m utils."+tool) {
				t.Fatalf("%s --help: exit %d\n%s", tool, code, out)
			}
		}
	})

	t.Run("loadtest conserves money", func(t *testing.T) {
		out, code := runPython(t, "loadtest", "--url", s.base, "--wallets", "5", "--workers", "4", "--count", "300", "--seed", "1")
		if code != 0 || !strings.Contains(out, "conservation OK: 5 wallets") || !strings.Contains(out, "operations  300 in") {
			t.Fatalf("loadtest exit %d:\n%s", code, out)
		}
		for _, want := range []string{"p50 ", "p90 ", "p99 ", "max ", "ops/s"} {
			if !strings.Contains(out, want) {
				t.Fatalf("loadtest output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("loadtest with overdrafts and freezes", func(t *testing.T) {
		out, code := runPython(t, "loadtest", "--url", s.base, "--wallets", "4", "--workers", "4", "--count", "300", "--seed", "2",
			"--overdraft", "300", "--lifecycle-ratio", "0.2", "--debit-ratio", "0.6")
		if code != 0 || !strings.Contains(out, "conservation OK: 4 wallets") || !strings.Contains(out, "operations  300 in") {
			t.Fatalf("loadtest exit %d:\n%s", code, out)
		}
		if strings.Contains(out, "lifecycle 0,") {
			t.Fatalf("no freeze or unfreeze went through:\n%s", out)
		}
	})

	t.Run("loadtest with holds", func(t *testing.T) {
		out, code := runPython(t, "loadtest", "--url", s.base, "--wallets", "4", "--workers", "4", "--count", "200", "--seed", "3",
			"--hold-ratio", "0.5", "--hold-expires-in", "1")
		if code != 0 || !strings.Contains(out, "conservation OK: 4 wallets") ||
			!regexp.MustCompile(`holds +[1-9][0-9]* placed: [1-9][0-9]* captured, [1-9][0-9]* voided, [1-9][0-9]* left to expire`).MatchString(out) {
			t.Fatalf("loadtest exit %d:\n%s", code, out)
		}
	})

	t.Run("loadtest with transfers", func(t *testing.T) {
		out, code := runPython(t, "loadtest", "--url", s.base, "--wallets", "6", "--workers", "6", "--count", "300", "--seed", "4",
			"--transfer-ratio", "0.5", "--debit-ratio", "0.2", "--max-amount", "300", "--reversal-ratio", "0.3")
		if code != 0 || !strings.Contains(out, "conservation OK: 6 wallets") || !strings.Contains(out, "and the total") ||
			!regexp.MustCompile(`transfers +[1-9][0-9]* completed, [1-9][0-9]* failed`).MatchString(out) ||
			!regexp.MustCompile(`reversals +[1-9][0-9]* credits and debits taken back`).MatchString(out) {
			t.Fatalf("loadtest exit %d:\n%s", code, out)
		}
	})

	t.Run("loadtest with orders", func(t *testing.T) {
		out, code := runPython(t, "loadtest", "--url", s.base, "--wallets", "6", "--workers", "6", "--count", "300", "--seed", "5",
			"--orders", "--items", "4", "--stock", "30", "--debit-ratio", "0.2", "--max-amount", "300")
		if code != 0 || !strings.Contains(out, "conservation OK: 6 wallets") || !strings.Contains(out, "units OK: 4 items") ||
			!regexp.MustCompile(`orders +[1-9][0-9]* completed, [1-9][0-9]* failed`).MatchString(out) {
			t.Fatalf("loadtest exit %d:\n%s", code, out)
		}
	})

	t.Run("curl sends one request like curl", func(t *testing.T) {
		id := ksuid.New().String()
		out, code := runPython(t, "curl", "-s", "-X", "POST", "-H", "Content-Type: application/json", "-d", `{"amount": 500}`,
			s.base+"/wallet/"+id+"/credit")
		if code != 0 || !strings.Contains(out, `"balance":500`) {
			t.Fatalf("curl credit: exit %d\n%s", code, out)
		}
		out, code = runPython(t, "curl", "-s", s.base+"/wallet/"+id+"/debit", "-d", `{"amount": 900}`)
		if code != 22 || !strings.Contains(out, `"code":"insufficient_funds"`) {
			t.Fatalf("curl refused debit: exit %d\n%s", code, out)
		}
	})

	t.Run("curl loop prints rates and status counts", func(t *testing.T) {
		id := ksuid.New().String()
		out, code := runPython(t, "curl", "--loop", "--workers", "3", "--duration", "2.5", s.base+"/wallet/"+id+"/balance")
		if code != 0 || !strings.Contains(out, " req/s  200:") || !strings.Contains(out, "total  ") {
			t.Fatalf("curl --loop: exit %d\n%s", code, out)
		}
		out, code = runPython(t, "curl", "--loop", "--count", "40", "--workers", "4", "-X", "POST", "-d", `{"amount": 1}`, s.base+"/wallet/"+id+"/credit")
		if code != 0 || !strings.Contains(out, "total  40 requests") || !strings.Contains(out, "200:40") {
			t.Fatalf("curl --loop --count 40: exit %d\n%s", code, out)
		}
		_, _, body := s.do("GET", "/wallet/"+id+"/balance", "", nil)
		if b := decode[result](t, body).Balance; b != 40 {
			t.Fatalf("balance %d after 40 looped credits of 1", b)
		}
	})

	t.Run("curl loop stops on Ctrl-C", func(t *testing.T) {
		cmd := python(t, context.Background(), "curl", "--loop", s.base+"/healthz")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("curl --loop still running 10s after SIGINT:\n%s", out.String())
		}
		if cmd.ProcessState.ExitCode() != 130 || !strings.Contains(out.String(), "total  ") {
			t.Fatalf("after SIGINT: exit %d\n%s", cmd.ProcessState.ExitCode(), out.String())
		}
	})
}
