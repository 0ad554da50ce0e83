// Command bench measures Coffer on this machine and writes BENCHMARKS.md.
//
//	./build.sh bench                 # installs wrk and redis-tools, then: go run ./utils/bench
//	go run ./utils/bench -d 10s      # seconds per scenario
//	BENCH_PROFILES=dir ./build.sh bench   # also CPU profiles of wallet_writer and wallet_server in each write scenario
//
// It starts the local stack with run.sh on loopback ports of its own and a
// fresh DATA_DIR, runs each scenario with wrk (closed loop, fixed
// connections) or with its own open-loop generator (a fixed request rate,
// latency measured from when each request was due), checks after every
// write scenario that the log, the state log and Redis agree and that every
// acknowledged write is in the log, prints each result, and rewrites the
// block between the bench markers in BENCHMARKS.md.
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/ksuid"
	_ "modernc.org/sqlite"

	"coffer/pkg/testwait"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// result is one line of the report.
type result struct {
	Name, Command              string
	Requests                   int64
	Rate                       float64 // requests per second
	P50, P99, Max              time.Duration
	OK, Refused, Other, Errors int64
	Check                      string // the conservation check's verdict, for writes
	Note                       string
	Target                     string
	commits, events            int64      // writer counters over the scenario
	stages                     [3]float64 // the committer's decide, append and finish: mean ms per commit over the scenario
	fsyncsPerSecond            float64
	eventsPerCommit            float64
	cpu                        cpuUse  // CPU per process over the scenario (writes)
	aofRewrite                 bool    // Redis rewrote its AOF during the scenario
	share                      float64 // open loop: the rate's share of the measured maximum
}

type bench struct {
	root, dataDir, base, admin, redisAddr string
	ports                                 map[string]int
	dur                                   time.Duration
	profiles                              string // BENCH_PROFILES: where CPU profiles of the write scenarios go
	transfersToo                          bool   // -transfers: end with the transfer scenario
	profiled                              int    // profiles taken so far, to number their files
	results                               []*result
	scripts                               string // dir with the wrk scripts
	env                                   []string
}

func run() error {
	dur := flag.Duration("d", 10*time.Second, "how long each scenario runs")
	out := flag.String("o", "BENCHMARKS.md", "the file whose bench block is rewritten")
	rate := flag.Float64("rate", 0, "only run the open-loop generator at this many credits/s against -url (a running stack), for -d")
	target := flag.String("url", "", "with -rate: the credit URL, e.g. http://127.0.0.1:8080/wallet/$W/credit")
	conns := flag.Int("c", 64, "with -rate: connections of the open-loop generator")
	perSecond := flag.Bool("v", false, "with -rate: also print p50, p99 and max of each second")
	transfers := flag.Bool("transfers", true, "end with the transfer and order scenarios (a stack of two partitions)")
	walletsFile := flag.String("wallets", "", "with -rate: credit the wallets listed in this file (one id a line) in turn instead of -url's; -url gives the server")
	flag.Parse()
	if *rate > 0 {
		return openLoopOnly(*target, *walletsFile, *rate, *dur, *conns, *perSecond)
	}

	root, err := filepath.Abs(".")
	if err != nil {
		return err
	}
	for _, bin := range []string{"wrk", "redis-benchmark", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s is not installed: run ./build.sh bench, which installs it", bin)
		}
	}
	b := &bench{root: root, dur: *dur, profiles: os.Getenv("BENCH_PROFILES"), transfersToo: *transfers}
	if b.ports, err = testwait.PickPorts("http", "nats", "redis", "writer", "history", "server"); err != nil {
		return err
	}
	if b.dataDir, err = os.MkdirTemp("", "coffer-bench"); err != nil {
		return err
	}
	defer os.RemoveAll(b.dataDir)
	b.base = fmt.Sprintf("http://127.0.0.1:%d", b.ports["http"])
	b.admin = fmt.Sprintf("http://127.0.0.1:%d", b.ports["writer"])
	b.redisAddr = fmt.Sprintf("127.0.0.1:%d", b.ports["redis"])
	b.env = append(os.Environ(),
		fmt.Sprintf("HTTP_ADDR=127.0.0.1:%d", b.ports["http"]),
		fmt.Sprintf("NATS_URL=nats://127.0.0.1:%d", b.ports["nats"]),
		fmt.Sprintf("REDIS_URL=redis://%s/0", b.redisAddr),
		fmt.Sprintf("WALLET_WRITER_ADMIN_ADDR=127.0.0.1:%d", b.ports["writer"]),
		fmt.Sprintf("HISTORY_WRITER_ADMIN_ADDR=127.0.0.1:%d", b.ports["history"]),
		fmt.Sprintf("WALLET_SERVER_ADMIN_ADDR=127.0.0.1:%d", b.ports["server"]),
		"DATA_DIR="+b.dataDir,
		"LOG_LEVEL=warn",
	)
	if n, err := strconv.Atoi(os.Getenv("PARTITION_COUNT")); err == nil && n > 1 && os.Getenv("WRITER_PARTITIONS") == "" {
		// run.sh gives its one writer every partition; verify checks them all.
		all := make([]string, n)
		for i := range all {
			all[i] = strconv.Itoa(i)
		}
		b.env = append(b.env, "WRITER_PARTITIONS="+strings.Join(all, ","))
	}
	if b.scripts, err = b.writeScripts(); err != nil {
		return err
	}

	fmt.Println("starting the stack with run.sh --detach ...")
	if err := b.runSh("--detach"); err != nil {
		return err
	}
	defer b.runSh("stop") //nolint:errcheck // best effort

	if err := b.scenarios(); err != nil {
		return err
	}
	report := b.report()
	fmt.Println(report)
	return writeBlock(*out, report)
}

