package eventstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/segmentio/ksuid"

	"coffer/pkg/eventstore"
	"coffer/pkg/wallet"
)

// benchLog opens a log in a temporary directory and returns it with a
// maker of batches of credits spread over 1,000 wallets in turn.
func benchLog(b *testing.B) (*eventstore.Store, func(n int) []eventstore.Record) {
	b.Helper()
	s, err := eventstore.Open(context.Background(), filepath.Join(b.TempDir(), "w.db"), eventstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	ids := make([]string, 1000)
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
			s, batch := benchLog(b)
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
			s, batch := benchLog(b)
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
					keys[j] = eventstore.Key{WalletID: r.Event.StreamID, IdemKey: r.IdemKey}
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
