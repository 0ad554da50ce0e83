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

// cpuTimes is the CPU time used so far by each process of this bench's
// stack, and by the load generator (wrk, a waited-for child, or this
// process itself for the open loop).
func (b *bench) cpuTimes() map[string]time.Duration {
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
	return t
}

// cpuUse is the CPU each process used over one scenario.
type cpuUse struct {
	per     map[string]time.Duration
	elapsed time.Duration
	writes  int64
}

func cpuSince(before, after map[string]time.Duration, elapsed time.Duration, writes int64) cpuUse {
	u := cpuUse{per: map[string]time.Duration{}, elapsed: elapsed, writes: writes}
	for k, v := range after {
		u.per[k] = v - before[k]
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
	return fmt.Sprintf("CPU per write: %s; %.2f cores busy in all", strings.Join(parts, ", "), u.cores())
}
