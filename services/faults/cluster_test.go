package faults

import (
	"bytes"
	"context"
	"database/sql"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"coffer/pkg/testwait"
)

var (
	cycles = flag.Int("cycles", 4, "kill -9 cycles of the writer (the long run uses hundreds)")
	binDir string
)

// TestMain builds the binaries the suite runs, once.
func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "coffer-faults-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	build := exec.Command("go", "build", "-trimpath", "-o", dir+"/",
		"./services/wallet_server", "./services/wallet_writer", "./services/history_writer", "github.com/nats-io/nats-server/v2")
	build.Dir = "../.."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cluster is the whole suite as separate processes.
type cluster struct {
	t       *testing.T
	dir     string
	ports   map[string]int
	extra   map[string]string // environment additions for our services
	opts    clusterOpts
	mu      sync.Mutex
	running map[string]*proc
}

// clusterOpts shape a cluster beyond the defaults.
type clusterOpts struct {
	// natsConf, if set, is given to nats-server as its config file.
	natsConf string
	// writers are the wallet_writer processes and each one's own
	// settings; nil means one, "wallet_writer", with none. A name may
	// carry a suffix ("wallet_writer#b") to run several.
	writers map[string]map[string]string
	// toolEnv is added to the environment of `wallet_writer verify`.
	toolEnv map[string]string
	// natsCluster runs three clustered nats-servers (nats-1, nats-2,
	// nats-3) instead of one, and gives the services all three URLs.
	natsCluster bool
	// redisSentinel adds a Redis replica and a Sentinel watching the
	// primary as "coffer", and gives the services the Sentinel's URL.
	redisSentinel bool
	// redisCluster runs a three-primary Redis Cluster (redis-c1..c3)
	// instead of one Redis, and gives the services a redis-cluster:// URL.
	redisCluster bool
}

// redisNodes are the primaries of a Redis Cluster.
var redisNodes = []string{"redis-c1", "redis-c2", "redis-c3"}

// natsNodes are the processes of a clustered NATS.
var natsNodes = []string{"nats-1", "nats-2", "nats-3"}

// natsNodeConf is one node's config: JetStream, and routes to all three.
func (c *cluster) natsNodeConf(name string) string {
	var routes []string
	for _, n := range natsNodes {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", c.ports["route-"+n]))
	}
	return fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
jetstream { store_dir: %q }
cluster {
  name: coffer
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, name, c.ports[name], filepath.Join(c.dir, name), c.ports["route-"+name], strings.Join(routes, ", "))
}

// proc is one running process; done closes when it has exited.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

var names = []string{"nats-server", "redis-server", "wallet_writer", "history_writer", "wallet_server"}

func newCluster(t *testing.T, extra map[string]string) *cluster {
	t.Helper()
	return newClusterWith(t, extra, clusterOpts{})
}

func newClusterWith(t *testing.T, extra map[string]string, opts clusterOpts) *cluster {
	t.Helper()
	if opts.writers == nil {
		opts.writers = map[string]map[string]string{"wallet_writer": nil}
	}
	for _, bin := range []string{"redis-server", "sqlite3"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed (%v): run ./build.sh deps test", bin, err)
		}
	}
	c := &cluster{t: t, dir: t.TempDir(), extra: extra, opts: opts, running: map[string]*proc{}}
	ports := []string{"http", "nats", "redis", "writer", "history"}
	if opts.redisSentinel {
		ports = append(ports, "redis-replica", "redis-sentinel")
	}
	if opts.redisCluster {
		for _, n := range redisNodes {
			ports = append(ports, n, "bus-"+n)
		}
	}
	if opts.natsCluster {
		for _, n := range natsNodes {
			ports = append(ports, n, "route-"+n)
		}
	}
	c.ports = testwait.FreePorts(t, ports...)
	t.Cleanup(func() {
		c.mu.Lock()
		var all []string
		for n := range c.running {
			all = append(all, n)
		}
		c.mu.Unlock()
		for _, n := range all {
			c.kill(n, syscall.SIGKILL)
		}
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(c.dir, "*.log"))
			for _, f := range logs {
				n := strings.TrimSuffix(filepath.Base(f), ".log")
				b, _ := os.ReadFile(filepath.Join(c.dir, n+".log"))
				if len(b) > 4000 {
					b = b[len(b)-4000:]
				}
				t.Logf("--- %s.log (tail) ---\n%s", n, b)
			}
		}
	})
	for _, n := range names {
		if n == "nats-server" && opts.natsCluster {
			for _, node := range natsNodes {
				c.start(node)
			}
			continue
		}
		if n == "redis-server" && opts.redisCluster {
			var addrs []string
			for _, node := range redisNodes {
				c.start(node)
				addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", c.ports[node]))
			}
			if out, err := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...), "--cluster-yes")...).CombinedOutput(); err != nil {
				t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
			}
			eventually(t, 30*time.Second, "the Redis Cluster ok", func() bool {
				out, _ := exec.Command("redis-cli", "-p", fmt.Sprint(c.ports[redisNodes[0]]), "cluster", "info").Output()
				return strings.Contains(string(out), "cluster_state:ok")
			})
			continue
		}
		if n == "redis-server" && opts.redisSentinel {
			c.start(n)
			c.start("redis-replica")
			c.start("redis-sentinel")
			continue
		}
		if n != "wallet_writer" {
			c.start(n)
			continue
		}
		for w := range opts.writers {
			c.start(w)
		}
	}
	c.waitReady(30 * time.Second)
	return c
}

