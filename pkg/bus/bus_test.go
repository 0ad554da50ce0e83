package bus_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"coffer/pkg/bus"
)

// TestResultReplyIsWhatMarshalWrites holds the hand-built reply to the
// bytes encoding/json makes of the same Reply, and to what decodes back.
func TestResultReplyIsWhatMarshalWrites(t *testing.T) {
	at := time.Date(2026, 12, 2, 6, 0, 0, 123456789, time.UTC)
	type result struct {
		ID      string    `json:"id"`
		Balance int64     `json:"balance"`
		Version int64     `json:"version"`
		At      time.Time `json:"at"`
		Note    string    `json:"note"`
	}
	for _, r := range []result{
		{ID: "2bX6UCoXsk3yZkCeeW8j5lTxGqk", Balance: 5, Version: 1, At: at},
		{ID: "3MuBBtwItK5dW8aBVeIbd263adK", Balance: 1 << 40, Version: 9, At: at, Note: "<\u00e9\"\\>"},
	} {
		res, err := json.Marshal(r)
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