// openLoopOnly runs the open-loop generator alone against a running stack:
// the tool for profiling one service under a steady load.
func openLoopOnly(target, walletsFile string, rate float64, d time.Duration, conns int, perSecond bool) error {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-url %q: want the full credit URL of a running stack", target)
	}
	paths := []string{u.RequestURI()}
	if walletsFile != "" {
		ids := readLines(walletsFile)
		if len(ids) == 0 {
			return fmt.Errorf("-wallets %s: no wallet ids", walletsFile)
		}
		paths = creditPaths(ids)
	}
	o, err := runOpenLoop(u.Scheme+"://"+u.Host, paths, `{"amount": 1}`, rate, d, conns)
	if err != nil {
		return err
	}
	if perSecond {
		for i, s := range o.perSecond {
			fmt.Printf("second %2d: %5d requests, p50 %s p99 %s max %s\n", i, len(s), round(quantile(s, 0.5)), round(quantile(s, 0.99)), round(quantile(s, 1)))
		}
	}
	fmt.Printf("%d requests in %s: %d ok, %d refused, %d other, %d errors; p50 %s p99 %s max %s\n",
		len(o.lat), round(o.elapsed), o.ok, o.refused, o.other, o.errs, round(o.pct(0.5)), round(o.pct(0.99)), round(o.pct(1)))
	return nil
}

