// Package deploy_test checks the compose stack by construction, since no
// Docker engine runs where the tests do: every service, port, volume,
// healthcheck and environment variable must match what the services read.
package deploy_test

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"coffer/pkg/history"
	"coffer/pkg/httpapi"
	"coffer/pkg/writer"
)

type compose struct {
	Services map[string]struct {
		Image       string
		Build       *struct{ Context, Dockerfile string }
		Command     []string
		Environment map[string]string
		Ports       []string
		Volumes     []string
		DependsOn   map[string]struct{ Condition string } `yaml:"depends_on"`
		Healthcheck *struct{ Test []string }
		Restart     string
		StopSignal  string   `yaml:"stop_signal"`
		Profiles    []string `yaml:"profiles"`
	}
	Volumes map[string]any
}

// load reads docker-compose.yml with its ${VAR:-default}s at their
// defaults; loadWith takes values from env first, as docker compose would.
func load(t *testing.T) compose { return loadWith(t, nil) }

var interpolation = regexp.MustCompile(`\$\{([A-Z_]+):-([^}]*)\}`)

func loadWith(t *testing.T, env map[string]string) compose {
	t.Helper()
	b, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	b = interpolation.ReplaceAllFunc(b, func(m []byte) []byte {
		sub := interpolation.FindSubmatch(m)
		if v, ok := env[string(sub[1])]; ok {
			return []byte(v)
		}
		return sub[2]
	})
	var c compose
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

// envFile reads a docker compose --env-file.
func envFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			env[k] = v
		}
	}
	return env
}

// envRead returns the names a service's SettingsFromEnv reads.
func envRead(settings func(func(string) string) error) map[string]bool {
	names := map[string]bool{}
	settings(func(k string) string { names[k] = true; return "" }) //nolint:errcheck // defaults are valid
	return names
}

var ours = map[string]struct {
	binary string
	reads  map[string]bool
}{
	"wallet_writer":   {"wallet_writer", envRead(func(g func(string) string) error { _, err := writer.SettingsFromEnv(g); return err })},
	"history_writer":  {"history_writer", envRead(func(g func(string) string) error { _, err := history.SettingsFromEnv(g); return err })},
	"wallet_server_a": {"wallet_server", envRead(func(g func(string) string) error { _, err := httpapi.SettingsFromEnv(g); return err })},
	"wallet_server_b": {"wallet_server", envRead(func(g func(string) string) error { _, err := httpapi.SettingsFromEnv(g); return err })},
}

