package main

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// Redis rewrites its append-only file by itself once it has doubled (and is
// at least 64 MB); a full bench crosses that line somewhere in its write
// scenarios. The forked child writes the whole dataset and, on two cores
// under load, about doubled the write p99 of the seconds it ran in
// (BENCHMARKS.md entry 13), so the report says which scenarios had one.

// aofState is what INFO persistence says of AOF rewrites.
type aofState struct {
	rewrites int  // rewrites started since Redis started
	running  bool // one is running now
}

// parseAOF reads aof_rewrites and aof_rewrite_in_progress from the text of
// INFO persistence.
func parseAOF(info string) (aofState, error) {
	var st aofState
	seen := 0
	for line := range strings.Lines(info) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch k {
		case "aof_rewrites":
			n, err := strconv.Atoi(v)
			if err != nil {
				return st, fmt.Errorf("INFO persistence: %q", line)
			}
			st.rewrites, seen = n, seen+1
		case "aof_rewrite_in_progress":
			st.running, seen = v == "1", seen+1
		}
	}
	if seen != 2 {
		return st, fmt.Errorf("INFO persistence without aof_rewrites and aof_rewrite_in_progress: %q", info)
	}
	return st, nil
}

func (b *bench) aof() (aofState, error) {
	argv := []string{"redis-cli", "-h", "127.0.0.1", "-p", strconv.Itoa(b.ports["redis"]), "INFO", "persistence"}
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	if err != nil {
		return aofState{}, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return parseAOF(string(out))
}

// aofWatch starts watching for an AOF rewrite; the function it returns says
// whether one ran at any time since (running at either end, or started in
// between).
func (b *bench) aofWatch() (func() (bool, error), error) {
	before, err := b.aof()
	if err != nil {
		return nil, err
	}
	return func() (bool, error) {
		after, err := b.aof()
		return before.running || after.running || after.rewrites > before.rewrites, err
	}, nil
}