func (b *bench) runSh(args ...string) error {
	cmd := exec.Command(filepath.Join(b.root, "run.sh"), args...)
	cmd.Env = b.env
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

// writeScripts makes one wrk script per scenario: common.lua plus its own.
func (b *bench) writeScripts() (string, error) {
	dir, err := os.MkdirTemp("", "coffer-bench-lua")
	if err != nil {
		return "", err
	}
	common, err := os.ReadFile(filepath.Join(b.root, "utils/bench/common.lua"))
	if err != nil {
		return "", err
	}
	for _, name := range []string{"get", "post_one", "spread", "transfer", "order"} {
		var own []byte
		if name != "get" {
			if own, err = os.ReadFile(filepath.Join(b.root, "utils/bench", name+".lua")); err != nil {
				return "", err
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name+".lua"), append(append(common, '\n'), own...), 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

func (b *bench) scenarios() error {
	hot := ksuid.New().String()
	small := ksuid.New().String()
	if _, err := b.post(small, "credit", 100); err != nil {
		return err
	}

	// (c) one hot wallet; these credits also give it its long history.
	for _, conns := range []int{16, 64} {
		if err := b.wrkWrite(fmt.Sprintf("POST credit, one hot wallet, %d connections", conns), conns,
			"post_one.lua", b.base+"/wallet/"+hot+"/credit", "≥ 5,000/s, 0 errors"); err != nil {
			return err
		}
	}
	// Top the hot wallet up to 100,000 transactions for the read scenarios.
	for {
		v, err := b.version(hot)
		if err != nil {
			return err
		}
		if v >= 100_000 {
			break
		}
		fmt.Printf("the hot wallet has %d transactions; adding more\n", v)
		if _, err := b.wrk(64, 10*time.Second, "post_one.lua", b.base+"/wallet/"+hot+"/credit"); err != nil {
			return err
		}
	}
	v, _ := b.version(hot)

	// (a), (b) reads.
	if err := b.wrkRead("GET balance, wallet with 1 transaction, 64 connections", 64, b.base+"/wallet/"+small+"/balance", "≥ 40,000/s"); err != nil {
		return err
	}
	if err := b.wrkRead(fmt.Sprintf("GET balance, wallet with %d transactions, 64 connections", v), 64, b.base+"/wallet/"+hot+"/balance", "within 10% of the 1-transaction wallet"); err != nil {
		return err
	}
	if err := b.wrkRead(fmt.Sprintf("GET transactions (first 50), wallet with %d transactions, 64 connections", v), 64, b.base+"/wallet/"+hot+"/transactions", ""); err != nil {
		return err
	}

	// (d) spread over 10,000 wallets.
	wallets, err := b.walletFile(10_000)
	if err != nil {
		return err
	}
	if err := b.wrkWrite(spreadName, 64, "spread.lua", b.base+"/", "≥ 10,000/s, 0 errors", wallets); err != nil {
		return err
	}

	// Latency under a steady load, open loop: the hot wallet at 70% of its
	// measured maximum (the target), the spread writes at 70% and then at
	// lower shares, to show where their p99 comes within 20 ms.
	hotRate := 0.7 * b.find("POST credit, one hot wallet, 64 connections").Rate
	if err := b.openLoop(fmt.Sprintf("POST credit, one hot wallet, fixed rate %.0f/s (70%% of max)", hotRate),
		hotRate, 64, "/wallet/"+hot+"/credit", nil, 0.7, latencyTarget); err != nil {
		return err
	}
	spreadMax := b.find(spreadName).Rate
	ids := readLines(wallets)
	for _, share := range spreadShares {
		target := ""
		if share == 0.7 {
			target = latencyTarget
		}
		rate := share * spreadMax
		label := fmt.Sprintf("%s %.0f/s (%.0f%% of max)", spreadLoopName, rate, 100*share)
		if err := b.openLoop(label, rate, 64, "", ids, share, target); err != nil {
			return err
		}
	}

	// (e) Redis itself.
	if err := b.redisBenchmark(); err != nil {
		return err
	}

	// Memory with 100,000 wallets loaded.
	if err := b.rss100k(); err != nil {
		return err
	}
	if !b.transfersToo {
		return nil
	}
	wallets, terr := b.transfers()
	if terr != nil {
		return terr
	}
	return b.orders(wallets)
}

// transferName is the transfer scenario's.
const transferName = "POST transfers between random wallets of 1,000 over 2 partitions, 64 connections"

// transfers measures transfers/s and their latency between random wallets
// of 1,000 split over two partitions, on a stack of its own
// (PARTITION_COUNT=2, one wallet_writer process with both, its process
// manager taking the steps), and checks afterwards that every transfer
// ended and money was conserved (wallet_writer verify across both logs).
// It returns the wallets' file, for the orders.
func (b *bench) transfers() (string, error) {
	if err := b.runSh("stop"); err != nil {
		return "", err
	}
	b.dataDir = filepath.Join(b.dataDir, "transfers") // removed with its parent
	b.env = append(b.env, "DATA_DIR="+b.dataDir, "PARTITION_COUNT=2", "WRITER_PARTITIONS=0,1")
	fmt.Println("starting a stack of 2 partitions for transfers ...")
	if err := b.runSh("--detach"); err != nil {
		return "", err
	}
	wallets, err := b.walletFile(1000)
	if err != nil {
		return "", err
	}
	const funds = 1000
	for _, w := range readLines(wallets) {
		if _, err := b.post(w, "credit", funds); err != nil {
			return "", err
		}
	}
	b.settle()
	sBefore, err := b.writerStats()
	if err != nil {
		return "", err
	}
	cpuBefore := b.cpuTimes()
	url := b.base + "/"
	w, err := b.wrk(64, b.dur, "transfer.lua", url, wallets)
	if err != nil {
		return "", err
	}
	r := b.record(transferName, b.wrkCommand(64, b.dur, "transfer.lua", url, wallets), w, "")
	elapsed := time.Duration(w.DurationUS) * time.Microsecond
	r.cpu = cpuSince(cpuBefore, b.cpuTimes(), elapsed, w.OK+w.Refused)
	if err := b.groupCommit(r, sBefore, elapsed); err != nil {
		return "", err
	}
	// The transfers in flight when wrk stopped end within a moment; verify
	// then finds each one ended, its legs once, and the money where it was.
	last, err := b.verifySettled(" transfers: ")
	want := fmt.Sprintf("balances %d = credits %d − debits 0 + in flight 0: 0 problems", 1000*funds, 1000*funds)
	switch {
	case err != nil || !strings.HasSuffix(last, want):
		r.Check = "FAILED: verify: " + last
	case w.Other > 0 || w.Errors > 0:
		r.Check = fmt.Sprintf("FAILED: %d answers neither 200 nor 409 (202: not ended within TRANSFER_WAIT), %d socket errors", w.Other, w.Errors)
	default:
		r.Check = fmt.Sprintf("OK: %d transfers completed and %d failed for funds, all ended; verify: %s", w.OK, w.Refused, last)
	}
	r.printWrite()
	return wallets, nil
}

// orderName is the order scenario's.
const orderName = "POST orders of 1 item of 100 by random wallets of 1,000 over 2 partitions, 64 connections"

// orders measures orders/s and their latency on the transfers' stack: a
// random wallet of theirs buys 1 to 3 units of a random item of 100 (stock
// enough for all, prices 1 to 10), each order reserving, paying by a
// transfer to the shop's wallet and selling; then it checks that every
// order ended and units and money were conserved (verify across both
// logs).
func (b *bench) orders(wallets string) error {
	var ids bytes.Buffer
	for i := range 100 {
		resp, err := http.Post(b.base+"/items", "application/json", strings.NewReader(fmt.Sprintf(`{"name": "bench item %d", "price": %d, "stock": 1000000000}`, i, 1+i%10)))
		if err != nil {
			return err
		}
		var v struct {
			ItemID string `json:"item_id"`
		}
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("POST /items: %d %v", resp.StatusCode, err)
		}
		ids.WriteString(v.ItemID + "\n")
	}
	items := filepath.Join(b.scripts, "items-100.txt")
	if err := os.WriteFile(items, ids.Bytes(), 0o644); err != nil {
		return err
	}
	b.settle()
	sBefore, err := b.writerStats()
	if err != nil {
		return err
	}
	cpuBefore := b.cpuTimes()
	url := b.base + "/"
	w, err := b.wrk(64, b.dur, "order.lua", url, wallets, items)
	if err != nil {
		return err
	}
	r := b.record(orderName, b.wrkCommand(64, b.dur, "order.lua", url, wallets, items), w, "")
	elapsed := time.Duration(w.DurationUS) * time.Microsecond
	r.cpu = cpuSince(cpuBefore, b.cpuTimes(), elapsed, w.OK+w.Refused)
	if err := b.groupCommit(r, sBefore, elapsed); err != nil {
		return err
	}
	last, err := b.verifySettled(" orders: ")
	switch {
	case err != nil || !strings.HasSuffix(last, ": 0 problems") || !strings.Contains(last, " 0 pending"):
		r.Check = "FAILED: verify: " + last
	case w.Other > 0 || w.Errors > 0:
		r.Check = fmt.Sprintf("FAILED: %d answers neither 200 nor 409 (202: not ended within TRANSFER_WAIT), %d socket errors", w.Other, w.Errors)
	default:
		r.Check = fmt.Sprintf("OK: %d orders completed and %d failed for funds, all ended; verify: %s", w.OK, w.Refused, last)
	}
	r.printWrite()
	return nil
}

// spreadName is the scenario of writes spread over 10,000 wallets.
const spreadName = "POST credit/debit over 10,000 wallets, 64 connections"

// spreadLoopName begins the name of each open-loop run over 10,000
// wallets; spreadShares are their rates as shares of spreadName's, the
// target's first so that it meets the same log as in earlier reports.
const spreadLoopName = "POST credit over 10,000 wallets, fixed rate"

var spreadShares = []float64{0.7, 0.55, 0.4}

// The latency target of the open-loop runs at 70%: the limit, and as the
// report's target column shows it.
const (
	latencyLimit  = 20 * time.Millisecond
	latencyTarget = "p99 ≤ 20 ms"
)

func (b *bench) find(name string) *result {
	for _, r := range b.results {
		if r.Name == name {
			return r
		}
	}
	panic("no result " + name)
}

type wrkOut struct {
	Requests, DurationUS, OK, Refused, Other, Errors int64
	P50US, P90US, P99US, MaxUS                       int64
}

func (b *bench) wrkCommand(conns int, d time.Duration, script, url string, args ...string) []string {
	threads := min(2, conns)
	cmd := []string{"wrk", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", fmt.Sprintf("%ds", int(d.Seconds())),
		"--timeout", "10s", "-s", filepath.Join(b.scripts, script), url}
	if len(args) > 0 {
		cmd = append(cmd, "--")
		cmd = append(cmd, args...)
	}
	return cmd
}

func (b *bench) wrk(conns int, d time.Duration, script, url string, args ...string) (wrkOut, error) {
	argv := b.wrkCommand(conns, d, script, url, args...)
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return wrkOut{}, fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "BENCH "); ok {
			var raw struct {
				Requests   int64 `json:"requests"`
				DurationUS int64 `json:"duration_us"`
				OK         int64 `json:"ok"`
				Refused    int64 `json:"refused"`
				Other      int64 `json:"other"`
				Errors     int64 `json:"errors"`
				P50        int64 `json:"p50_us"`
				P90        int64 `json:"p90_us"`
				P99        int64 `json:"p99_us"`
				Max        int64 `json:"max_us"`
			}
			if err := json.Unmarshal([]byte(rest), &raw); err != nil {
				return wrkOut{}, err
			}
			return wrkOut{raw.Requests, raw.DurationUS, raw.OK, raw.Refused, raw.Other, raw.Errors, raw.P50, raw.P90, raw.P99, raw.Max}, nil
		}
	}
	return wrkOut{}, fmt.Errorf("no BENCH line from wrk:\n%s", out)
}

func (b *bench) record(name string, argv []string, w wrkOut, target string) *result {
	r := &result{
		Name: name, Command: strings.Join(argv, " "), Requests: w.Requests,
		Rate: float64(w.Requests) / (float64(w.DurationUS) / 1e6),
		P50:  time.Duration(w.P50US) * time.Microsecond, P99: time.Duration(w.P99US) * time.Microsecond,
		Max: time.Duration(w.MaxUS) * time.Microsecond, OK: w.OK, Refused: w.Refused, Other: w.Other, Errors: w.Errors,
		Target: target,
	}
	b.results = append(b.results, r)
	fmt.Printf("%-75s %8.0f req/s  p50 %-8s p99 %-8s max %-8s  ok %d, 409 %d, other %d, errors %d\n",
		name, r.Rate, round(r.P50), round(r.P99), round(r.Max), r.OK, r.Refused, r.Other, r.Errors)
	return r
}

func round(d time.Duration) time.Duration {
	switch {
	case d > 100*time.Millisecond:
		return d.Round(time.Millisecond)
	case d > time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

func (b *bench) wrkRead(name string, conns int, url, target string) error {
	b.settle()
	argv := b.wrkCommand(conns, b.dur, "get.lua", url)
	w, err := b.wrk(conns, b.dur, "get.lua", url)
	if err != nil {
		return err
	}
	b.record(name, argv, w, target)
	return nil
}

// wrkWrite runs a write scenario with wrk (measureWrites).
func (b *bench) wrkWrite(name string, conns int, script, url, target string, args ...string) error {
	return b.measureWrites(conns, func() (*result, wrkOut, error) {
		w, err := b.wrk(conns, b.dur, script, url, args...)
		if err != nil {
			return nil, w, err
		}
		return b.record(name, b.wrkCommand(conns, b.dur, script, url, args...), w, target), w, nil
	})
}

// measureWrites runs a write scenario — run records its result and returns
// what it counted — once the stack has settled, and then checks it: the log
// grew by every acknowledged write plus at most inFlight writes still in
// flight when it stopped, and the log, the state log and Redis agree
// (wallet_writer verify). It also records the CPU of each process per
// write, the writer's group commits, and whether Redis rewrote its AOF
// meanwhile.
func (b *bench) measureWrites(inFlight int, run func() (*result, wrkOut, error)) error {
	b.settle()
	before, err := b.logCounts()
	if err != nil {
		return err
	}
	sBefore, err := b.writerStats()
	if err != nil {
		return err
	}
	rewrote, err := b.aofWatch()
	if err != nil {
		return err
	}
	cpuBefore := b.cpuTimes()
	profile := b.profileWrites()
	r, w, err := run()
	if err != nil {
		return err
	}
	if err := profile(r.Name); err != nil {
		return err
	}
	elapsed := time.Duration(w.DurationUS) * time.Microsecond
	r.cpu = cpuSince(cpuBefore, b.cpuTimes(), elapsed, w.OK+w.Refused)
	if r.aofRewrite, err = rewrote(); err != nil {
		return err
	}
	if err := b.groupCommit(r, sBefore, elapsed); err != nil {
		return err
	}
	r.Check = b.check(before, w, inFlight)
	r.printWrite()
	return nil
}

// profileWrites starts a CPU profile of wallet_writer and one of
// wallet_server over the scenario about to run when BENCH_PROFILES names a
// directory, and returns what saves them there under the scenario's name
// once the scenario is over (go tool pprof reads them). Without
// BENCH_PROFILES it does nothing.
func (b *bench) profileWrites() func(name string) error {
	if b.profiles == "" {
		return func(string) error { return nil }
	}
	seconds := max(1, int(b.dur.Seconds())-1)
	type got struct {
		process string
		body    []byte
		err     error
	}
	admins := map[string]string{"wallet_writer": b.admin, "wallet_server": fmt.Sprintf("http://127.0.0.1:%d", b.ports["server"])}
	done := make(chan got, len(admins))
	for process, admin := range admins {
		go func() {
			resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", admin, seconds))
			if err != nil {
				done <- got{process: process, err: err}
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("profile of %s: %s: %s", process, resp.Status, body)
			}
			done <- got{process, body, err}
		}()
	}
	return func(name string) error {
		b.profiled++
		slug := strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(name), "-"), "-")
		if err := os.MkdirAll(b.profiles, 0o755); err != nil {
			return err
		}
		var errs []error
		for range admins {
			g := <-done
			if g.err != nil {
				errs = append(errs, g.err)
				continue
			}
			file := filepath.Join(b.profiles, fmt.Sprintf("%02d-%s.%s.pb.gz", b.profiled, slug, g.process))
			fmt.Printf("    %s's CPU profile: %s\n", g.process, file)
			errs = append(errs, os.WriteFile(file, g.body, 0o644))
		}
		return errors.Join(errs...)
	}
}

// stageText says how long each commit's stages took in the writer: its
// committer decides and appends one batch while its finisher projects the
// one before to Redis and answers it, so the slower of decide+append and
// finish sets how many batches a second go through.
func (r *result) stageText() string {
	return fmt.Sprintf("per commit: decide %.2f ms + append %.2f ms, finish %.2f ms", r.stages[0], r.stages[1], r.stages[2])
}

// printWrite prints what a write scenario left besides its latencies.
func (r *result) printWrite() {
	aof := ""
	if r.aofRewrite {
		aof = "; Redis rewrote its AOF meanwhile"
	}
	fmt.Printf("    %d commits (one fsync each), %.1f events per commit; %s; %s; check: %s%s\n", r.commits, r.eventsPerCommit, r.stageText(), r.cpu, r.Check, aof)
}

// settle waits until the write path's background work has caught up with
// the previous scenario — every committed event published by the writer's
// outbox and recorded by history_writer — so that a scenario does not share
// the two cores with what the one before left behind (after the hot-wallet
// top-up, history_writer was still recording for most of the next read
// scenario).
func (b *bench) settle() {
	history := fmt.Sprintf("http://127.0.0.1:%d/metrics", b.ports["history"])
	deadline := time.Now().Add(2 * time.Minute)
	for {
		outbox, err := metricSum(b.admin+"/metrics", "coffer_writer_outbox_lag_events")
		if err == nil && outbox == 0 {
			var lag float64
			if lag, err = metricSum(history, "coffer_history_consumer_lag_messages"); err == nil && lag == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			fmt.Printf("    (the outbox or history_writer had not caught up after 2 minutes: %v; going on)\n", err)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// metricSum adds up every series of a Prometheus metric at url; a missing
// metric or a NaN (a gauge that could not be read) is an error.
func metricSum(url, name string) (float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	found := false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (!strings.HasPrefix(rest, "{") && !strings.HasPrefix(rest, " ")) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil || math.IsNaN(v) {
			return 0, fmt.Errorf("%s: %q", name, line)
		}
		sum, found = sum+v, true
	}
	if !found {
		return 0, fmt.Errorf("no %s at %s", name, url)
	}
	return sum, sc.Err()
}

// groupCommit records in r the writer's commits since before, over a
// scenario that ran for elapsed.
func (b *bench) groupCommit(r *result, before writerStats, elapsed time.Duration) error {
	after, err := b.writerStats()
	if err != nil {
		return err
	}
	r.commits, r.events = after.Commits-before.Commits, after.Events-before.Events
	if r.commits > 0 {
		r.eventsPerCommit = float64(r.events) / float64(r.commits)
		a, b := after.stageTotals(), before.stageTotals()
		for i := range r.stages {
			r.stages[i] = (a[i] - b[i]) / float64(r.commits)
		}
		r.fsyncsPerSecond = float64(r.commits) / elapsed.Seconds()
	}
	return nil
}

type counts struct{ applied, rejected int64 }

func (b *bench) logCounts() (counts, error) {
	// Wait for the writer to finish what is in flight.
	time.Sleep(500 * time.Millisecond)
	var c counts
	err := b.eachLog(func(db *sql.DB) error {
		var applied, rejected int64
		err := db.QueryRow(`SELECT COALESCE(SUM(type != 'debit_rejected'), 0), COALESCE(SUM(type = 'debit_rejected'), 0) FROM events`).Scan(&applied, &rejected)
		c.applied, c.rejected = c.applied+applied, c.rejected+rejected
		return err
	})
	return c, err
}

// eachLog runs fn on each partition's event log, opened read-only.
func (b *bench) eachLog(fn func(*sql.DB) error) error {
	files, err := filepath.Glob(filepath.Join(b.dataDir, "wallet_writer-p*.db"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no event log in %s", b.dataDir)
	}
	for _, f := range files {
		db, err := sql.Open("sqlite", "file:"+f+"?mode=ro&_busy_timeout=10000")
		if err != nil {
			return err
		}
		err = fn(db)
		db.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) check(before counts, w wrkOut, conns int) string {
	after, err := b.logCounts()
	if err != nil {
		return "FAILED: " + err.Error()
	}
	applied, rejected := after.applied-before.applied, after.rejected-before.rejected
	var problems []string
	// Writes in flight when wrk stopped are applied but never acknowledged.
	if applied < w.OK || applied > w.OK+int64(conns) {
		problems = append(problems, fmt.Sprintf("%d acknowledged writes, %d in the log", w.OK, applied))
	}
	if rejected < w.Refused || rejected > w.Refused+int64(conns) {
		problems = append(problems, fmt.Sprintf("%d refusals answered, %d in the log", w.Refused, rejected))
	}
	cmd := exec.Command(filepath.Join(b.root, "bin/wallet_writer"), "verify")
	cmd.Env = b.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		problems = append(problems, "verify: "+summaries(string(out)))
	}
	if w.Other > 0 || w.Errors > 0 {
		problems = append(problems, fmt.Sprintf("%d other statuses, %d socket errors", w.Other, w.Errors))
	}
	if len(problems) > 0 {
		return "FAILED: " + strings.Join(problems, "; ")
	}
	return fmt.Sprintf("OK: %d acknowledged writes (+%d refusals) all in the log, %d more were in flight at the cut-off; verify: %s",
		w.OK, w.Refused, (applied-w.OK)+(rejected-w.Refused), summaries(string(out)))
}

// summaries are verify's summary lines (each ends in its count of
// problems): one per partition, the transfers' and the orders'.
func summaries(out string) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasSuffix(l, " problems") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return lastLine(out)
	}
	return strings.Join(lines, "; ")
}

// verifySettled runs wallet_writer verify until it passes, at most a
// minute (the operations in flight when wrk stopped end within a moment),
// and returns the last line of its output holding sub, and its error.
func (b *bench) verifySettled(sub string) (string, error) {
	var out []byte
	var err error
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(500 * time.Millisecond) {
		cmd := exec.Command(filepath.Join(b.root, "bin/wallet_writer"), "verify")
		cmd.Env = b.env
		if out, err = cmd.CombinedOutput(); err == nil || time.Now().After(deadline) {
			return lineWith(string(out), sub), err
		}
	}
}

// lineWith is the last line of s holding sub, trimmed; the last line of s
// if none does.
func lineWith(s, sub string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], sub) {
			return strings.TrimSpace(lines[i])
		}
	}
	return strings.TrimSpace(lines[len(lines)-1])
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

