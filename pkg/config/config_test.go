package config_test

import (
	"strings"
	"testing"
	"time"

	"coffer/pkg/config"
)

func TestEnv(t *testing.T) {
	vars := map[string]string{
		"S": "x", "I": "7", "D": "250ms", "O": "NORMAL", "L": "2, 0",
		"BAD_I": "seven", "LOW_I": "0", "BAD_D": "soon", "NEG_D": "-1s", "BAD_O": "OFF",
		"BAD_L": "1,x", "HIGH_L": "4", "DUP_L": "1,1",
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
	if got := env.IntList("L", nil, 4); len(got) != 2 || got[0] != 2 || got[1] != 0 {
		t.Errorf("IntList = %v", got)
	}
	if got := env.IntList("UNSET", []int{0}, 4); len(got) != 1 || got[0] != 0 {
		t.Errorf("IntList default = %v", got)
	}
	if err := env.Err(); err != nil {
		t.Fatalf("good values reported: %v", err)
	}
	env.IntList("BAD_L", nil, 4)
	env.IntList("HIGH_L", nil, 4)
	env.IntList("DUP_L", nil, 4)
	env.Int("BAD_I", 1, 1)
	env.Int("LOW_I", 1, 1)
	env.Duration("BAD_D", time.Second)
	env.Duration("NEG_D", time.Second)
	env.OneOf("BAD_O", "FULL", "FULL", "NORMAL")
	err := env.Err()
	if err == nil {
		t.Fatal("bad values accepted")
	}
	for _, name := range []string{"BAD_I", "LOW_I", "BAD_D", "NEG_D", "BAD_O", "BAD_L", "HIGH_L", "DUP_L"} {
		if !strings.Contains(err.Error(), name+"=") {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
}

func TestNoArgs(t *testing.T) {
	const usage = "usage: svc\n"
	for _, c := range []struct {
		name           string
		args           []string
		run, fails     bool
		stdout, stderr string
	}{
		{"none: run", nil, true, false, "", ""},
		{"--help", []string{"--help"}, false, false, usage, ""},
		{"-h", []string{"-h"}, false, false, usage, ""},
		{"help", []string{"help"}, false, false, usage, ""},
		{"an unknown flag", []string{"--port=1"}, false, true, "", usage},
		{"help and more", []string{"--help", "x"}, false, true, "", usage},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut strings.Builder
			run, err := config.NoArgs(c.args, usage, &out, &errOut)
			if run != c.run || (err != nil) != c.fails || out.String() != c.stdout || errOut.String() != c.stderr {
				t.Errorf("NoArgs(%q) = %v, %v; stdout %q, stderr %q; want %v, error %v, stdout %q, stderr %q",
					c.args, run, err, out.String(), errOut.String(), c.run, c.fails, c.stdout, c.stderr)
			}
		})
	}
}
