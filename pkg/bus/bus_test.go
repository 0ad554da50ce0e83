package bus_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"coffer/pkg/bus"
	"coffer/pkg/wallet"
)

// TestResultReplyIsWhatMarshalWrites holds the hand-built reply to the
// bytes encoding/json makes of the same Reply, and to what decodes back.
func TestResultReplyIsWhatMarshalWrites(t *testing.T) {
	at := time.Date(2026, 12, 2, 6, 0, 0, 123456789, time.UTC)
	for _, ev := range []wallet.Event{
		{Type: wallet.Credited, Version: 1, Amount: 5, BalanceAfter: 5},
		{Type: wallet.Debited, Version: 9, Amount: 1 << 40, BalanceAfter: 0},
	} {
		res, err := json.Marshal(bus.Result{WalletID: "2bX6UCoXsk3yZkCeeW8j5lTxGqk", Balance: ev.BalanceAfter, Version: ev.Version,
			Timestamp: at, Transaction: wallet.NewTransaction("3MuBBtwItK5dW8aBVeIbd263adK", ev, at)})
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(bus.Reply{Result: res})
		if err != nil {
			t.Fatal(err)
		}
		got := bus.ResultReply(res)
		if !bytes.Equal(got, want) {
			t.Errorf("ResultReply:\n got %s\nwant %s", got, want)
		}
		var back bus.Reply
		if err := json.Unmarshal(got, &back); err != nil || !bytes.Equal(back.Result, res) || back.Error != nil {
			t.Errorf("decoded back: %+v, %v", back, err)
		}
	}
}
