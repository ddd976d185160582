// Package suite is the conformance suite for host processes: it runs a
// relayd of its own on free loopback ports, launches the host under test
// (any program, in any language, that speaks relay.v1.HostService), drives
// TCP clients through a fixed list of named cases, and reports a pass or a
// one-line reason for each. Bytes are checked one by one, in order: a host
// that corrupts, drops or reorders bytes, ignores half-close, or stops
// replenishing its slots fails.
//
// Two cases need the host to do something an echo cannot be asked to do
// (half-close first, abort) and one needs it to send more than it received:
// a conformance host follows a small convention on the first line of a
// session, described in docs/writing-a-host.md and in Commands.
package suite

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/relayproject/relay/internal/portclaim"
)

// The conformance convention: a session whose first bytes are exactly one
// of these lines asks the host for a behaviour. A host echoes the line first
// (every byte of it, and nothing after it yet), then:
const (
	// CommandHalfClose: half-close (CloseWrite) at once, keep reading and
	// discarding the client's bytes until its CloseWrite, then end cleanly.
	CommandHalfClose = "CONFORMANCE HALFCLOSE\n"
	// CommandAbort: abort the session (Close, reason HOST_ABORT).
	CommandAbort = "CONFORMANCE ABORT\n"
	// CommandBulk: send BulkSize bytes where byte i is i%251, in Data frames
	// no larger than Welcome.max_data_bytes, then go on echoing.
	CommandBulk = "CONFORMANCE BULK\n"
)

// BulkSize is how many bytes CommandBulk asks for.
const BulkSize = 1 << 20

// Commands are the conformance command lines, for hosts written in Go.
var Commands = []string{CommandHalfClose, CommandAbort, CommandBulk}

// Config configures one run of the suite.
type Config struct {
	// Command is the host under test and its arguments; "{relay}" in an
	// argument is replaced by the relay's gRPC address, which is also in the
	// environment as RELAY_ADDR. Required.
	Command []string
	// Dir is the host's working directory; empty means the current one.
	Dir string
	// Env is added to the host's environment (KEY=VALUE).
	Env []string
	// Relayd is the relayd binary to run (see BuildRelayd). Required.
	Relayd string
	// CaseTimeout bounds each case; zero means 30s.
	CaseTimeout time.Duration
	// StopTimeout bounds the host's exit after SIGTERM (the exit_on_sigterm
	// case); zero means 10s.
	StopTimeout time.Duration
	// Cases selects cases by name, run in the suite's order; nil runs all.
	Cases []string
	// HostOutput receives the host's stdout and stderr; nil discards them
	// (the last lines still appear in failure reasons when the host exits).
	HostOutput io.Writer
	// Progress receives one line per case as it ends; nil means none.
	Progress io.Writer
}

// Result is the outcome of one case.
type Result struct {
	Name     string
	Pass     bool
	Reason   string // why it failed; for a pass, an optional detail
	Duration time.Duration
}

// Report is the outcome of a run, one Result per case run.
type Report struct {
	Results []Result
	// HostStop is the error in stopping the host, if any (it did not exit
	// in time after SIGTERM and was killed); the exit_on_sigterm case
	// reports it too.
	HostStop error
}

// Passed reports whether every case passed.
func (r *Report) Passed() bool {
	for _, res := range r.Results {
		if !res.Pass {
			return false
		}
	}
	return len(r.Results) > 0
}

// Result returns the result of the named case, if it ran.
func (r *Report) Result(name string) (Result, bool) {
	for _, res := range r.Results {
		if res.Name == name {
			return res, true
		}
	}
	return Result{}, false
}

// Print writes the pass/fail table.
func (r *Report) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CASE\tRESULT\tTIME\tREASON")
	passed := 0
	for _, res := range r.Results {
		verdict := "FAIL"
		if res.Pass {
			verdict = "pass"
			passed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", res.Name, verdict, res.Duration.Round(time.Millisecond), oneLine(res.Reason))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d of %d cases passed\n", passed, len(r.Results))
	for _, res := range r.Results {
		if !res.Pass && strings.Contains(res.Reason, "\n") {
			fmt.Fprintf(w, "\n%s: %s\n", res.Name, res.Reason)
		}
	}
}

// oneLine keeps a reason to its first line (host output follows on others).
func oneLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// ExitCase is the case that always runs last: the host, sent SIGTERM,
// exits within Config.StopTimeout.
const ExitCase = "exit_on_sigterm"

// CaseNames lists the cases in the order they run (ExitCase, which always
// runs, after them).
func CaseNames() []string {
	names := make([]string, len(cases))
	for i, c := range cases {
		names[i] = c.name
	}
	return names
}

