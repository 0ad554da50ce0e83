package config_test

import (
	"strings"
	"testing"
	"time"

	"coffer/pkg/config"
)

func TestEnv(t *testing.T) {
	vars := map[string]string{
		"S": "x", "I": "7", "D": "250ms", "O": "NORMAL",
		"BAD_I": "seven", "LOW_I": "0", "BAD_D": "soon", "NEG_D": "-1s", "BAD_O": "OFF",
	}
	env := config.New(func(k string) string { return vars[k] })
	if got := env.String("S", "d"); got != "x" {
		t.Errorf("String = %q", got)
	}
	if got := env.String("UNSET", "d"); got != "d" {
		t.Errorf("String default = %q", got)
	}
	if got := env.Int("I", 1, 1); got != 7 {
		t.Errorf("Int = %d", got)
	}
	if got := env.Duration("D", time.Second); got != 250*time.Millisecond {
		t.Errorf("Duration = %s", got)
	}
	if got := env.OneOf("O", "FULL", "FULL", "NORMAL"); got != "NORMAL" {
		t.Errorf("OneOf = %q", got)
	}
	if err := env.Err(); err != nil {
		t.Fatalf("good values reported: %v", err)
	}
	env.Int("BAD_I", 1, 1)
	env.Int("LOW_I", 1, 1)
	env.Duration("BAD_D", time.Second)
	env.Duration("NEG_D", time.Second)
	env.OneOf("BAD_O", "FULL", "FULL", "NORMAL")
	err := env.Err()
	if err == nil {
		t.Fatal("bad values accepted")
	}
	for _, name := range []string{"BAD_I", "LOW_I", "BAD_D", "NEG_D", "BAD_O"} {
		if !strings.Contains(err.Error(), name+"=") {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
}
