// Command conformance checks a host process against the relay protocol: it
// starts a relayd of its own on free loopback ports, launches the host
// under test with the relay's gRPC address (in place of any {relay}
// argument, and as RELAY_ADDR in the environment), drives clients through
// the suite's named cases, prints a pass/fail table, stops the host, and
// exits 1 if any case failed.
//
//	go run ./hostagent/conformance -- go run ./hostagent --relay {relay} echo
//	go run ./hostagent/conformance -- npm --prefix examples/node-host start
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/relayproject/relay/hostagent/conformance/suite"
	"github.com/relayproject/relay/internal/cli"
)

func main() { cli.Main("conformance", run) }

const usage = `Usage: conformance [flags] -- COMMAND [ARGS...]

conformance starts a relayd on free loopback ports, launches COMMAND as the
host under test ({relay} in ARGS and $RELAY_ADDR are the relay's gRPC
address), runs the cases below, prints a pass/fail table, and exits 1 if any
case failed. A conformance host follows the convention in
docs/writing-a-host.md (CONFORMANCE HALFCLOSE / ABORT / BULK first lines).

Cases, in order: %s, then exit_on_sigterm (always run, last)

Flags:
`

func run(ctx, _ context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("conformance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	relaydBin := fs.String("relayd", "", "relayd `binary` to run (default: go build ./relayd from the module in the working directory)")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on each case")
	only := fs.String("run", "", "comma-separated `cases` to run (default all)")
	verbose := fs.Bool("v", false, "copy the host's output to stderr")
	fs.Usage = func() {
		fmt.Fprintf(stderr, usage, strings.Join(suite.CaseNames(), ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return cli.UsageError{Err: err}
	}
	if fs.NArg() == 0 {
		return cli.UsageError{Err: errors.New("no host command given: conformance [flags] -- COMMAND [ARGS...]")}
	}
	if *timeout <= 0 {
		return cli.UsageError{Err: fmt.Errorf("--timeout must be positive, got %v", *timeout)}
	}
	cfg := suite.Config{Command: fs.Args(), Relayd: *relaydBin, CaseTimeout: *timeout, Progress: stderr}
	if *only != "" {
		for _, name := range strings.Split(*only, ",") {
			cfg.Cases = append(cfg.Cases, strings.TrimSpace(name))
		}
	}
	// exit_on_sigterm always runs: naming it selects no other case.
	cfg.Cases = slices.DeleteFunc(cfg.Cases, func(name string) bool { return name == suite.ExitCase })
	if *only != "" && len(cfg.Cases) == 0 {
		cfg.Cases = []string{} // only exit_on_sigterm: start the host, stop it
	}
	for _, name := range cfg.Cases {
		if !slices.Contains(suite.CaseNames(), name) {
			return cli.UsageError{Err: fmt.Errorf("--run: unknown case %q (cases: %s)", name, strings.Join(suite.CaseNames(), ", "))}
		}
	}
	if *verbose {
		cfg.HostOutput = stderr
	}
	if cfg.Relayd == "" {
		dir, err := os.MkdirTemp("", "relay-conformance-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		fmt.Fprintln(stderr, "building relayd…")
		if cfg.Relayd, err = suite.BuildRelayd(ctx, dir); err != nil {
			return err
		}
	}
	report, err := suite.Run(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Println()
	report.Print(os.Stdout)
	if !report.Passed() {
		return errors.New("the host failed the conformance suite")
	}
	return nil
}
