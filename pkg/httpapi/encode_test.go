package httpapi

import (
	"encoding/json"
	"testing"
	"time"
)

func TestBalanceResponseEncodesLikeEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 23, 9, 41, 5, 120_000_000, time.UTC)
	whole := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, r := range []balanceResponse{
		{WalletID: "2pJ1NbW1uTJ3XQw2fQ4G7mVj0aZ", Timestamp: at},
		{WalletID: "2pJ1NbW1uTJ3XQw2fQ4G7mVj0aZ", Balance: 9_223_372_036_854_775_807, Version: 12, Timestamp: whole, UpdatedAt: &at},
		{WalletID: "2pJ1NbW1uTJ3XQw2fQ4G7mVj0aZ", Balance: 0, Version: 1, Timestamp: at, UpdatedAt: &whole},
	} {
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.appendJSON(nil); string(got) != string(want) {
			t.Fatalf("appendJSON\n got %s\nwant %s", got, want)
		}
	}
}
