// Command hostagent keeps a host process attached to relays: it opens idle
// Attach streams, and serves each client session either itself (echo) or by
// forwarding it to a local TCP server (forward HOST:PORT).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	ctx, drain := context.WithCancel(context.Background())
	force, stop := context.WithCancel(context.Background())
	go func() {
		<-signals // the first signal drains
		drain()
		<-signals // a second one stops at once
		stop()
	}()
	err := run(ctx, force, os.Args[1:], os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintf(os.Stderr, "hostagent: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
