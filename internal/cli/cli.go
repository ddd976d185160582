// Package cli is what relayd's and hostagent's main functions share: the
// signal handling (the first SIGINT/SIGTERM drains, a second stops at once),
// flags that may also come from environment variables, and the mapping of
// errors to exit statuses.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// UsageError is a bad command line: exit status 2.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// RunFunc runs a command until ctx is done, then drains until force is done.
type RunFunc func(ctx, force context.Context, args []string, stderr io.Writer) error

// Main runs run with the process's arguments and signals, prints its error
// as "name: error", and exits: 0 on success or -h, 2 on a UsageError, 1 on
// any other error.
func Main(name string, run RunFunc) {
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
	case err == nil, errors.Is(err, flag.ErrHelp):
		return
	case errors.As(err, new(UsageError)):
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// OnHangup calls reload on every SIGHUP (the operators' "re-read your
// files") until stop, which waits for a call under way. Without it a SIGHUP
// ends a Go program.
func OnHangup(reload func()) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-hup:
				reload()
			case <-quit:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(quit)
		<-done
	}
}
