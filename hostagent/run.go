package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/hostagent/agent"
	"github.com/relayproject/relay/internal/cli"
	"github.com/relayproject/relay/internal/logging"
	"github.com/relayproject/relay/internal/profiling"
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

func (l labelsFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	l[k] = v
	return nil
}

type options struct {
	relays              []string
	service, hostID     string
	idle, maxSessions   int
	labels              labelsFlag
	dialTimeout         time.Duration
	drainTimeout        time.Duration
	logLevel, logFormat string
	pprofAddr           string
	mode, target        string
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
	fs.StringVar(&o.hostID, "host-id", "", "`id` of this host on the relay (default the hostname)")
	fs.IntVar(&o.idle, "idle", 10, "idle slots kept open on each relay, waiting for clients")
	fs.IntVar(&o.maxSessions, "max-sessions", 0, "most concurrent sessions; 0 means no cap")
	fs.Var(o.labels, "label", "`KEY=VALUE` shown in the relay's status (repeatable)")
	fs.DurationVar(&o.dialTimeout, "dial-timeout", 5*time.Second, "forward: how long to wait for the local server to accept")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "on SIGTERM/SIGINT, how long open sessions may run before they are closed")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.pprofAddr, "pprof-addr", "", "serve Go runtime profiles (/debug/pprof/) on this `address`, e.g. 127.0.0.1:6060; off when empty")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, cli.UsageError{Err: err}
	}
	for _, r := range strings.Split(*relays, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(r); err != nil {
			return nil, cli.UsageError{Err: fmt.Errorf("--relay %q: %v (want HOST:PORT)", r, err)}
		}
		o.relays = append(o.relays, r)
	}
	if len(o.relays) == 0 {
		return nil, cli.UsageError{Err: errors.New("--relay: no address given")}
	}
	if o.idle < 1 {
		return nil, cli.UsageError{Err: fmt.Errorf("--idle must be at least 1, got %d", o.idle)}
	}
	if o.maxSessions < 0 {
		return nil, cli.UsageError{Err: fmt.Errorf("--max-sessions must not be negative, got %d", o.maxSessions)}
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
		if _, _, err := net.SplitHostPort(o.target); err != nil {
			return nil, cli.UsageError{Err: fmt.Errorf("forward %q: %v (want HOST:PORT)", o.target, err)}
		}
	case "":
		return nil, cli.UsageError{Err: errors.New("missing mode: echo or forward HOST:PORT (see -h)")}
	default:
		return nil, cli.UsageError{Err: fmt.Errorf("unknown mode %q: want echo or forward HOST:PORT", fs.Arg(0))}
	}
	o.mode = fs.Arg(0)
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
	if o.pprofAddr != "" {
		stop, err := profiling.Start(o.pprofAddr, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	l, err := agent.Listen(context.Background(), agent.Config{
		Relays: o.relays, Service: o.service, HostID: o.hostID, Labels: o.labels,
		Idle: o.idle, MaxSessions: o.maxSessions, Logger: log,
	})
	if err != nil {
		return err
	}
	log.Info("hostagent started", "mode", o.mode, "relays", strings.Join(o.relays, ","), "service", o.service, "idle", o.idle, "target", o.target)

	// handle serves one session and calls done once it is over, which may
	// be after handle has returned.
	var handle func(c *agent.Conn, log *slog.Logger, done func())
	switch o.mode {
	case "echo":
		handle = func(c *agent.Conn, log *slog.Logger, done func()) { defer done(); serveEcho(c, log) }
	case "forward":
		handle = func(c *agent.Conn, log *slog.Logger, done func()) { forward(c, o.target, o.dialTimeout, log, done) }
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
	if err := l.Shutdown(dctx); err != nil {
		log.Warn("drain ended: open sessions were closed", "err", err)
	}
	sessions.Wait()
	log.Info("hostagent stopped")
	return nil
}

// serveEcho writes back every byte, then half-closes.
func serveEcho(c *agent.Conn, log *slog.Logger) {
	defer c.Close()
	n, err := splice.Copy(c, c)
	if err == nil {
		err = c.CloseWrite()
	}
	if err != nil {
		log.Debug("echo session aborted", "bytes", n, "err", err)
		return
	}
	log.Debug("echo session done", "bytes", n)
}

// forward joins the session with a new connection to target, and calls
// done when the join is over. It returns once the join has started: a
// silent session keeps no goroutine (splice.Start).
func forward(c *agent.Conn, target string, timeout time.Duration, log *slog.Logger, done func()) {
	backend, err := net.DialTimeout("tcp", target, timeout)
	if err != nil {
		log.Warn("backend unreachable", "target", target, "err", err)
		c.AbortWith(relayv1.CloseReason_CLOSE_REASON_BACKEND_UNAVAILABLE, fmt.Errorf("dial %s: %w", target, err))
		done()
		return
	}
	splice.Start(c, backend.(*net.TCPConn), func(res splice.Result) {
		log.Debug("forward session done", "to_backend", res.AToB, "from_backend", res.BToA, "err", res.Err)
		done()
	})
}
