package readmodel_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/segmentio/ksuid"

	"coffer/pkg/readmodel"
	"coffer/pkg/wallet"
)

// BenchmarkPush sends one pipeline of n wallet changes (one transaction
// each), as the writer does after a commit.
func BenchmarkPush(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("wallets=%d", n), func(b *testing.B) {
			p, _ := complete(b)
			ids := make([]string, n)
			states := make([]wallet.State, n)
			for i := range ids {
				ids[i] = ksuid.New().String()
			}
			b.ReportAllocs()
			for b.Loop() {
				changes := make([]readmodel.Change, n)
				for i := range changes {
					e, _ := wallet.Decide(states[i], wallet.Command{Action: wallet.Credit, Amount: 1})
					states[i] = wallet.Evolve(states[i], e)
					changes[i] = change(ids[i], e, states[i], t0)
				}
				if gaps, err := p.Push(context.Background(), changes); err != nil || gaps != nil {
					b.Fatal(gaps, err)
				}
			}
		})
	}
}

func BenchmarkBalance(b *testing.B) {
	p, _ := complete(b)
	id := ksuid.New().String()
	if _, err := p.Push(context.Background(), history(id, 10)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := balance(p, context.Background(), id); err != nil {
			b.Fatal(err)
		}
	}
}
