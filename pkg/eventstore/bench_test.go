package eventstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/ksuid"

	"coffer/pkg/eventstore"
	"coffer/pkg/wallet"
)

// benchLog opens a log in a temporary directory and returns it with a
// maker of batches of credits spread over the given number of wallets in
// turn.
func benchLog(b *testing.B, wallets int) (*eventstore.Store, func(n int) []eventstore.Record) {
	b.Helper()
	s, err := eventstore.Open(context.Background(), filepath.Join(b.TempDir(), "w.db"), eventstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	ids := make([]string, wallets)
	states := make([]wallet.State, len(ids))
	for i := range ids {
		ids[i] = ksuid.New().String()
	}
	k := 0
	return s, func(n int) []eventstore.Record {
		recs := make([]eventstore.Record, n)
		for j := range recs {
			w := k % len(ids)
			k++
			recs[j], states[w] = credit(b, ids[w], states[w], 5, "c:"+ksuid.New().String())
		}
		return recs
	}
}

// BenchmarkAppend commits one batch of n events per iteration, durably
// (synchronous=FULL, so one fsync per batch), spread over 1,000 wallets.
func BenchmarkAppend(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			s, batch := benchLog(b, 1000)
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Append(context.Background(), batch(n)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkLookup is the committer's idempotency check as it runs under
// load: a batch of n new keys looked up right after the previous batch
// committed, in a log of 20,000 events over 1,000 wallets. Only the lookup
// is timed.
func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			ctx := context.Background()
			s, batch := benchLog(b, 1000)
			for range 20 {
				if err := s.Append(ctx, batch(1000)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				recs := batch(n)
				keys := make([]eventstore.Key, n)
				for j, r := range recs {
					keys[j] = eventstore.Key{Domain: r.Event.Domain, StreamID: r.Event.StreamID, IdemKey: r.IdemKey}
				}
				b.StartTimer()
				found, err := s.Lookup(ctx, keys)
				if err != nil || len(found) != 0 {
					b.Fatalf("lookup of new keys: %d found, %v", len(found), err)
				}
				b.StopTimer()
				if err := s.Append(ctx, recs); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkAppendGrown is the writer's commit as in the bench's spread open
// loop, whose p99 grows with the log (BENCHMARKS.md entry 14): batches of 8
// credits over 10,000 wallets, the WAL checkpointed every 64 commits as the
// writer does every 200 ms, on a new log and on one already holding 250,000
// events. It also reports the CPU (user and system) and the write and read
// system calls per commit.
func BenchmarkAppendGrown(b *testing.B) {
	for _, held := range []int{0, 250_000} {
		b.Run(fmt.Sprintf("held=%d", held), func(b *testing.B) {
			ctx := context.Background()
			s, batch := benchLog(b, 10_000)
			for range held / 1000 {
				if err := s.Append(ctx, batch(1000)); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := s.Checkpoint(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			before, counted := syscalls()
			cpu0 := cpuTime()
			i := 0
			for b.Loop() {
				if err := s.Append(ctx, batch(8)); err != nil {
					b.Fatal(err)
				}
				if i++; i%64 == 0 {
					if _, err := s.Checkpoint(ctx); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
			if after, ok := syscalls(); counted && ok {
				b.ReportMetric(float64(after.w-before.w)/float64(b.N), "writes/op")
				b.ReportMetric(float64(after.r-before.r)/float64(b.N), "reads/op")
			}
		})
	}
}

// cpuTime is the CPU this process has used so far, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// syscalls is this process's count of write and read system calls so far
// (/proc/self/io: on Linux, and there each WAL frame is two writes); ok is
// false where it cannot be read.
func syscalls() (n struct{ w, r int64 }, ok bool) {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return n, false
	}
	seen := 0
	for _, line := range strings.Split(string(data), "\n") {
		if _, err := fmt.Sscanf(line, "syscw: %d", &n.w); err == nil {
			seen++
		}
		if _, err := fmt.Sscanf(line, "syscr: %d", &n.r); err == nil {
			seen++
		}
	}
	return n, seen == 2
}