type writerStats struct {
	Commits  int64 `json:"commits"`
	Events   int64 `json:"events"`
	MaxBatch int64 `json:"max_batch"`
	// The committer's stages, mean milliseconds per commit since start.
	DecideMS float64 `json:"decide_ms"`
	AppendMS float64 `json:"append_ms"`
	FinishMS float64 `json:"finish_ms"`
}

// stageTotals are the stages' total milliseconds since start.
func (s writerStats) stageTotals() [3]float64 {
	c := float64(s.Commits)
	return [3]float64{s.DecideMS * c, s.AppendMS * c, s.FinishMS * c}
}

// writerStats reads the writer's totals; a writer of several partitions
// reports each, which are added up.
func (b *bench) writerStats() (writerStats, error) {
	var s writerStats
	resp, err := http.Get(b.admin + "/debug/stats")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return s, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return s, err
	}
	if _, single := top["commits"]; single {
		return s, json.Unmarshal(body, &s)
	}
	for _, raw := range top { // keyed by partition
		var p writerStats
		if err := json.Unmarshal(raw, &p); err != nil {
			return s, err
		}
		// Stage means are per commit: weigh each partition's by its commits.
		total, pt := s.stageTotals(), p.stageTotals()
		s.Commits, s.Events, s.MaxBatch = s.Commits+p.Commits, s.Events+p.Events, max(s.MaxBatch, p.MaxBatch)
		if s.Commits > 0 {
			c := float64(s.Commits)
			s.DecideMS, s.AppendMS, s.FinishMS = (total[0]+pt[0])/c, (total[1]+pt[1])/c, (total[2]+pt[2])/c
		}
	}
	return s, nil
}

