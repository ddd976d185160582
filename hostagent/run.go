package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/hostagent/agent"
	"github.com/relayproject/relay/internal/cli"
	"github.com/relayproject/relay/internal/logging"
	"github.com/relayproject/relay/internal/names"
	"github.com/relayproject/relay/internal/profiling"
	"github.com/relayproject/relay/internal/shallow"
	"github.com/relayproject/relay/internal/splice"
)

type labelsFlag map[string]string

func (l labelsFlag) String() string {
	parts := make([]string, 0, len(l))
	for k, v := range l {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

// Repeatable makes HOSTAGENT_LABEL a comma-separated list (see cli.Parse).
func (l labelsFlag) Repeatable() {}

func (l labelsFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	// Checked as the relay checks a Hello's labels (their number too, once
	// every flag is in): refused there, each attach would fail.
	if err := names.Labels(map[string]string{k: v}); err != nil {
		return err
	}
	l[k] = v
	return nil
}

// hostIDFlag is --host-id, checked as the relay checks a Hello's host id.
// Empty, it would be the hostname: given empty on purpose (from a template
// whose value is missing, say), it is a mistake the default would hide.
type hostIDFlag string

func (f *hostIDFlag) String() string { return string(*f) }

func (f *hostIDFlag) Set(v string) error {
	if v == "" {
		return errors.New("must not be empty (leave it unset for the hostname)")
	}
	if err := names.HostID(v); err != nil {
		return err
	}
	*f = hostIDFlag(v)
	return nil
}

type options struct {
	unknownEnv []string    // HOSTAGENT_* variables that set no flag
	repeated   [][2]string // flags given more than once, each with its last value, which wins
	inert      [][2]string // flags given that do nothing with the others, each with why

	relays              []string
	service, hostID     string
	idle, maxSessions   int
	conns               int
	streamPerSession    bool
	slotCredits         bool
	warmLinger          time.Duration
	stallTimeout        time.Duration
	weight              int
	resolveInterval     time.Duration
	labels              labelsFlag
	dialTimeout         time.Duration
	backendProbe        time.Duration
	drainTimeout        time.Duration
	logLevel, logFormat string
	metricsAddr         string
	pprofAddr           string
	mode, target        string
	sec                 securityOptions
}

const usage = `Usage: hostagent [flags] echo
       hostagent [flags] forward HOST:PORT

hostagent attaches this machine to a relay and serves the relay's clients:
  echo               echo every byte back (the packaged example server)
  forward HOST:PORT  bridge each client to a local TCP server, half-close both ways

Flags:
`

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{labels: labelsFlag{}}
	fs := flag.NewFlagSet("hostagent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	relays := fs.String("relay", "localhost:8000", "relay gRPC `address`es, comma-separated; slots are kept on each")
	fs.StringVar(&o.service, "service", "default", "`service` to serve on the relay")
	fs.Var((*hostIDFlag)(&o.hostID), "host-id", "`id` of this host on the relay (default the hostname)")
	fs.IntVar(&o.idle, "idle", 10, "idle slots kept open on each relay, waiting for clients")
	fs.IntVar(&o.conns, "conns", 1, "gRPC connections kept to each relay, slots spread over them (1 to 16)")
	fs.BoolVar(&o.slotCredits, "slot-credits", false, "keep each relay's --idle idle slots as credits on one stream instead of --idle streams: idle slots cost the relay no stream, a session's stream opens when the relay offers its client (one round trip more; a stream whose session ended waits --warm-linger as an idle stream for the next client, with no round trip), and a client offered to an agent that exits goes to another host untouched")
	fs.DurationVar(&o.warmLinger, "warm-linger", 500*time.Millisecond, "with --slot-credits, how long a stream whose session ended waits as an idle stream for the next client before the relay withdraws it (its clients skip the offer's round trip; a client given to it while this agent is stopped waits, as with idle streams)")
	fs.DurationVar(&o.stallTimeout, "stall-timeout", agent.DefaultStallTimeout, "end a session whose backend (forward's server, or echo's client) has taken none of the relay's bytes for this long while they wait (its socket's kernel counters show a slow reader taking them), and that moved no byte the other way either: TIMEOUT to the relay, a reset to the backend. A client's reset cannot reach such a session (the relay's Close waits behind the bytes), which would hold its slot until the relay's --idle-timeout. 0: only that")
	fs.BoolVar(&o.streamPerSession, "stream-per-session", false, "open a new Attach stream for every session; by default a stream whose session ended cleanly is offered again (sequential sessions), and up to half of --idle counts open sessions whose streams come back")
	fs.IntVar(&o.maxSessions, "max-sessions", 0, "most concurrent sessions; 0 means no cap")
	fs.DurationVar(&o.resolveInterval, "resolve-interval", 30*time.Second, "how often a --relay given by DNS name is looked up again; the agent keeps slots on every address of the name")
	fs.IntVar(&o.weight, "weight", 1, "relative capacity of this host: relays give it clients in proportion (1 to 1000)")
	fs.Var(o.labels, "label", "`KEY=VALUE` shown in the relay's status (repeatable)")
	fs.DurationVar(&o.dialTimeout, "dial-timeout", 5*time.Second, "forward: how long to wait for the local server to accept")
	fs.DurationVar(&o.backendProbe, "backend-probe-interval", 500*time.Millisecond, "forward: once a session finds the local server refusing connections, offer the relays no slots (clients wait in the relay's queue or go to other hosts) and dial it this often until it answers; 0 keeps offering slots, and each client of the outage is reset")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "on SIGTERM/SIGINT, how long open sessions may run before they are closed")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "`address` for Prometheus /metrics over HTTP, such as 127.0.0.1:9091 (default off)")
	o.sec.register(fs)
	fs.StringVar(&o.pprofAddr, "pprof-addr", "", "serve Go runtime profiles (/debug/pprof/) on this `address`, e.g. 127.0.0.1:6060; off when empty")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, "HOSTAGENT", args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, cli.UsageError{Err: err}
	}
	o.unknownEnv = cli.UnknownEnv(fs, "HOSTAGENT", tokenEnv)
	for _, name := range cli.Repeated(fs, args) {
		o.repeated = append(o.repeated, [2]string{name, fs.Lookup(name).Value.String()})
	}
	for _, r := range strings.Split(*relays, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		_, port, err := net.SplitHostPort(r)
		if err != nil {
			return nil, cli.UsageError{Err: fmt.Errorf("--relay %q: %v (want HOST:PORT)", r, err)}
		}
		if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
			return nil, cli.UsageError{Err: fmt.Errorf("--relay %q: port %q is not a number from 1 to 65535", r, port)}
		}
		if slices.Contains(o.relays, r) {
			// Twice the idle slots on one relay, and its share of
			// --max-sessions twice over: most likely a typo.
			return nil, cli.UsageError{Err: fmt.Errorf("--relay %q is given twice", r)}
		}
		o.relays = append(o.relays, r)
	}
	if len(o.relays) == 0 {
		return nil, cli.UsageError{Err: errors.New("--relay: no address given")}
	}
	// Checked here, not left to the listens, so that a port out of range
	// is a usage error (exit status 2) like any other bad flag.
	for _, a := range []struct{ flag, addr string }{{"metrics-addr", o.metricsAddr}, {"pprof-addr", o.pprofAddr}} {
		if a.addr == "" {
			continue // off
		}
		if err := cli.ListenAddr(a.addr); err != nil {
			return nil, cli.UsageError{Err: fmt.Errorf("--%s %q: %w", a.flag, a.addr, err)}
		}
	}
	if o.idle < 1 {
		return nil, cli.UsageError{Err: fmt.Errorf("--idle must be at least 1, got %d", o.idle)}
	}
	if o.conns < 1 || o.conns > 16 {
		return nil, cli.UsageError{Err: fmt.Errorf("--conns must be in [1, 16], got %d", o.conns)}
	}
	if o.dialTimeout <= 0 {
		return nil, cli.UsageError{Err: fmt.Errorf("--dial-timeout must be above 0, got %v", o.dialTimeout)}
	}
	if o.backendProbe < 0 {
		return nil, cli.UsageError{Err: fmt.Errorf("--backend-probe-interval must not be negative, got %v (0 keeps offering slots while the backend is down)", o.backendProbe)}
	}
	if o.warmLinger <= 0 {
		return nil, cli.UsageError{Err: fmt.Errorf("--warm-linger must be positive, got %v", o.warmLinger)}
	}
	if o.stallTimeout < 0 {
		return nil, cli.UsageError{Err: fmt.Errorf("--stall-timeout must not be negative, got %v (0 leaves it to the relay's --idle-timeout)", o.stallTimeout)}
	}
	if o.drainTimeout < 0 {
		return nil, cli.UsageError{Err: fmt.Errorf("--drain-timeout must not be negative, got %v (0 closes open sessions at once)", o.drainTimeout)}
	}
	if o.resolveInterval < time.Second {
		return nil, cli.UsageError{Err: fmt.Errorf("--resolve-interval must be at least 1s, got %v", o.resolveInterval)}
	}
	if o.weight < 1 || o.weight > 1000 {
		return nil, cli.UsageError{Err: fmt.Errorf("--weight must be between 1 and 1000, got %d", o.weight)}
	}
	if o.maxSessions < 0 {
		return nil, cli.UsageError{Err: fmt.Errorf("--max-sessions must not be negative, got %d", o.maxSessions)}
	}
	if err := names.Labels(o.labels); err != nil {
		return nil, cli.UsageError{Err: fmt.Errorf("--label: %v", err)}
	}
	if o.service == "" {
		return nil, cli.UsageError{Err: errors.New(`--service is empty: give a service the relay serves (relayd --listen ADDR=SERVICE), or leave the flag out for "default"`)}
	}
	if err := o.sec.validate(); err != nil {
		return nil, err
	}
	switch fs.Arg(0) {
	case "echo":
		if fs.NArg() != 1 {
			return nil, cli.UsageError{Err: fmt.Errorf("echo takes no argument, got %q", fs.Arg(1))}
		}
	case "forward":
		if fs.NArg() != 2 {
			return nil, cli.UsageError{Err: errors.New("forward needs one HOST:PORT argument")}
		}
		o.target = fs.Arg(1)
		_, port, err := net.SplitHostPort(o.target)
		if err != nil {
			return nil, cli.UsageError{Err: fmt.Errorf("forward %q: %v (want HOST:PORT)", o.target, err)}
		}
		if p, err := strconv.ParseUint(port, 10, 16); !(err == nil && p > 0) && !validServiceName(port) {
			return nil, cli.UsageError{Err: fmt.Errorf("forward %q: port %q is not a number from 1 to 65535 (or a service name such as http)", o.target, port)}
		}
	case "":
		return nil, cli.UsageError{Err: errors.New("missing mode: echo or forward HOST:PORT (see -h)")}
	default:
		return nil, cli.UsageError{Err: fmt.Errorf("unknown mode %q: want echo or forward HOST:PORT", fs.Arg(0))}
	}
	o.mode = fs.Arg(0)
	// Flags given that do nothing in this mode: said at start, as an
	// operator who set them expects them to act.
	fs.Visit(func(f *flag.Flag) {
		switch {
		case f.Name == "warm-linger" && !o.slotCredits:
			o.inert = append(o.inert, [2]string{f.Name, "it applies only with --slot-credits"})
		case (f.Name == "dial-timeout" || f.Name == "backend-probe-interval") && o.mode != "forward":
			o.inert = append(o.inert, [2]string{f.Name, "it applies only to forward"})
		}
	})
	return o, nil
}

