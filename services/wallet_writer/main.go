// Command wallet_writer runs Coffer's wallet_writer service. Configuration comes from the
// environment; see the README.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"coffer/pkg/writer"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := writer.RunService(ctx, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "wallet_writer:", err)
		os.Exit(1)
	}
}