func (c *cluster) base() string { return fmt.Sprintf("http://127.0.0.1:%d", c.ports["http"]) }

func (c *cluster) env() []string {
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", c.ports["nats"])
	if c.opts.natsCluster {
		var urls []string
		for _, n := range natsNodes {
			urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", c.ports[n]))
		}
		natsURL = strings.Join(urls, ",")
	}
	redisURL := fmt.Sprintf("redis://127.0.0.1:%d/0", c.ports["redis"])
	if c.opts.redisSentinel {
		redisURL = fmt.Sprintf("redis://127.0.0.1:%d/0?master_name=coffer", c.ports["redis-sentinel"])
	}
	if c.opts.redisCluster {
		redisURL = fmt.Sprintf("redis-cluster://127.0.0.1:%d?addr=127.0.0.1:%d&addr=127.0.0.1:%d",
			c.ports[redisNodes[0]], c.ports[redisNodes[1]], c.ports[redisNodes[2]])
	}
	env := append(os.Environ(),
		"NATS_URL="+natsURL,
		"REDIS_URL="+redisURL,
		fmt.Sprintf("HTTP_ADDR=127.0.0.1:%d", c.ports["http"]),
		"DATA_DIR="+c.dir,
		"LOG_LEVEL=info",
	)
	for k, v := range c.extra {
		env = append(env, k+"="+v)
	}
	return env
}

