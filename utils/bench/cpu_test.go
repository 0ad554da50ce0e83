package main

import (
	"strings"
	"testing"
	"time"
)

// TestParseMachineTicks holds the machine's busy share to /proc/stat's
// columns: idle and I/O wait are not busy, guest time is not counted twice.
func TestParseMachineTicks(t *testing.T) {
	for _, c := range []struct {
		name, stat  string
		busy, total int64
	}{
		{"every column", "cpu  100 2 30 500 7 1 20 3 40 5\ncpu0 50 1 15 250 3 0 10 1 20 2\n", 156, 663},
		{"an old kernel's four columns", "cpu 10 0 5 85\n", 15, 100},
		{"not the cpu line", "intr 1 2 3 4 5 6\n", 0, 0},
		{"empty", "", 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			busy, total := parseMachineTicks([]byte(c.stat))
			if busy != c.busy || total != c.total {
				t.Errorf("parseMachineTicks = %d busy of %d; want %d of %d", busy, total, c.busy, c.total)
			}
		})
	}
}

// TestMachineBusy checks the live reading: a core kept spinning shows up
// as busy time of the machine.
func TestMachineBusy(t *testing.T) {
	busy0, total0 := machineTicks()
	if total0 == 0 {
		t.Fatal("no CPU line in /proc/stat")
	}
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
	}
	busy1, total1 := machineTicks()
	// 300 ms of one core is 30 ticks of 10 ms; allow for tick granularity.
	if busy1-busy0 < 20 || total1 <= total0 || busy1-busy0 > total1-total0 {
		t.Errorf("after 300 ms spinning: %d busy ticks of %d", busy1-busy0, total1-total0)
	}
}

// TestLatencyUnderLoad names the highest spread rate whose p99 stayed
// within 20 ms, whatever order the runs were made in, and says so when
// none did.
func TestLatencyUnderLoad(t *testing.T) {
	run := func(share float64, p99 time.Duration, errs int64) *result {
		return &result{Name: spreadLoopName + " x", share: share, Rate: 6000 * share, P99: p99, Errors: errs, cpu: cpuUse{machine: share + 0.2}}
	}
	hot := &result{Name: "POST credit, one hot wallet, fixed rate 4000/s (70% of max)", share: 0.7, Rate: 4000, P99: 5 * time.Millisecond}
	for _, c := range []struct {
		name string
		runs []*result
		want string
	}{
		{"the middle rate", []*result{hot, run(0.7, 30*time.Millisecond, 0), run(0.55, 20*time.Millisecond, 0), run(0.4, 12*time.Millisecond, 0)},
			"40% of the maximum (2400/s): p99 12ms, the machine 60% busy; 55% of the maximum (3300/s): p99 20ms, the machine 75% busy; 70% of the maximum (4200/s): p99 30ms, the machine 90% busy; the highest of these rates with p99 within 20ms was 3300/s, 55% of the maximum."},
		{"errors disqualify", []*result{run(0.7, 10*time.Millisecond, 3), run(0.4, 12*time.Millisecond, 0)},
			"the highest of these rates with p99 within 20ms was 2400/s, 40% of the maximum."},
		{"none", []*result{run(0.7, 31*time.Millisecond, 0), run(0.4, 21*time.Millisecond, 0)},
			"p99 was over 20ms at every one of these rates."},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := &bench{results: c.runs}
			if got := b.latencyUnderLoad(); !strings.HasSuffix(got, c.want) {
				t.Errorf("latencyUnderLoad =\n%s\nwant it to end\n%s", got, c.want)
			}
		})
	}
	if got := (&bench{results: []*result{hot}}).latencyUnderLoad(); got != "" {
		t.Errorf("without spread runs: %q, want nothing", got)
	}
}