// Run runs the suite once. It returns an error only when the suite itself
// cannot run (bad Config, relayd does not start, the host cannot be
// started); a misbehaving host is a failed case in the Report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if len(cfg.Command) == 0 || cfg.Command[0] == "" {
		return nil, errors.New("no host command given")
	}
	if cfg.Relayd == "" {
		return nil, errors.New("no relayd binary given")
	}
	if cfg.CaseTimeout <= 0 {
		cfg.CaseTimeout = 30 * time.Second
	}
	for _, name := range cfg.Cases {
		if !slices.Contains(CaseNames(), name) {
			return nil, fmt.Errorf("unknown case %q (cases: %s)", name, strings.Join(CaseNames(), ", "))
		}
	}

	// relay_restart and max_data_bytes start a new relay on the same
	// addresses, with the host redialling meanwhile: claimed ports stay
	// free in between, where a port 0 one could be taken by another socket.
	var addrs [3]string
	for i := range addrs {
		c, err := portclaim.New()
		if err != nil {
			return nil, err
		}
		defer c.Release() // after the relay's stop, deferred below
		addrs[i] = c.Addr
	}
	e := &env{cfg: cfg}
	startCtx, cancel := context.WithTimeout(ctx, cfg.CaseTimeout)
	r, err := e.startRelay(startCtx, addrs[0], addrs[1], addrs[2])
	cancel()
	if err != nil {
		return nil, err
	}
	defer func() {
		if e.relay != nil {
			e.relay.stop()
		}
	}()
	h, err := startHost(cfg, r.grpcAddr)
	if err != nil {
		return nil, err
	}
	e.host = h

	report := &Report{}
	for _, c := range cases {
		if cfg.Cases != nil && !slices.Contains(cfg.Cases, c.name) {
			continue
		}
		res := e.runCase(ctx, c)
		report.Results = append(report.Results, res)
		if cfg.Progress != nil {
			verdict := "pass"
			if !res.Pass {
				verdict = "FAIL: " + oneLine(res.Reason)
			}
			fmt.Fprintf(cfg.Progress, "%-24s %s\n", res.Name, verdict)
		}
	}
	// Last, always: a host that does not exit on SIGTERM most likely still
	// holds a session it should have dropped (a Close it never read, say,
	// while blocked writing), which every case passed regardless.
	bound := cmp.Or(cfg.StopTimeout, 10*time.Second)
	stopStart := time.Now()
	report.HostStop = h.stop(bound)
	res := Result{Name: ExitCase, Pass: report.HostStop == nil, Duration: time.Since(stopStart)}
	if !res.Pass {
		res.Reason = report.HostStop.Error() + ": something it holds keeps it running, most often a session it never dropped (a Close it did not read while blocked writing; see docs/writing-a-host.md)"
	}
	report.Results = append(report.Results, res)
	if cfg.Progress != nil {
		verdict := "pass"
		if !res.Pass {
			verdict = "FAIL: " + oneLine(res.Reason)
		}
		fmt.Fprintf(cfg.Progress, "%-24s %s\n", res.Name, verdict)
	}
	return report, nil
}

// runCase runs one case within the case timeout; a host that is gone or a
// relay that could not be restarted fails it without running it.
func (e *env) runCase(ctx context.Context, c testCase) Result {
	start := time.Now()
	res := Result{Name: c.name}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.CaseTimeout)
	defer cancel()
	// A host that exits ends the case at once: nothing it was owed will come.
	caseDone, watcherDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watcherDone)
		select {
		case <-e.host.exited:
			cancel()
		case <-caseDone:
		}
	}()
	defer func() { close(caseDone); <-watcherDone }()
	var err error
	switch {
	case e.host.running() != nil:
		err = e.host.running()
	case e.relay == nil:
		err = errors.New("no relay: an earlier case could not restart it")
	default:
		from := e.relay.mark()
		relay := e.relay
		res.Reason, err = c.run(e, ctx)
		if err == nil {
			err = protocolErrors(relay, from)
		}
		if herr := e.host.running(); herr != nil {
			err = herr // the host died: that explains the case better
		}
	}
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && e.host.running() == nil {
			err = fmt.Errorf("%w (case timeout %v)", err, e.cfg.CaseTimeout)
		}
		res.Reason = err.Error()
	} else {
		res.Pass = true
	}
	res.Duration = time.Since(start)
	return res
}

// protocolErrors fails a case in which relayd ended one of the host's
// streams for breaking the protocol.
func protocolErrors(r *relayd, from int) error {
	bad := []string{"InvalidArgument", "FailedPrecondition", "ResourceExhausted", "PermissionDenied", "DeadlineExceeded"}
	for _, l := range r.find(from, func(l logLine) bool {
		return l.msg() == "session aborted by host" || strings.HasPrefix(l.msg(), "session lost with its host's stream") || l.msg() == "slot ended while idle"
	}) {
		for _, code := range bad {
			if strings.Contains(l.str("err"), "code = "+code) {
				return fmt.Errorf("relay ended a stream of the host for a protocol error: %s", l.str("err"))
			}
		}
	}
	return nil
}
