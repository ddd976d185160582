// Command relayload measures relay against direct TCP on one machine. It is
// an echo backend, a set of client workloads, and a runner that puts them
// together with real relayd and hostagent processes:
//
//	relayload echo-server [--addr 127.0.0.1:0]      echo every byte, then half-close
//	relayload bulk --target ADDR [--conns 1] [--mib 256]
//	relayload rtt  --target ADDR [--count 5000] [--size 64]
//	relayload rate --target ADDR [--workers 4] [--count 20000] [--duration 3s]
//	relayload hold --target ADDR [--conns 1000] [--for 10s] [--pids PID,...]
//	relayload proxy --target ADDR [--addr 127.0.0.1:0]   a plain TCP proxy: the floor
//	relayload run  [--quick] [--reps 3] [--hold 2000] [--idle-slots 1000] [--link both] [--base REV]
//
// bulk sends a deterministic pattern on each connection while it reads the
// echo back and checks every byte, half-closes after the last byte, and
// expects EOF after exactly as many bytes as it sent. rtt times sequential
// small round trips on one connection; rate counts sessions per second
// (dial, one-byte echo, close); hold opens connections, checks each with one
// echo, and keeps them open. proxy is a plain TCP proxy. run builds relayd
// and hostagent, starts the echo backend, relayd and "hostagent forward" on
// loopback with free ports, measures direct (client → echo), relayed
// (client → relayd → hostagent → echo) and the floor (client → proxy →
// proxy → echo: the same two hops with nothing of a tunnel's work) in the
// same pass, and prints a markdown table with each ratio to direct and the
// targets of issue 3.
//
// Every workload is bounded in count and in time, and only loopback
// addresses are accepted: this is a tool for one machine, not a load
// generator to point at other people's hosts.
package main

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

const usage = `Usage: relayload COMMAND [flags]

Commands:
  echo-server  an echo backend: every byte back, then half-close
  bulk         N connections, each sends and verifies a byte pattern; MB/s one way
  rtt          sequential small echo round trips on one connection; p50/p99
  rate         sessions per second: dial, 1-byte echo, close
  hold         open N connections, verify each, hold them; RSS of --pids
  proxy        a plain TCP proxy (splice both ways, half-close passed on): two chained are the floor
  run          build relayd and hostagent, run everything, print the table

"relayload COMMAND -h" shows a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.As(err, new(usageError)):
		fmt.Fprintln(os.Stderr, "relayload:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "relayload:", err)
		if errors.Is(err, syscall.ECONNRESET) && len(os.Args) > 1 && os.Args[1] != "run" {
			fmt.Fprintln(os.Stderr, "relayload: a relayd with its default limits resets clients beyond --client-rate (500/s per IP, bursts of 1000) and --max-clients-per-ip (1000): run it with --client-rate 0 --max-clients-per-ip 0 for load, and --max-sessions 0 to hold more than 10000 (relayload run does)")
		}
		os.Exit(1)
	}
}

// usageError is a bad command line: exit status 2.
type usageError struct{ error }

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{errors.New("missing command")}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "echo-server":
		return cmdEchoServer(ctx, rest, stderr)
	case "bulk":
		return cmdBulk(ctx, rest, stdout, stderr)
	case "rtt":
		return cmdRTT(ctx, rest, stdout, stderr)
	case "rate":
		return cmdRate(ctx, rest, stdout, stderr)
	case "hold":
		return cmdHold(ctx, rest, stdout, stderr)
	case "proxy":
		return cmdProxy(ctx, rest, stderr)
	case "run":
		return cmdRun(ctx, rest, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return usageError{fmt.Errorf("unknown command %q", cmd)}
	}
}

// newFlags returns a FlagSet for one command that reports errors to stderr.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("relayload "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses args and turns flag errors into usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}
