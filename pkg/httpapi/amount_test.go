package httpapi

import (
	"encoding/json"
	"testing"
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