func (b *bench) post(wallet, action string, amount int) ([]byte, error) {
	resp, err := http.Post(b.base+"/wallet/"+wallet+"/"+action, "application/json", strings.NewReader(fmt.Sprintf(`{"amount": %d}`, amount)))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s %s: %d %s", action, wallet, resp.StatusCode, body)
	}
	return body, err
}

func (b *bench) version(wallet string) (int64, error) {
	resp, err := http.Get(b.base + "/wallet/" + wallet + "/balance")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var v struct{ Version int64 }
	return v.Version, json.NewDecoder(resp.Body).Decode(&v)
}

func (b *bench) walletFile(n int) (string, error) {
	var buf bytes.Buffer
	for range n {
		buf.WriteString(ksuid.New().String() + "\n")
	}
	path := filepath.Join(b.scripts, fmt.Sprintf("wallets-%d.txt", n))
	return path, os.WriteFile(path, buf.Bytes(), 0o644)
}

// creditPaths is the credit path of each wallet, in order.
func creditPaths(wallets []string) []string {
	paths := make([]string, len(wallets))
	for i, w := range wallets {
		paths[i] = "/wallet/" + w + "/credit"
	}
	return paths
}

func readLines(path string) []string {
	b, _ := os.ReadFile(path)
	return strings.Fields(string(b))
}

