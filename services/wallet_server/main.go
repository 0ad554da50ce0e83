// Command wallet_server runs Coffer's wallet_server service. Configuration comes from the
// environment; see the README.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"coffer/pkg/httpapi"
)

// gcPercent is the garbage collector's target unless GOGC says otherwise.
// wallet_server keeps almost nothing live (a few MB), so the default of 100
// collects every few thousand requests; 400 measured about 4% more balance
// reads per second on our 2-core machines (BENCHMARKS.md, entry 7) for a
// few MB more memory.
const gcPercent = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := httpapi.Command(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "wallet_server:", err)
		os.Exit(1)
	}
}
