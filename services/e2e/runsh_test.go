package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"coffer/pkg/testwait"
)

func listening(port int) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// The local stack the way a user runs it: ./run.sh --detach on chosen ports,
// real traffic, a crashed service restarted, ./run.sh stop, and a second
// start that finds the data again.
func TestRunScript(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	ports := testwait.FreePorts(t, "http", "nats", "redis", "writer", "history")
	dataDir := t.TempDir()
	env := append(os.Environ(),
		fmt.Sprintf("HTTP_ADDR=127.0.0.1:%d", ports["http"]),
		fmt.Sprintf("NATS_URL=nats://127.0.0.1:%d", ports["nats"]),
		fmt.Sprintf("REDIS_URL=redis://127.0.0.1:%d/0", ports["redis"]),
		fmt.Sprintf("WALLET_WRITER_ADMIN_ADDR=127.0.0.1:%d", ports["writer"]),
		fmt.Sprintf("HISTORY_WRITER_ADMIN_ADDR=127.0.0.1:%d", ports["history"]),
		"DATA_DIR="+dataDir,
	)
	script := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(root, "run.sh"), args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			log, _ := os.ReadFile(filepath.Join(dataDir, "run.log"))
			t.Fatalf("run.sh %v: %v\n%s\n--- run.log ---\n%s", args, err, out, log)
		}
		return string(out)
	}
	t.Cleanup(func() {
		stop := exec.Command(filepath.Join(root, "run.sh"), "stop")
		stop.Env = env // the same DATA_DIR, so it stops this stack and only this one
		stop.Run()     //nolint:errcheck // best effort after a failure
	})

	out := script("--detach")
	base := fmt.Sprintf("http://127.0.0.1:%d", ports["http"])
	if !strings.Contains(out, "Coffer is ready at "+base) {
		t.Fatalf("run.sh --detach said:\n%s", out)
	}
	checkGOMAXPROCS(t, dataDir)
	loadOut, code := runPython(t, "loadtest", "--url", base, "--wallets", "3", "--workers", "4", "--count", "200", "--seed", "2")
	if code != 0 {
		t.Fatalf("loadtest against run.sh: exit %d\n%s", code, loadOut)
	}

	// A wallet to find again after the restart.
	resp, err := http.Post(base+"/wallet", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var w struct {
		WalletID string `json:"wallet_id"`
	}
	json.NewDecoder(resp.Body).Decode(&w) //nolint:errcheck // checked below
	resp.Body.Close()
	resp, err = http.Post(base+"/wallet/"+w.WalletID+"/credit", "", strings.NewReader(`{"amount": 777}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("credit: %v %v", resp, err)
	}
	resp.Body.Close()

	// kill -9 the history writer: run.sh restarts it.
	if err := syscall.Kill(pidOf(t, "history_writer", dataDir), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "history_writer restarted", func() bool {
		log, _ := os.ReadFile(filepath.Join(dataDir, "run.log"))
		return strings.Contains(string(log), "history_writer exited with status 137; restarting") && listening(ports["history"])
	})

	script("stop")
	for name, port := range ports {
		if listening(port) {
			t.Errorf("%s port %d still open after run.sh stop", name, port)
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, "run.pid")); !os.IsNotExist(err) {
		t.Errorf("run.pid left behind: %v", err)
	}

	script("--detach")
	resp, err = http.Get(base + "/wallet/" + w.WalletID + "/balance")
	if err != nil {
		t.Fatal(err)
	}
	var bal struct{ Balance int64 }
	json.NewDecoder(resp.Body).Decode(&bal) //nolint:errcheck // checked below
	resp.Body.Close()
	if bal.Balance != 777 {
		t.Fatalf("balance after a restart of the stack: %d, want 777", bal.Balance)
	}
	script("stop")
}

// checkGOMAXPROCS holds run.sh to its rule for the Go runtime: on two cores
// or fewer, the mostly serial services run with one P and wallet_server
// with the runtime's default; a GOMAXPROCS of the caller reaches every one.
func checkGOMAXPROCS(t *testing.T, dataDir string) {
	t.Helper()
	for _, binary := range []string{"nats-server", "wallet_writer", "history_writer", "wallet_server"} {
		want := os.Getenv("GOMAXPROCS")
		if want == "" && runtime.NumCPU() <= 2 && binary != "wallet_server" {
			want = "1"
		}
		environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pidOf(t, binary, dataDir)))
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for _, kv := range strings.Split(string(environ), "\x00") {
			if v, ok := strings.CutPrefix(kv, "GOMAXPROCS="); ok {
				got = v
			}
		}
		if got != want {
			t.Errorf("%s runs with GOMAXPROCS=%q, want %q (%d cores)", binary, got, want, runtime.NumCPU())
		}
	}
}

// pidOf finds the process running binary with DATA_DIR=dataDir in its environment.
func pidOf(t *testing.T, binary, dataDir string) int {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		comm, _ := os.ReadFile(d + "/comm")
		if strings.TrimSpace(string(comm)) != binary {
			continue
		}
		environ, _ := os.ReadFile(d + "/environ")
		if bytes.Contains(environ, []byte("DATA_DIR="+dataDir+"\x00")) {
			pid, _ := strconv.Atoi(filepath.Base(d))
			return pid
		}
	}
	t.Fatalf("no %s process with DATA_DIR=%s", binary, dataDir)
	return 0
}