// openLoop sends credits at a fixed rate for the scenario's duration and
// measures each latency from when the request was due, so a stall counts
// against every request it delays (no coordinated omission). It waits for
// every answer, so no write is in flight when it stops.
// share is rate's share of the scenario's measured maximum.
func (b *bench) openLoop(name string, rate float64, conns int, path string, wallets []string, share float64, target string) error {
	paths := []string{path}
	if wallets != nil {
		paths = creditPaths(wallets)
	}
	return b.measureWrites(0, func() (*result, wrkOut, error) {
		o, err := runOpenLoop(b.base, paths, `{"amount": 1}`, rate, b.dur, conns)
		if err != nil {
			return nil, wrkOut{}, err
		}
		w := wrkOut{Requests: int64(len(o.lat)), DurationUS: o.elapsed.Microseconds(), OK: o.ok, Refused: o.refused, Other: o.other, Errors: o.errs,
			P50US: o.pct(0.50).Microseconds(), P90US: o.pct(0.90).Microseconds(), P99US: o.pct(0.99).Microseconds(), MaxUS: o.pct(1).Microseconds()}
		argv := []string{fmt.Sprintf("utils/bench open loop: %.0f credits/s for %s over %d connections", rate, b.dur, conns)}
		r := b.record(name, argv, w, target)
		r.share = share
		return r, w, nil
	})
}

