// Command relayd is the relay daemon: host processes behind NAT attach to
// its gRPC port, raw TCP clients connect to its client port, and it bridges
// each client into one attached stream. See the README for the tour.
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
		fmt.Fprintf(os.Stderr, "relayd: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
