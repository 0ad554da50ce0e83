package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"strings"
	"testing"

	"coffer/pkg/wallet"
)

func TestParseAmount(t *testing.T) {
	tests := []struct {
		raw  string
		want int64 // 0: must be refused
	}{
		{"5", 5},
		{"5.0", 5},
		{"5.000", 5},
		{"5e2", 500},
		{"5E+2", 500},
		{"2500e-2", 25},
		{"1000000000000000", 1_000_000_000_000_000},
		{"1e15", 1_000_000_000_000_000},
		{"0.5e1", 5},
		{"1000000000000001", 0},
		{"1e16", 0},
		{"2.5", 0},
		{"25e-1", 0},
		{"0", 0},
		{"-0", 0},
		{"-1", 0},
		{"0.0", 0},
		{`"5"`, 0},
		{"null", 0},
		{"true", 0},
		{"[5]", 0},
		{`{"v":5}`, 0},
		{"", 0},
		{"1e999999999", 0},
		{"1e-999999999", 0},
		{"9223372036854775808", 0},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := parseAmount(json.RawMessage(tt.raw))
			if tt.want == 0 {
				if err == nil {
					t.Fatalf("parseAmount(%s) = %d, want an error", tt.raw, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseAmount(%s) = %d, %v; want %d", tt.raw, got, err, tt.want)
			}
		})
	}
}

// BenchmarkDecodeAmount is the body check of every POST credit and debit.
func BenchmarkDecodeAmount(b *testing.B) {
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/wallet/2pJ1NbW1uTJ3XQw2fQ4G7mVj0aZ/credit", nil)
	body := strings.NewReader("")
	b.ReportAllocs()
	for b.Loop() {
		body.Reset(`{"amount": 500}`)
		r.Body = io.NopCloser(body)
		if data, perr := readCommandData(w, r, wallet.Credit); perr != nil || string(data) != `{"amount":500}` {
			b.Fatal(string(data), perr)
		}
	}
}

// TestPlainAmount: the common bodies take the short way, and whatever it
// accepts the long way (strictAmount) accepts as the same amount (mutated
// bodies too).
func TestPlainAmount(t *testing.T) {
	for _, body := range []string{
		`{"amount": 5}`, `{"amount":500}`, "{\n  \"amount\": 42\n}\n", "\t{ \"amount\" : 1 }\r\n",
		`{"amount": 1000000000000000}`, `{"amount": 999999999999999}`,
	} {
		if _, ok := plainAmount([]byte(body)); !ok {
			t.Errorf("%q: not taken the short way", body)
		}
	}
	for _, body := range []string{
		`{"amount": 1000000000000001}`, `{"amount": 10000000000000000}`, `{"amount": 0}`, `{"amount": 05}`,
		`{"amount": -5}`, `{"amount": 5.0}`, `{"amount": 5e2}`, `{"amount": "5"}`, `{"Amount": 5}`,
		`{"amount": 5, "amount": 6}`, `{"amount": 5}x`, `{"amount": 5}{}`, "\v{\"amount\": 5}", `{"amount": 5`,
		`{"amount" 5}`, `{amount: 5}`, ``, `5`,
	} {
		if n, ok := plainAmount([]byte(body)); ok {
			t.Errorf("%q: the short way read %d; it should leave it to the long way", body, n)
		}
	}
	r := rand.New(rand.NewPCG(5, 6))
	const alphabet = " \t\n\r\v{}:,\"amountAMOUNT0123456789.eE+-x\x00\xff"
	for range 20000 {
		b := []byte(fmt.Sprintf(`{"amount": %d}`, 1+r.Int64N(wallet.MaxAmount)))
		for range 1 + r.IntN(3) {
			switch i := r.IntN(len(b) + 1); r.IntN(3) {
			case 0:
				if i < len(b) {
					b[i] = alphabet[r.IntN(len(alphabet))]
				}
			case 1:
				b = append(b[:i], append([]byte{alphabet[r.IntN(len(alphabet))]}, b[i:]...)...)
			case 2:
				if i < len(b) {
					b = append(b[:i], b[i+1:]...)
				}
			}
		}
		if n, ok := plainAmount(b); ok {
			if m, perr := strictAmount(b); perr != nil || m != n {
				t.Fatalf("%q: the short way read %d, the long way %d (%v)", b, n, m, perr)
			}
		}
	}
}