var redisRate = regexp.MustCompile(`GET: ([0-9.]+) requests per second`)

func (b *bench) redisBenchmark() error {
	b.settle()
	argv := []string{"redis-benchmark", "-h", "127.0.0.1", "-p", strconv.Itoa(b.ports["redis"]), "-t", "get", "-c", "64", "-n", "500000", "-q"}
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	m := redisRate.FindStringSubmatch(string(out))
	if m == nil {
		return fmt.Errorf("redis-benchmark said: %s", out)
	}
	rate, _ := strconv.ParseFloat(m[1], 64)
	r := &result{Name: "redis-benchmark GET, 64 connections (Redis alone)", Command: strings.Join(argv, " "), Rate: rate}
	a := b.find("GET balance, wallet with 1 transaction, 64 connections")
	r.Note = fmt.Sprintf("GET balance is %.0f%% of raw Redis GET", 100*a.Rate/rate)
	b.results = append(b.results, r)
	fmt.Printf("%-75s %8.0f req/s  (%s)\n", r.Name, r.Rate, r.Note)
	return nil
}

// rss100k loads the writer with 100,000 wallets, then reads its resident
// memory, and again after a restart (which loads them from SQLite).
func (b *bench) rss100k() error {
	wallets, err := b.walletFile(100_000)
	if err != nil {
		return err
	}
	for sent := int64(0); ; {
		n, err := b.walletCount()
		if err != nil {
			return err
		}
		if n >= 100_000 {
			break
		}
		w, err := b.wrk(64, 10*time.Second, "spread.lua", b.base+"/", wallets, "sequential", "2", strconv.FormatInt(sent, 10))
		if err != nil {
			return err
		}
		sent += w.Requests
	}
	n, _ := b.walletCount()
	rss, err := b.writerRSS()
	if err != nil {
		return err
	}
	r := &result{Name: fmt.Sprintf("wallet_writer resident memory with %d wallets", n), Target: "≤ 250 MB",
		Command: "VmRSS of wallet_writer from /proc after the scenarios above", Note: fmt.Sprintf("%.0f MB", float64(rss)/(1<<20))}
	b.results = append(b.results, r)
	fmt.Printf("%-75s %s\n", r.Name, r.Note)
	return nil
}

func (b *bench) walletCount() (int64, error) {
	var total int64
	err := b.eachLog(func(db *sql.DB) error {
		var n int64
		err := db.QueryRow(`SELECT COUNT(DISTINCT stream_id) FROM events WHERE domain = 'wallet'`).Scan(&n)
		total += n
		return err
	})
	return total, err
}

