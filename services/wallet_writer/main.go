// Command wallet_writer runs Coffer's wallet writer, or one of its recovery
// tools (wallet_writer verify, wallet_writer rebuild). Configuration comes
// from the environment; see the README.
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
	if err := writer.Command(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "wallet_writer:", err)
		os.Exit(1)
	}
}