func TestComposeStack(t *testing.T) {
	c := load(t)
	want := []string{"nats", "nats-2", "nats-3", "redis", "wallet_writer", "history_writer", "wallet_server_a", "wallet_server_b", "router"}
	var got []string
	for name := range c.Services {
		got = append(got, name)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("services %v, want %v", got, want)
	}

	for name, svc := range c.Services {
		t.Run(name, func(t *testing.T) {
			if svc.Healthcheck == nil || len(svc.Healthcheck.Test) < 2 || svc.Healthcheck.Test[0] != "CMD" {
				t.Fatalf("no real healthcheck: %+v", svc.Healthcheck)
			}
			if svc.Restart != "unless-stopped" {
				t.Errorf("restart %q, want unless-stopped", svc.Restart)
			}
			for dep, d := range svc.DependsOn {
				if _, ok := c.Services[dep]; !ok || d.Condition != "service_healthy" {
					t.Errorf("depends_on %s: %+v", dep, d)
				}
			}
			for _, v := range svc.Volumes {
				src := strings.SplitN(v, ":", 2)[0]
				if strings.HasPrefix(src, "./") {
					if _, err := os.Stat(filepath.Join("..", src)); err != nil {
						t.Errorf("volume %s: %v", v, err)
					}
				} else if _, ok := c.Volumes[src]; !ok {
					t.Errorf("named volume %s is not declared", src)
				}
			}
			o, isOurs := ours[name]
			if !isOurs {
				return
			}
			if svc.Build == nil || svc.Image != "coffer:local" || svc.StopSignal != "SIGTERM" {
				t.Fatalf("build %+v image %q stop_signal %q", svc.Build, svc.Image, svc.StopSignal)
			}
			if _, err := os.Stat(filepath.Join("..", svc.Build.Context, svc.Build.Dockerfile)); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(svc.Command, []string{o.binary}) {
				t.Errorf("command %v, want [%s]", svc.Command, o.binary)
			}
			for k := range svc.Environment {
				if !o.reads[k] {
					t.Errorf("environment sets %s, which %s never reads", k, o.binary)
				}
			}
			checkURLHost(t, c, svc.Environment["NATS_URL"], "nats", "4222")
			if o.reads["REDIS_URL"] {
				checkURLHost(t, c, svc.Environment["REDIS_URL"], "redis", "6379")
			}
			if o.reads["DATA_DIR"] {
				dir := svc.Environment["DATA_DIR"]
				if dir == "" || !slices.ContainsFunc(svc.Volumes, func(v string) bool { return strings.HasSuffix(v, ":"+dir) }) {
					t.Errorf("DATA_DIR %q is not a mounted volume: %v", dir, svc.Volumes)
				}
			}
			// The healthcheck must ask the port the service listens on.
			addr := svc.Environment["ADMIN_ADDR"]
			if o.binary == "wallet_server" {
				addr = svc.Environment["HTTP_ADDR"]
			}
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				t.Fatalf("listen address %q: %v", addr, err)
			}
			probe := svc.Healthcheck.Test[len(svc.Healthcheck.Test)-1]
			if !strings.Contains(probe, "127.0.0.1:"+port+"/") || !regexp.MustCompile(`/(healthz|readyz)$`).MatchString(probe) {
				t.Errorf("healthcheck %q does not probe port %s", probe, port)
			}
		})
	}

	if !slices.Contains(c.Services["router"].Ports, "80:80") {
		t.Errorf("router ports %v, want 80:80", c.Services["router"].Ports)
	}
}

func checkURLHost(t *testing.T, c compose, raw, service, port string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() != service || u.Port() != port {
		t.Errorf("URL %q should point at service %s port %s", raw, service, port)
	}
	if _, ok := c.Services[service]; !ok {
		t.Errorf("URL %q names no service", raw)
	}
}

// The cluster profile (deploy/cluster.env): three NATS servers routed to
// each other, every service given all three, and three replicas of what
// the writers create.
func TestComposeClusterProfile(t *testing.T) {
	env := envFile(t, "cluster.env")
	if env["COMPOSE_PROFILES"] != "cluster" {
		t.Fatalf("cluster.env does not select the cluster profile: %v", env)
	}
	c := loadWith(t, env)
	nodes := []string{"nats", "nats-2", "nats-3"}
	conf, err := os.ReadFile("nats-cluster.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		svc, ok := c.Services[n]
		if !ok {
			t.Fatalf("no service %s", n)
		}
		if n != "nats" && !slices.Contains(svc.Profiles, "cluster") {
			t.Errorf("%s is not in the cluster profile: %v", n, svc.Profiles)
		}
		if svc.Environment["NATS_NAME"] != n || !slices.Equal(svc.Command, []string{"-c", "/etc/nats/nats-cluster.conf"}) ||
			!slices.Contains(svc.Volumes, "./deploy/nats-cluster.conf:/etc/nats/nats-cluster.conf:ro") {
			t.Errorf("%s: NATS_NAME %q, command %v, volumes %v", n, svc.Environment["NATS_NAME"], svc.Command, svc.Volumes)
		}
		if !strings.Contains(string(conf), "nats-route://"+n+":6222") {
			t.Errorf("nats-cluster.conf has no route to %s", n)
		}
	}
	if len(slices.Compact(slices.Sorted(func(yield func(string) bool) {
		for _, n := range nodes {
			if !yield(c.Services[n].Volumes[0]) {
				return
			}
		}
	}))) != 3 {
		t.Error("the three NATS servers do not each have a data volume of their own")
	}
	for name := range ours {
		svc := c.Services[name]
		urls := strings.Split(svc.Environment["NATS_URL"], ",")
		if len(urls) != 3 {
			t.Errorf("%s: NATS_URL %q, want all three servers", name, svc.Environment["NATS_URL"])
		}
		for i, u := range urls {
			checkURLHost(t, c, u, nodes[i], "4222")
		}
		if ours[name].reads["NATS_REPLICAS"] && svc.Environment["NATS_REPLICAS"] != "3" {
			t.Errorf("%s: NATS_REPLICAS %q, want 3", name, svc.Environment["NATS_REPLICAS"])
		}
	}
	out, err := exec.Command("docker-compose", "--env-file", "cluster.env", "-f", "../docker-compose.yml", "config", "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose config with the cluster profile: %v\n%s", err, out)
	}
}