func (b *bench) writerRSS() (int64, error) {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		comm, _ := os.ReadFile(d + "/comm")
		environ, _ := os.ReadFile(d + "/environ")
		if strings.TrimSpace(string(comm)) != "wallet_writer" || !bytes.Contains(environ, []byte("DATA_DIR="+b.dataDir+"\x00")) {
			continue
		}
		f, err := os.Open(d + "/status")
		if err != nil {
			return 0, err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, errors.New("no wallet_writer process found")
}

func (b *bench) report() string {
	var s strings.Builder
	fmt.Fprintf(&s, "Measured %s on %s, commit %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), machine(), gitCommit())
	fmt.Fprintf(&s, "Everything on this one machine over loopback: the load generator, nats-server, redis-server and the three services. ")
	if n := os.Getenv("PARTITION_COUNT"); n != "" && n != "1" {
		fmt.Fprintf(&s, "Partitioned: PARTITION_COUNT=%s, one wallet_writer process with a committer and a log per partition. ", n)
	}
	fmt.Fprintf(&s, "Writes are durable: SQLite `synchronous=FULL` in WAL mode, one fsync per commit, every acknowledged write committed before its answer. ")
	fmt.Fprintf(&s, "Each scenario ran %s. Versions: %s.\n\n", b.dur, versions())
	s.WriteString("| scenario | req/s | p50 | p99 | max | 200 / 409 / other / socket errors | target |\n|---|---:|---:|---:|---:|---|---|\n")
	for _, r := range b.results {
		if r.Requests == 0 {
			val := fmt.Sprintf("%.0f", r.Rate)
			if r.Rate == 0 {
				val = r.Note
			}
			fmt.Fprintf(&s, "| %s | %s | | | | | %s |\n", r.Name, val, r.Target)
			continue
		}
		fmt.Fprintf(&s, "| %s | %.0f | %s | %s | %s | %d / %d / %d / %d | %s |\n", r.Name, r.Rate, round(r.P50), round(r.P99), round(r.Max), r.OK, r.Refused, r.Other, r.Errors, r.Target)
	}
	s.WriteString("\nGroup commit and checks of the write scenarios:\n\n")
	for _, r := range b.results {
		if r.Check == "" {
			continue
		}
		aof := ""
		if r.aofRewrite {
			aof = "; Redis rewrote its AOF during this scenario"
		}
		if r.commits > 0 {
			fmt.Fprintf(&s, "- %s: %d commits (%.0f fsyncs/s), %.1f events per commit; %s. %s. %s%s\n", r.Name, r.commits, r.fsyncsPerSecond, r.eventsPerCommit, r.stageText(), r.cpu, r.Check, aof)
		} else {
			fmt.Fprintf(&s, "- %s: %s. %s%s\n", r.Name, r.cpu, r.Check, aof)
		}
	}
	if r := b.find(spreadName); r != nil && r.cpu.writes > 0 {
		all, writer := r.cpu.perWrite(), r.cpu.perWrite("wallet_writer")
		fmt.Fprintf(&s, "\nThe CPU bound on spread writes: each write cost %s of CPU across the processes (%s in wallet_writer, %s in the others: HTTP, NATS, history, Redis, the load generator), so %d cores can do at most %.0f writes/s; 10,000/s needs each write to cost at most %s in all.\n",
			round(all), round(writer), round(all-writer), runtime.NumCPU(), float64(runtime.NumCPU())/all.Seconds(), time.Duration(runtime.NumCPU())*time.Second/10_000)
	}
	if line := b.latencyUnderLoad(); line != "" {
		fmt.Fprintf(&s, "\n%s\n", line)
	}
	for _, r := range b.results {
		if r.Note != "" && r.Requests == 0 && r.Rate > 0 {
			fmt.Fprintf(&s, "\n%s.\n", r.Note)
		}
	}
	s.WriteString("\nCommands (`$BASE` is the stack's loopback URL, `$SCRIPTS` the wrk scripts from utils/bench):\n\n```\n")
	for _, r := range b.results {
		c := strings.ReplaceAll(r.Command, b.base, "$BASE")
		c = strings.ReplaceAll(c, b.scripts, "$SCRIPTS")
		fmt.Fprintf(&s, "%s\n", c)
	}
	s.WriteString("```\n")
	return s.String()
}

// latencyUnderLoad sums up the open-loop runs over 10,000 wallets: the
// p99 at each rate, how busy the machine was, and the highest rate whose
// p99 stayed within 20 ms.
func (b *bench) latencyUnderLoad() string {
	var runs []*result
	for _, r := range b.results {
		if strings.HasPrefix(r.Name, spreadLoopName) {
			runs = append(runs, r)
		}
	}
	if len(runs) == 0 {
		return ""
	}
	slices.SortFunc(runs, func(x, y *result) int { return cmp.Compare(x.share, y.share) })
	var parts []string
	var best *result
	for _, r := range runs {
		part := fmt.Sprintf("%.0f%% of the maximum (%.0f/s): p99 %s", 100*r.share, r.Rate, round(r.P99))
		if r.cpu.machine > 0 {
			part += fmt.Sprintf(", the machine %.0f%% busy", 100*r.cpu.machine)
		}
		parts = append(parts, part)
		if r.P99 <= latencyLimit && r.Errors == 0 && r.Other == 0 {
			best = r
		}
	}
	verdict := fmt.Sprintf("p99 was over %s at every one of these rates", latencyLimit)
	if best != nil {
		verdict = fmt.Sprintf("the highest of these rates with p99 within %s was %.0f/s, %.0f%% of the maximum", latencyLimit, best.Rate, 100*best.share)
	}
	return fmt.Sprintf("Latency against load, writes over 10,000 wallets at fixed rates: %s; %s.", strings.Join(parts, "; "), verdict)
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), ":"))
				break
			}
		}
	}
	var si syscall.Sysinfo_t
	mem := ""
	if syscall.Sysinfo(&si) == nil {
		mem = fmt.Sprintf(", %.0f GiB", float64(si.Totalram)*float64(si.Unit)/(1<<30))
	}
	return fmt.Sprintf("%d × %s%s, %s/%s", runtime.NumCPU(), model, mem, runtime.GOOS, runtime.GOARCH)
}

func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func versions() string {
	v := []string{runtime.Version()}
	for _, c := range [][]string{{"bin/nats-server", "--version"}, {"redis-server", "--version"}, {"wrk", "-v"}} {
		out, _ := exec.CommandContext(context.Background(), c[0], c[1:]...).CombinedOutput()
		v = append(v, strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0]))
	}
	return strings.Join(v, "; ")
}

const (
	beginMark = "<!-- bench:begin (written by ./build.sh bench; edit outside the markers) -->"
	endMark   = "<!-- bench:end -->"
)

// writeBlock replaces the bench block of path, keeping everything else.
func writeBlock(path, block string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(old)
	i, j := strings.Index(s, beginMark), strings.Index(s, endMark)
	body := beginMark + "\n" + block + endMark
	if i < 0 || j < i {
		s = "# Benchmarks\n\n" + body + "\n" + s
	} else {
		s = s[:i] + body + s[j+len(endMark):]
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
