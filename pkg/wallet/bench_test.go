package wallet_test

import (
	"testing"

	"coffer/pkg/wallet"
)

func BenchmarkDecideEvolve(b *testing.B) {
	s := wallet.State{Balance: 1_000_000}
	cmds := []wallet.Command{{Action: wallet.Credit, Amount: 7}, {Action: wallet.Debit, Amount: 5}}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e, err := wallet.Decide(s, cmds[i&1])
		if err != nil {
			b.Fatal(err)
		}
		s = wallet.Evolve(s, e)
	}
}

func BenchmarkEncodeEvent(b *testing.B) {
	e := wallet.Event{Type: wallet.Credited, Version: 12, Amount: 500, BalanceAfter: 12_345}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := wallet.EncodeEvent(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeEvent(b *testing.B) {
	data := []byte(`{"amount":500,"balance_after":12345}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := wallet.DecodeEvent(wallet.Credited, 1, 12, data); err != nil {
			b.Fatal(err)
		}
	}
}