// The router sends traffic to every wallet_server replica on its HTTP port.
func TestNginxUpstreams(t *testing.T) {
	c := load(t)
	conf, err := os.ReadFile("nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	servers := regexp.MustCompile(`(?m)^\s*server\s+([\w.-]+):(\d+)`).FindAllStringSubmatch(string(conf), -1)
	if len(servers) != 2 {
		t.Fatalf("upstream servers %v, want the two replicas", servers)
	}
	for _, s := range servers {
		svc, ok := c.Services[s[1]]
		if !ok {
			t.Fatalf("upstream %s is not a compose service", s[1])
		}
		if svc.Environment["HTTP_ADDR"] != ":"+s[2] {
			t.Errorf("upstream %s:%s but HTTP_ADDR %q", s[1], s[2], svc.Environment["HTTP_ADDR"])
		}
	}
	for _, want := range []string{"listen 80;", "X-Request-Id"} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("nginx.conf lacks %q", want)
		}
	}
	// The event streams pass unbuffered, open past the answers' timeout.
	streams := regexp.MustCompile(`(?s)location ~ (\S+) \{(.*?)\}`).FindStringSubmatch(string(conf))
	if streams == nil {
		t.Fatal("nginx.conf has no location for the event streams")
	}
	for _, want := range []string{"proxy_buffering off;", "proxy_read_timeout 1h;", "proxy_pass http://wallet_server;"} {
		if !strings.Contains(streams[2], want) {
			t.Errorf("the event streams' location lacks %q", want)
		}
	}
	paths := regexp.MustCompile(streams[1])
	for _, path := range []string{"/events", "/wallet/2pJ1NbW1uTJ3XQw2fQ4G7mVj0aZ/events", "/transfers/x/events", "/orders/x/events"} {
		if !paths.MatchString(path) {
			t.Errorf("the event streams' location %s does not take %s", streams[1], path)
		}
	}
	for _, path := range []string{"/wallet/x/balance", "/events/x", "/wallet/x/events/y"} {
		if paths.MatchString(path) {
			t.Errorf("the event streams' location %s takes %s, which is no stream", streams[1], path)
		}
	}
}

// The Dockerfile builds every service directory the compose file runs.
func TestDockerfileBuildsEveryService(t *testing.T) {
	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range ours {
		pkg := "./services/" + o.binary
		if !strings.Contains(string(df), pkg) {
			t.Errorf("Dockerfile does not build %s", pkg)
		}
		if _, err := os.Stat(filepath.Join("..", pkg, "main.go")); err != nil {
			t.Error(err)
		}
	}
	if !strings.Contains(string(df), "CGO_ENABLED=0") {
		t.Error("Dockerfile does not build static binaries")
	}
}

// docker-compose itself accepts the file.
func TestDockerComposeConfig(t *testing.T) {
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatalf("docker-compose is not installed (%v): run ./build.sh deps, or apt-get install -y docker-compose", err)
	}
	out, err := exec.Command(bin, "-f", "../docker-compose.yml", "config", "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
	fmt.Fprint(os.Stderr, string(out))
}
