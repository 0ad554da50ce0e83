// Package config reads a service's settings from its environment. Each
// service's run function makes one Env from the getenv it is given and reads
// every setting through it, so nothing else touches the environment and a bad
// value is reported with its variable's name.
package config

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Env reads settings through getenv and collects every bad value.
type Env struct {
	getenv func(string) string
	errs   []error
}

// New returns an Env over getenv (os.Getenv in production).
func New(getenv func(string) string) *Env { return &Env{getenv: getenv} }

// String returns the variable key, or def when it is unset or empty.
func (e *Env) String(key, def string) string {
	if v := e.getenv(key); v != "" {
		return v
	}
	return def
}

// Int returns the variable key as an int of at least min, or def.
func (e *Env) Int(key string, def, min int) int {
	v := e.getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min {
		e.errs = append(e.errs, fmt.Errorf("%s=%q: want a whole number of at least %d", key, v, min))
		return def
	}
	return n
}

// Duration returns the variable key as a positive Go duration ("5s"), or def.
func (e *Env) Duration(key string, def time.Duration) time.Duration {
	v := e.getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		e.errs = append(e.errs, fmt.Errorf("%s=%q: want a positive duration such as 5s or 250ms", key, v))
		return def
	}
	return d
}

// OneOf returns the variable key, which must be one of allowed, or def.
func (e *Env) OneOf(key, def string, allowed ...string) string {
	v := e.getenv(key)
	if v == "" {
		return def
	}
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	e.errs = append(e.errs, fmt.Errorf("%s=%q: want one of %v", key, v, allowed))
	return def
}

// IntList returns the variable key as a comma-separated list of distinct
// whole numbers from 0 to below, or def.
func (e *Env) IntList(key string, def []int, below int) []int {
	v := e.getenv(key)
	if v == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 || n >= below || slices.Contains(out, n) {
			e.errs = append(e.errs, fmt.Errorf("%s=%q: want distinct whole numbers from 0 to %d, separated by commas", key, v, below-1))
			return def
		}
		out = append(out, n)
	}
	return out
}

// Err returns every bad value met so far, or nil.
func (e *Env) Err() error { return errors.Join(e.errs...) }

// NoArgs reads the command line of a service that takes no arguments, whose
// settings all come from the environment: none means run; help, -h or
// --help prints usage to stdout and means stop; anything else prints usage
// to stderr and is an error, rather than starting a server the caller did
// not ask for.
func NoArgs(args []string, usage string, stdout, stderr io.Writer) (run bool, err error) {
	switch {
	case len(args) == 0:
		return true, nil
	case len(args) == 1 && IsHelp(args[0]):
		fmt.Fprint(stdout, usage)
		return false, nil
	}
	fmt.Fprint(stderr, usage)
	return false, fmt.Errorf("unknown arguments %q", args)
}

// IsHelp reports whether a command-line argument asks for help.
func IsHelp(arg string) bool { return arg == "help" || arg == "-h" || arg == "--help" }