// run serves until ctx is done, then stops offering slots and lets open
// sessions finish within --drain-timeout (or until force is done).
func run(ctx, force context.Context, args []string, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	log, err := logging.New(stderr, o.logLevel, o.logFormat)
	if err != nil {
		return cli.UsageError{Err: err}
	}
	for _, name := range o.unknownEnv {
		log.Warn(name+" is not the variable of any flag; ignored (see -h for the flags and their variables)", "variable", name)
	}
	for _, r := range o.repeated {
		log.Warn("--"+r[0]+" is given more than once: it takes one value, and only the last is used", "flag", r[0], "value", r[1])
	}
	for _, f := range o.inert {
		log.Warn("--"+f[0]+" is ignored: "+f[1], "flag", f[0])
	}
	dialFor, reload, watchCert, err := o.sec.dialOptions(log)
	if err != nil {
		return err
	}
	watchCtx, stopWatch := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() { defer close(watched); watchCert(watchCtx) }()
	defer func() { stopWatch(); <-watched }()
	var listener atomic.Pointer[agent.Listener] // set once listening
	defer cli.OnHangup(func() {
		log.Info("SIGHUP: reloading certificates and the token file")
		reload()
		if l := listener.Load(); l != nil {
			l.RetryRefused() // a relay that refused the old credentials may take the new ones
		}
	})()
	if o.pprofAddr != "" {
		stop, err := profiling.Start(o.pprofAddr, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	// The backend watch's probing ends with the agent's accepting (ctx),
	// and is waited for before run returns.
	probeCtx, stopProbing := context.WithCancel(ctx)
	watch := newBackendWatch(probeCtx, o.target, o.dialTimeout, o.backendProbe, log)
	defer func() {
		stopProbing()
		watch.wait()
	}()
	l, err := agent.Listen(context.Background(), agent.Config{
		Relays: o.relays, Service: o.service, HostID: o.hostID, Labels: o.labels,
		Idle: o.idle, Conns: o.conns, StreamPerSession: o.streamPerSession, SlotCredits: o.slotCredits, WarmLinger: o.warmLinger, StallTimeout: o.stallTimeout, MaxSessions: o.maxSessions, Weight: o.weight, ResolveInterval: o.resolveInterval, Logger: log, DialOptionsFor: dialFor,
	})
	if err != nil {
		return err
	}
	listener.Store(l)
	metrics := newAgentMetrics()
	if o.mode == "forward" {
		metrics.backendUp = func() bool { return !watch.down.Load() }
	}
	metricsSrv, err := metrics.serve(o.metricsAddr, l)
	if err != nil {
		now, cancel := context.WithCancel(context.Background())
		cancel() // nothing was served yet: stop at once
		l.Shutdown(now)
		return err
	}
	if metricsSrv != nil {
		defer metricsSrv.Close()
	}
	if o.mode == "forward" {
		watch.start(l)
	}
	links := make([]string, len(o.relays))
	for i, r := range o.relays {
		links[i] = r + "=" + o.sec.linkDescription(r)
	}
	log.Info("hostagent started", "mode", o.mode, "relays", strings.Join(links, ","), "service", o.service, "idle", o.idle, "target", o.target,
		"metrics_addr", metricsSrv.AddrString())

	// Dialing the backend is the deepest call a session makes: see
	// package shallow.
	deep := shallow.NewPool(0)
	defer deep.Close()
	// handle serves one session and calls done once it is over, which may
	// be after handle has returned.
	var handle func(c *agent.Conn, log *slog.Logger, done func())
	switch o.mode {
	case "echo":
		handle = func(c *agent.Conn, log *slog.Logger, done func()) { defer done(); serveEcho(c, log) }
	case "forward":
		handle = func(c *agent.Conn, log *slog.Logger, done func()) {
			if !forward(c, o.target, o.dialTimeout, watch, deep, log, done) {
				metrics.dialErrors.Inc()
			}
		}
	}

	var sessions sync.WaitGroup
	stopAccept := context.AfterFunc(ctx, func() { l.Close() })
	defer stopAccept()
	for {
		nc, err := l.Accept()
		if err != nil {
			break // closed
		}
		c := nc.(*agent.Conn)
		sessions.Add(1)
		go handle(c, log.With("session_id", c.SessionID(), "client_addr", c.RemoteAddr().String()), sessions.Done)
	}
	log.Info("draining", "drain_timeout", o.drainTimeout)
	dctx, cancel := context.WithTimeout(force, o.drainTimeout)
	defer cancel()
	// Past the drain, resets of the sessions it ends wait 2 s at most for
	// a slow backend to take its last bytes, not a minute.
	defer context.AfterFunc(dctx, splice.HurryResets)()
	if err := l.Shutdown(dctx); err != nil {
		log.Warn("drain ended: open sessions were closed", "err", err)
	}
	sessions.Wait()
	log.Info("hostagent stopped")
	return nil
}

// serveEcho writes back every byte, then half-closes. A session that opens
// with a conformance command line (see conformanceCommands) gets the
// behaviour it asks for after the line is echoed; any other session is a
// plain echo, and the command lines themselves are echoed like any bytes.
func serveEcho(c *agent.Conn, log *slog.Logger) {
	defer c.Close()
	cmd, eof, err := echoPrelude(c)
	var n int64
	if err == nil && !eof {
		switch cmd {
		case cmdHalfClose:
			// Half-close first, then read and discard until the client's FIN.
			if err = c.CloseWrite(); err == nil {
				n, err = io.Copy(io.Discard, c)
			}
			log.Debug("conformance half-close done", "discarded", n, "err", err)
			return
		case cmdAbort:
			c.AbortWith(relayv1.CloseReason_CLOSE_REASON_HOST_ABORT, errors.New("conformance: abort asked by the client"))
			return
		case cmdBulk:
			_, err = c.Write(bulkPayload())
		}
		if err == nil {
			n, err = splice.Copy(c, c)
		}
	}
	if err == nil {
		err = c.CloseWrite()
	}
	if err != nil {
		log.Debug("echo session aborted", "bytes", n, "err", err)
		return
	}
	log.Debug("echo session done", "bytes", n)
}

// The conformance convention (docs/writing-a-host.md): a session whose first
// bytes are exactly one of these lines asks the echo, once the line has been
// echoed, to half-close first, to abort, or to send conformanceBulkSize
// bytes (byte i is i%251) before echoing on. The conformance suite
// (hostagent/conformance) uses them for what a plain echo cannot be asked to
// do. They are harmless to a plain echo user: only the exact line, first in
// a session, triggers anything.
const (
	cmdHalfClose        = "CONFORMANCE HALFCLOSE\n"
	cmdAbort            = "CONFORMANCE ABORT\n"
	cmdBulk             = "CONFORMANCE BULK\n"
	conformanceBulkSize = 1 << 20
)

var conformanceCommands = []string{cmdHalfClose, cmdAbort, cmdBulk}

// echoPrelude echoes the session's first bytes while they may still be a
// conformance command, reading no further than the shortest command that
// still matches, so no byte after a command line is consumed. It returns the
// command the session opened with, if any, and whether the client's EOF came.
func echoPrelude(c *agent.Conn) (cmd string, eof bool, err error) {
	var seen []byte
	buf := make([]byte, 32)
	for {
		want := 0 // bytes that may complete the shortest matching command
		for _, k := range conformanceCommands {
			if strings.HasPrefix(k, string(seen)) && (want == 0 || len(k)-len(seen) < want) {
				want = len(k) - len(seen)
			}
		}
		if want == 0 {
			return "", false, nil // not a command: a plain echo from here on
		}
		n, rerr := c.Read(buf[:want])
		if n > 0 {
			if _, err := c.Write(buf[:n]); err != nil {
				return "", false, err
			}
			seen = append(seen, buf[:n]...)
			if slices.Contains(conformanceCommands, string(seen)) {
				return string(seen), false, nil
			}
		}
		if rerr == io.EOF {
			return "", true, nil
		}
		if rerr != nil {
			return "", false, rerr
		}
	}
}

// bulkPayload is what cmdBulk sends; Write splits it into Data frames of at
// most the relay's max_data_bytes.
func bulkPayload() []byte {
	b := make([]byte, conformanceBulkSize)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// forward joins the session with a new connection to target, and calls
// done when the join is over. It returns once the join has started (a
// silent session keeps no goroutine: splice.Start), reporting false when
// target could not be reached.
func forward(c *agent.Conn, target string, timeout time.Duration, watch *backendWatch, deep *shallow.Pool, log *slog.Logger, done func()) bool {
	var backend net.Conn
	var err error
	deep.Run(func() { backend, err = net.DialTimeout("tcp", target, timeout) })
	if err != nil {
		reason := dialFailureReason(err)
		if reason == relayv1.CloseReason_CLOSE_REASON_HOST_ABORT {
			watch.succeeded() // it is up: it accepted
			log.Warn("backend reset the connection as it opened", "target", target, "err", err)
		} else {
			msg := "backend unreachable"
			if watch.withholds() {
				msg += ": offering no slots until it answers"
			}
			log.Log(context.Background(), watch.failed(), msg, "target", target, "err", err)
		}
		c.AbortWith(reason, fmt.Errorf("dial %s: %w", target, err))
		done()
		return false
	}
	watch.succeeded()
	splice.Start(c, backend.(*net.TCPConn), func(res splice.Result) {
		log.Debug("forward session done", "to_backend", res.AToB, "from_backend", res.BToA, "err", res.Err)
		done()
	})
	return true
}

// validServiceName reports whether port names a TCP service ("http").
func validServiceName(port string) bool {
	if _, err := strconv.Atoi(port); err == nil {
		return false // a number, out of range
	}
	p, err := net.LookupPort("tcp", port)
	return err == nil && p > 0
}

// dialFailureReason is how a session ends when its backend dial failed:
// BACKEND_UNAVAILABLE, so that the relay passes this agent over for a
// while, except for a reset as the connection opened, which comes from a
// backend that is up (it accepted, then reset).
func dialFailureReason(err error) relayv1.CloseReason {
	if errors.Is(err, syscall.ECONNRESET) {
		return relayv1.CloseReason_CLOSE_REASON_HOST_ABORT
	}
	return relayv1.CloseReason_CLOSE_REASON_BACKEND_UNAVAILABLE
}
