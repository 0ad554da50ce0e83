package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Where the CPU goes: every process shares the machine's cores, so the
// write scenarios report the CPU time each process used per write. That is
// what shows whether a target is within reach of this machine at all.

// loadGenerator names the CPU of wrk or of the open-loop generator.
const loadGenerator = "load generator"

// stackProcesses are the processes of the stack, by /proc comm.
var stackProcesses = []string{"wallet_writer", "wallet_server", "history_writer", "nats-server", "redis-server"}

// clockTick is the unit of /proc/<pid>/stat times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// cpuSnapshot is the CPU time used so far by each process of this bench's
// stack and by the load generator, and by the whole machine.
type cpuSnapshot struct {
	per         map[string]time.Duration
	busy, total int64 // ticks of all cores: busy (not idle, not waiting for I/O) and in all
}

// cpuTimes is the CPU time used so far by each process of this bench's
// stack, and by the load generator (wrk, a waited-for child, or this
// process itself for the open loop), and the machine's busy and total ticks.
func (b *bench) cpuTimes() cpuSnapshot {
	t := map[string]time.Duration{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		comm, _ := os.ReadFile(d + "/comm")
		name := strings.TrimSpace(string(comm))
		if !slices.Contains(stackProcesses, name) {
			continue
		}
		// Ours if started with our DATA_DIR; redis-server rewrites its
		// environment for its process title, which names its address.
		environ, _ := os.ReadFile(d + "/environ")
		cmdline, _ := os.ReadFile(d + "/cmdline")
		if !bytes.Contains(environ, []byte("DATA_DIR="+b.dataDir+"\x00")) && !bytes.Contains(cmdline, []byte(b.redisAddr)) {
			continue
		}
		stat, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		// The fields after the command's closing parenthesis; utime and
		// stime are the 14th and 15th of the whole line.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		t[name] += time.Duration(u+s) * clockTick
	}
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			t[loadGenerator] += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	busy, total := machineTicks()
	return cpuSnapshot{per: t, busy: busy, total: total}
}

// machineTicks reads the machine's CPU ticks from the first line of
// /proc/stat: the kernel's work for every process (softirqs of loopback
// traffic, interrupts) counts too, which no single process is charged for.
// Both are 0 if /proc/stat cannot be read.
func machineTicks() (busy, total int64) {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	return parseMachineTicks(stat)
}

func parseMachineTicks(stat []byte) (busy, total int64) {
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	// user nice system idle iowait irq softirq steal guest guest_nice.
	// Stolen time counts as busy: the stack could not have used it.
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i == 8 || i == 9 { // guest time is already in user and nice
			continue
		}
		total += n
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return busy, total
}

// cpuUse is the CPU each process used over one scenario.
type cpuUse struct {
	per     map[string]time.Duration
	elapsed time.Duration
	writes  int64
	machine float64 // the share of all cores' time they were busy; 0 if unknown
}

func cpuSince(before, after cpuSnapshot, elapsed time.Duration, writes int64) cpuUse {
	u := cpuUse{per: map[string]time.Duration{}, elapsed: elapsed, writes: writes}
	for k, v := range after.per {
		u.per[k] = v - before.per[k]
	}
	if total := after.total - before.total; total > 0 {
		u.machine = float64(after.busy-before.busy) / float64(total)
	}
	return u
}

// cores is how many cores the named processes kept busy on average; no
// names means all of them.
func (u cpuUse) cores(names ...string) float64 {
	var sum time.Duration
	for k, v := range u.per {
		if len(names) == 0 || slices.Contains(names, k) {
			sum += v
		}
	}
	return sum.Seconds() / u.elapsed.Seconds()
}

// perWrite is the CPU time per acknowledged write of the named processes.
func (u cpuUse) perWrite(names ...string) time.Duration {
	if u.writes == 0 {
		return 0
	}
	return time.Duration(u.cores(names...) * u.elapsed.Seconds() / float64(u.writes) * 1e9)
}

// String lists each process's CPU per write, largest first.
func (u cpuUse) String() string {
	names := make([]string, 0, len(u.per))
	for k := range u.per {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int { return int(u.per[b] - u.per[a]) })
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %d µs", n, u.perWrite(n).Microseconds()))
	}
	machine := ""
	if u.machine > 0 {
		machine = fmt.Sprintf(" (the machine %.0f%% busy, kernel included)", 100*u.machine)
	}
	return fmt.Sprintf("CPU per write: %s; %.2f cores busy in all%s", strings.Join(parts, ", "), u.cores(), machine)
}
