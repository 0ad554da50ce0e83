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

// BenchmarkAppend commits one batch of n events per iteration, durably
// (synchronous=FULL, so one fsync per batch), spread over 1,000 wallets.
func BenchmarkAppend(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			s, err := eventstore.Open(context.Background(), filepath.Join(b.TempDir(), "w.db"), eventstore.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ids := make([]string, 1000)
			states := make([]wallet.State, len(ids))
			for i := range ids {
				ids[i] = ksuid.New().String()
			}
			b.ReportAllocs()
			k := 0
			for b.Loop() {
				recs := make([]eventstore.Record, n)
				for j := range recs {
					w := k % len(ids)
					k++
					recs[j], states[w] = credit(b, ids[w], states[w], 5, "c:"+ksuid.New().String())
				}
				if err := s.Append(context.Background(), recs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
