// Command eventhubs-emulator runs a local Event Hubs (AMQP 1.0) for
// development and tests; see package eventhubs/emulator and
// scripts/eventhubs.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/netherite-go/netherite/eventhubs/emulator"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(emulator.Run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