// start runs one process, appending its output to <name>.log.
func (c *cluster) start(name string) {
	c.t.Helper()
	var cmd *exec.Cmd
	switch name {
	case "nats-server":
		args := []string{"-a", "127.0.0.1", "-p", fmt.Sprint(c.ports["nats"]), "-js", "-sd", filepath.Join(c.dir, "nats")}
		if c.opts.natsConf != "" {
			conf := filepath.Join(c.dir, "nats.conf")
			if err := os.WriteFile(conf, []byte(c.opts.natsConf), 0o644); err != nil {
				c.t.Fatal(err)
			}
			args = append(args, "-c", conf)
		}
		cmd = exec.Command(filepath.Join(binDir, "nats-server"), args...)
	case "nats-1", "nats-2", "nats-3":
		conf := filepath.Join(c.dir, name+".conf")
		if err := os.WriteFile(conf, []byte(c.natsNodeConf(name)), 0o644); err != nil {
			c.t.Fatal(err)
		}
		cmd = exec.Command(filepath.Join(binDir, "nats-server"), "-c", conf)
	case "redis-c1", "redis-c2", "redis-c3":
		dir := filepath.Join(c.dir, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			c.t.Fatal(err)
		}
		cmd = exec.Command("redis-server", "--bind", "127.0.0.1", "--port", fmt.Sprint(c.ports[name]),
			"--cluster-enabled", "yes", "--cluster-port", fmt.Sprint(c.ports["bus-"+name]),
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--save", "", "--appendonly", "no", "--dir", dir)
	case "redis-replica":
		dir := filepath.Join(c.dir, "replica")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			c.t.Fatal(err)
		}
		cmd = exec.Command("redis-server", "--bind", "127.0.0.1", "--port", fmt.Sprint(c.ports["redis-replica"]),
			"--replicaof", "127.0.0.1", fmt.Sprint(c.ports["redis"]), "--save", "", "--appendonly", "no", "--dir", dir)
	case "redis-sentinel":
		conf := filepath.Join(c.dir, "sentinel.conf") // Sentinel rewrites it: it must be its own
		if err := os.WriteFile(conf, []byte(fmt.Sprintf(`bind 127.0.0.1
port %d
dir %s
sentinel monitor coffer 127.0.0.1 %d 1
sentinel down-after-milliseconds coffer 1000
sentinel failover-timeout coffer 10000
`, c.ports["redis-sentinel"], c.dir, c.ports["redis"])), 0o644); err != nil {
			c.t.Fatal(err)
		}
		cmd = exec.Command("redis-server", conf, "--sentinel")
	case "redis-server":
		cmd = exec.Command("redis-server", "--bind", "127.0.0.1", "--port", fmt.Sprint(c.ports["redis"]),
			"--save", "", "--appendonly", "no", "--dir", c.dir)
	case "wallet_writer":
		cmd = exec.Command(filepath.Join(binDir, name))
		cmd.Env = append(c.env(), fmt.Sprintf("ADMIN_ADDR=127.0.0.1:%d", c.ports["writer"]))
	case "wallet_writer#a", "wallet_writer#b", "wallet_writer#c":
		cmd = exec.Command(filepath.Join(binDir, "wallet_writer"))
		cmd.Env = append(c.env(), "ADMIN_ADDR=127.0.0.1:0")
		for k, v := range c.opts.writers[name] {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	case "history_writer":
		cmd = exec.Command(filepath.Join(binDir, name))
		cmd.Env = append(c.env(), fmt.Sprintf("ADMIN_ADDR=127.0.0.1:%d", c.ports["history"]))
	case "wallet_server":
		cmd = exec.Command(filepath.Join(binDir, name))
		cmd.Env = c.env()
	}
	logf, err := os.OpenFile(filepath.Join(c.dir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait() //nolint:errcheck // exits are the point of this suite
		logf.Close()
		close(p.done)
	}()
	c.mu.Lock()
	c.running[name] = p
	c.mu.Unlock()
	if name == "nats-server" || name == "redis-server" {
		port := c.ports[strings.TrimSuffix(name, "-server")]
		eventually(c.t, 10*time.Second, name+" listening", func() bool { return listening(port) })
	}
	if (strings.HasPrefix(name, "nats-") && name != "nats-server") || strings.HasPrefix(name, "redis-") && name != "redis-server" {
		eventually(c.t, 10*time.Second, name+" listening", func() bool { return listening(c.ports[name]) })
	}
}

// kill sends sig to a process and waits until it is gone.
func (c *cluster) kill(name string, sig syscall.Signal) {
	c.mu.Lock()
	p := c.running[name]
	delete(c.running, name)
	c.mu.Unlock()
	if p == nil {
		return
	}
	p.cmd.Process.Signal(sig) //nolint:errcheck // it may be gone already
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill() //nolint:errcheck // last resort
		<-p.done
	}
}

// signal sends sig without forgetting the process (SIGSTOP, SIGCONT).
func (c *cluster) signal(name string, sig syscall.Signal) {
	c.t.Helper()
	c.mu.Lock()
	p := c.running[name]
	c.mu.Unlock()
	if err := p.cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("signal %s: %v", name, err)
	}
}

func listening(port int) bool {
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
	if err == nil {
		conn.Close()
	}
	return err == nil
}

func (c *cluster) waitReady(within time.Duration) {
	c.t.Helper()
	eventually(c.t, within, "the stack ready", func() bool {
		st, _, _, err := request(c.base(), "GET", "/readyz", "", nil)
		return err == nil && st == 200
	})
}

// db opens one of the SQLite files read-only.
func (c *cluster) db(name string) *sql.DB {
	c.t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(c.dir, name)+"?mode=ro&_busy_timeout=10000")
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { db.Close() })
	return db
}

// verify runs `wallet_writer verify` against the cluster.
func (c *cluster) verify() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "wallet_writer"), "verify")
	cmd.Env = c.env()
	for k, v := range c.opts.toolEnv {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (c *cluster) log(name string) string {
	b, _ := os.ReadFile(filepath.Join(c.dir, name+".log"))
	return string(b)
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testwait.Until(t, within, what, cond)
}
