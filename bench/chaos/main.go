//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := mainExit(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// mainExit runs the harness and turns the outcome into the exit status: 0
// clean, 1 a violation, a leak or a failure to run, 2 a bad command line.
func mainExit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 2
	}
	sum, err := run(ctx, cfg, stdout)
	if sum != nil {
		fmt.Fprintln(stdout, sum.line())
	}
	if err != nil {
		if !errors.Is(err, errFailed) { // the summary line says what failed
			fmt.Fprintln(stderr, "chaos:", err)
		}
		return 1
	}
	return 0
}

// Fault kinds, in the order "all" lists them; stopall is only by name.
var (
	allFaults   = []string{"kill", "stop", "term", "relayterm", "relaykill"}
	knownFaults = append(slices.Clone(allFaults), "stopall")
	agentKinds  = []string{"plain", "credits", "conns2", "maxsess", "sps"}
)

// config is the parsed command line.
type config struct {
	seed        uint64
	dur         time.Duration
	workers     int
	relays      int
	agents      []string
	faults      []string // sorted, no duplicates
	faultGap    time.Duration
	logLevel    string
	out         string
	bin         string
	hang        time.Duration
	settle      time.Duration
	behaviour   string
	relayDrain  time.Duration
	agentDrain  time.Duration
	idle        int
	relayArgs   []string
	agentArgs   []string
	maxClients  int
	stallers    int
	stallFor    time.Duration
	backend     string
	weights     []int // per behaviours[i]
	stallReport time.Duration
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		c                                 config
		agents, faults, mix, rArgs, aArgs string
	)
	fs.Uint64Var(&c.seed, "seed", 1, "PRNG seed: the same seed draws the same clients and faults")
	fs.DurationVar(&c.dur, "dur", 120*time.Second, "how long new clients start (the run takes longer: setup, the last clients, the checks)")
	fs.IntVar(&c.workers, "workers", 32, "concurrent clients")
	fs.IntVar(&c.relays, "relays", 2, "number of relayd processes")
	fs.StringVar(&agents, "agents", "plain,credits,conns2", "hostagent variants, one agent each: "+strings.Join(agentKinds, ","))
	fs.StringVar(&faults, "faults", "all", "comma-separated faults: "+strings.Join(knownFaults, ",")+", or all ("+strings.Join(allFaults, ",")+") or none")
	fs.DurationVar(&c.faultGap, "fault-gap", 6*time.Second, "mean time between faults")
	fs.StringVar(&c.logLevel, "log-level", "info", "--log-level of relayd and hostagent")
	fs.StringVar(&c.out, "out", "", "`directory` for logs and results, created if missing, must be empty (default: a new one under "+os.TempDir()+")")
	fs.StringVar(&c.bin, "bin", "", "`directory` with relayd, hostagent and relayload already built (default: build them from the module of the working directory)")
	fs.DurationVar(&c.hang, "hang", 90*time.Second, "a client with no end after this long is a hang (a violation)")
	fs.DurationVar(&c.settle, "settle", 30*time.Second, "after the load, how long processes may take to come back to their baseline before it counts as a leak")
	fs.StringVar(&c.behaviour, "behaviour", "", "run every client with this behaviour (see -mix)")
	fs.DurationVar(&c.relayDrain, "relay-drain", 5*time.Second, "relayd --drain-timeout")
	fs.DurationVar(&c.agentDrain, "agent-drain", 8*time.Second, "hostagent --drain-timeout")
	fs.IntVar(&c.idle, "idle", 10, "hostagent --idle")
	fs.StringVar(&rArgs, "relay-args", "", "more relayd arguments, space-separated")
	fs.StringVar(&aArgs, "agent-args", "", "more hostagent arguments, space-separated")
	fs.IntVar(&c.maxClients, "max-clients", 0, "start at most this many clients (0: as many as -dur allows)")
	fs.IntVar(&c.stallers, "stallers", 0, "extra clients that send 4 MiB and do not read for -stall-for")
	fs.DurationVar(&c.stallFor, "stall-for", 30*time.Second, "how long -stallers stop reading")
	fs.StringVar(&c.backend, "backend", "echo", "echo (relayload echo-server) or custom (in the harness: for the srv*/clireset behaviours)")
	fs.StringVar(&mix, "mix", "", "behaviour weights, e.g. full=2,stall=1 (the others 0); default: "+defaultMix())
	fs.DurationVar(&c.stallReport, "stall-report", 20*time.Second, "log clients that made no progress for this long (and dump the processes' goroutines)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: every setting is a flag (-h lists them)", fs.Arg(0))
	}
	c.relayArgs, c.agentArgs = strings.Fields(rArgs), strings.Fields(aArgs)

	for _, v := range []struct {
		name string
		d    time.Duration
		min  time.Duration
	}{{"dur", c.dur, 1}, {"fault-gap", c.faultGap, 1}, {"hang", c.hang, time.Second}, {"settle", c.settle, 0},
		{"relay-drain", c.relayDrain, 0}, {"agent-drain", c.agentDrain, 0}, {"stall-for", c.stallFor, 0}, {"stall-report", c.stallReport, 1}} {
		if v.d < v.min {
			return nil, fmt.Errorf("-%s must be at least %v, got %v", v.name, v.min, v.d)
		}
	}
	for _, v := range []struct {
		name     string
		n        int
		min, max int
	}{{"workers", c.workers, 1, 10000}, {"relays", c.relays, 1, 16}, {"idle", c.idle, 1, 1000},
		{"max-clients", c.maxClients, 0, 1 << 30}, {"stallers", c.stallers, 0, 10000}} {
		if v.n < v.min || v.n > v.max {
			return nil, fmt.Errorf("-%s must be in [%d, %d], got %d", v.name, v.min, v.max, v.n)
		}
	}

	for _, a := range strings.Split(agents, ",") {
		a = strings.TrimSpace(a)
		if !slices.Contains(agentKinds, a) {
			return nil, fmt.Errorf("-agents: unknown variant %q (want a comma-separated list of %s)", a, strings.Join(agentKinds, ", "))
		}
		c.agents = append(c.agents, a)
	}

	for _, f := range strings.Split(faults, ",") {
		switch f = strings.TrimSpace(f); {
		case f == "all":
			c.faults = append(c.faults, allFaults...)
		case f == "none" || f == "":
		case slices.Contains(knownFaults, f):
			c.faults = append(c.faults, f)
		default:
			return nil, fmt.Errorf("-faults: unknown fault %q (want a comma-separated list of %s, or all or none)", f, strings.Join(knownFaults, ", "))
		}
	}
	slices.Sort(c.faults)
	c.faults = slices.Compact(c.faults)

	if c.backend != "echo" && c.backend != "custom" {
		return nil, fmt.Errorf("-backend must be echo or custom, got %q", c.backend)
	}
	c.weights = make([]int, len(behaviours))
	if mix == "" {
		for i, b := range behaviours {
			c.weights[i] = b.weight
		}
		if c.backend == "custom" && c.behaviour == "" {
			return nil, errors.New("-backend custom needs -mix or -behaviour with its behaviours (" + strings.Join(customBehaviours, ",") + ")")
		}
	} else {
		for _, kv := range strings.Split(mix, ",") {
			k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
			i := slices.IndexFunc(behaviours, func(b behaviour) bool { return b.name == k })
			n, err := strconv.Atoi(v)
			if i < 0 || err != nil || n < 0 {
				return nil, fmt.Errorf("-mix: %q is not NAME=WEIGHT with a known behaviour and a whole number ≥ 0 (behaviours: %s)", kv, behaviourNames())
			}
			c.weights[i] = n
		}
	}
	total := 0
	for i, w := range c.weights {
		total += w
		if w > 0 && isCustom(behaviours[i].name) != (c.backend == "custom") {
			return nil, fmt.Errorf("-mix: behaviour %s needs -backend %s", behaviours[i].name, backendFor(behaviours[i].name))
		}
	}
	if total == 0 && c.behaviour == "" {
		return nil, errors.New("-mix gives every behaviour weight 0")
	}
	if c.behaviour != "" {
		if !slices.ContainsFunc(behaviours, func(b behaviour) bool { return b.name == c.behaviour }) {
			return nil, fmt.Errorf("-behaviour: unknown %q (behaviours: %s)", c.behaviour, behaviourNames())
		}
		if isCustom(c.behaviour) != (c.backend == "custom") {
			return nil, fmt.Errorf("-behaviour %s needs -backend %s", c.behaviour, backendFor(c.behaviour))
		}
	}
	if c.stallers > 0 && c.backend == "custom" {
		return nil, errors.New("-stallers needs -backend echo")
	}
	return &c, nil
}

func backendFor(beh string) string {
	if isCustom(beh) {
		return "custom"
	}
	return "echo"
}

func behaviourNames() string {
	var s []string
	for _, b := range behaviours {
		s = append(s, b.name)
	}
	return strings.Join(s, ", ")
}

func defaultMix() string {
	var s []string
	for _, b := range behaviours {
		if b.weight > 0 {
			s = append(s, fmt.Sprintf("%s=%d", b.name, b.weight))
		}
	}
	return strings.Join(s, ",")
}
