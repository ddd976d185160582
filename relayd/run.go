package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/relayproject/relay/clientbridge"
	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/internal/attachconn"
	"github.com/relayproject/relay/internal/cli"
	"github.com/relayproject/relay/internal/framecodec"
	"github.com/relayproject/relay/internal/logging"
	"github.com/relayproject/relay/internal/names"
	"github.com/relayproject/relay/internal/profiling"
	"github.com/relayproject/relay/internal/splice"
	"github.com/relayproject/relay/relayd/relay"
	"github.com/relayproject/relay/relayd/scheduler"
)

type options struct {
	unknownEnv []string    // RELAYD_* variables that set no flag
	repeated   [][2]string // flags given more than once, each with its last value, which wins

	grpcAddr, adminAddr, clientAddr string
	clientAddrSet                   bool
	listens                         listenFlag
	relayID                         string
	assignTimeout                   time.Duration
	maxPending                      int
	scheduler                       string
	helloTimeout                    time.Duration
	claimTimeout                    time.Duration
	drainTimeout                    time.Duration
	maxDataBytes                    int
	logLevel, logFormat             string
	metricsAddr                     string
	watchBuffer, maxWatchers        int
	sec                             securityOptions
	pprofAddr                       string
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("relayd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.grpcAddr, "grpc-addr", ":8000", "`address` for host agents: relay.v1.HostService, grpc.health.v1, reflection")
	fs.StringVar(&o.adminAddr, "admin-addr", "127.0.0.1:8001", "`address` for operators: relay.v1.StatusService, health, reflection")
	fs.StringVar(&o.clientAddr, "client-addr", ":8002", "`address` where raw TCP clients connect (service \"default\"); shorthand for --listen ADDR=default")
	fs.Var(&o.listens, "listen", "`ADDR=SERVICE`: a client port feeding hosts of SERVICE only (repeatable); with --listen, --client-addr is opened only when given")
	fs.Var((*relayIDFlag)(&o.relayID), "relay-id", "`id` of this relay in Welcome frames and status (default hostname-pid-xxxxxxxx, x random hex digits)")
	fs.DurationVar(&o.assignTimeout, "assign-timeout", 10*time.Second, "how long a client may wait for an idle slot before it is closed")
	fs.IntVar(&o.maxPending, "max-pending", 1024, "clients that may wait for a slot per service, in arrival order; more are closed at once")
	fs.StringVar(&o.scheduler, "scheduler", string(scheduler.LeastLoaded), "who gets a new client: least-loaded (ties round-robin), round-robin, random-two-choices, client-hash")
	fs.DurationVar(&o.helloTimeout, "hello-timeout", 10*time.Second, "how long a new Attach stream may take to send Hello, a new connection its TLS and HTTP/2 handshakes, and a connection may hold no stream before it is closed")
	fs.DurationVar(&o.claimTimeout, "claim-timeout", relay.DefaultClaimTimeout, "how long a host with slot credits (hostagent --slot-credits) may take to claim a client offered to it; after that the client goes to another host and the host's credits are withdrawn")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "on SIGTERM/SIGINT, how long open sessions may run before they are closed (a second signal stops at once)")
	fs.IntVar(&o.maxDataBytes, "max-data-bytes", relay.DefaultMaxDataBytes, "largest Data frame payload accepted and sent, in `bytes` (1024 to 4194304)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "`address` for Prometheus /metrics over HTTP, such as 127.0.0.1:9090 (default off)")
	fs.IntVar(&o.watchBuffer, "watch-buffer", relay.DefaultWatchBuffer, "events a WatchEvents stream may lag behind before its events are dropped (and counted)")
	fs.IntVar(&o.maxWatchers, "max-watchers", 100, "WatchEvents streams the admin port holds at once; more are refused with RESOURCE_EXHAUSTED (0: no limit)")
	o.sec.register(fs)
	fs.StringVar(&o.pprofAddr, "pprof-addr", "", "serve Go runtime profiles (/debug/pprof/) on this `address`, e.g. 127.0.0.1:6060; off when empty")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: relayd [flags]\n\nrelayd bridges raw TCP clients to host processes that attach over gRPC.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, "RELAYD", args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, cli.UsageError{Err: err}
	}
	o.unknownEnv = cli.UnknownEnv(fs, "RELAYD")
	for _, name := range cli.Repeated(fs, args) {
		o.repeated = append(o.repeated, [2]string{name, fs.Lookup(name).Value.String()})
	}
	if fs.NArg() > 0 {
		return nil, cli.UsageError{Err: fmt.Errorf("unexpected argument %q (relayd takes flags only; see -h)", fs.Arg(0))}
	}
	fs.Visit(func(f *flag.Flag) { o.clientAddrSet = o.clientAddrSet || f.Name == "client-addr" })
	// Checked here, not left to the listens, so that a port out of range
	// is a usage error (exit status 2) like any other bad flag. --listen
	// checks its own addresses as it is set.
	for _, a := range []struct{ flag, addr string }{{"grpc-addr", o.grpcAddr}, {"admin-addr", o.adminAddr}, {"client-addr", o.clientAddr}, {"metrics-addr", o.metricsAddr}, {"pprof-addr", o.pprofAddr}} {
		if a.addr == "" && (a.flag == "metrics-addr" || a.flag == "pprof-addr") {
			continue // off
		}
		if err := cli.ListenAddr(a.addr); err != nil {
			return nil, cli.UsageError{Err: fmt.Errorf("--%s %q: %w", a.flag, a.addr, err)}
		}
	}
	if err := o.checkPortsDistinct(); err != nil {
		return nil, err
	}
	if _, err := scheduler.ParsePolicy(o.scheduler); err != nil {
		return nil, cli.UsageError{Err: fmt.Errorf("--scheduler: %v", err)}
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"assign-timeout", o.assignTimeout}, {"hello-timeout", o.helloTimeout}, {"claim-timeout", o.claimTimeout}} {
		if d.v <= 0 {
			return nil, cli.UsageError{Err: fmt.Errorf("--%s must be positive, got %v", d.flag, d.v)}
		}
	}
	if o.drainTimeout < 0 {
		return nil, cli.UsageError{Err: fmt.Errorf("--drain-timeout must not be negative, got %v", o.drainTimeout)}
	}
	if o.maxWatchers < 0 {
		return nil, cli.UsageError{Err: fmt.Errorf("--max-watchers must not be negative, got %d", o.maxWatchers)}
	}
	if o.watchBuffer < 1 {
		return nil, cli.UsageError{Err: fmt.Errorf("--watch-buffer must be at least 1, got %d", o.watchBuffer)}
	}
	if o.maxPending < 0 {
		return nil, cli.UsageError{Err: fmt.Errorf("--max-pending must not be negative, got %d", o.maxPending)}
	}
	if o.maxDataBytes < 1024 || o.maxDataBytes > 4<<20 {
		return nil, cli.UsageError{Err: fmt.Errorf("--max-data-bytes must be between 1024 and 4194304, got %d", o.maxDataBytes)}
	}
	if err := o.sec.validate(o); err != nil {
		return nil, err
	}
	return o, nil
}

// relayIDFlag is --relay-id, checked as it is set (validRelayID).
type relayIDFlag string

func (f *relayIDFlag) String() string { return string(*f) }

func (f *relayIDFlag) Set(v string) error {
	if err := validRelayID(v); err != nil {
		return err
	}
	*f = relayIDFlag(v)
	return nil
}

// validRelayID accepts an id that every agent's Welcome can carry and a log
// can show: 1 to 128 bytes of UTF-8 with no control character. An empty one given on
// purpose (RELAYD_RELAY_ID= from a template whose value is missing, say) is
// refused rather than replaced by the default: agents tell relays apart by
// their ids, and a default the operator did not choose would hide the
// mistake.
func validRelayID(id string) error {
	if id == "" {
		return errors.New("must not be empty (leave it unset for the default, hostname-pid-xxxxxxxx)")
	}
	return names.Text(id, 128)
}

// checkPortsDistinct refuses an address given to two listeners: the second
// listen would fail with "address already in use", and its hint (another
// relayd?) would send the operator looking for the wrong thing. Two
// addresses clash on the same port when their hosts are the same (localhost
// is 127.0.0.1) or either is a wildcard (":8000", "0.0.0.0", "::").
func (o *options) checkPortsDistinct() error {
	type use struct{ flag, addr, host, port string }
	var uses []use
	add := func(flag, addr string) {
		hostPort, _, _ := strings.Cut(addr, "=")
		host, port, err := net.SplitHostPort(hostPort)
		if err != nil || port == "0" {
			return // off, reported elsewhere, or a port of the kernel's choice
		}
		if host == "localhost" {
			host = "127.0.0.1"
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			ip = ip.Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
			host = ip.String()
			if ip.IsUnspecified() {
				host = ""
			}
		}
		if n, err := strconv.ParseUint(port, 10, 16); err == nil {
			port = strconv.FormatUint(n, 10) // "08000" is port 8000
		}
		uses = append(uses, use{flag, addr, host, port})
	}
	add("--grpc-addr", o.grpcAddr)
	add("--admin-addr", o.adminAddr)
	add("--metrics-addr", o.metricsAddr)
	add("--pprof-addr", o.pprofAddr)
	for i, cl := range o.clientListeners() {
		if i == 0 && o.clientAddrListed() {
			add("--client-addr", cl.addr)
		} else {
			add("--listen", cl.addr+"="+cl.service)
		}
	}
	for i, u := range uses {
		for _, first := range uses[:i] {
			if u.port == first.port && (u.host == first.host || u.host == "" || first.host == "") {
				return cli.UsageError{Err: fmt.Errorf("%s %s: port %s is taken by %s %s; each listener needs a port of its own", u.flag, u.addr, u.port, first.flag, first.addr)}
			}
		}
	}
	return nil
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func listen(flagName, addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		hint := ""
		if strings.Contains(err.Error(), "address already in use") {
			hint = fmt.Sprintf(" (is another relayd running? see --%s)", flagName)
		}
		return nil, fmt.Errorf("listen %s: %w%s", addr, errors.Unwrap(err), hint)
	}
	return l, nil
}

// run serves until ctx is done, then drains: new clients are refused, idle
// slots end, and open sessions get --drain-timeout, or until force is done.
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
	if o.pprofAddr != "" {
		stop, err := profiling.Start(o.pprofAddr, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	policy, _ := scheduler.ParsePolicy(o.scheduler)
	obs, err := newObservability(log, o.metricsAddr != "")
	if err != nil {
		return err
	}
	sec, err := loadSecurity(&o.sec, o, log)
	if err != nil {
		return err
	}
	defer sec.reloadOnSIGHUP()() // through the drain too: a SIGHUP must never end relayd
	if sec.tls != nil {
		watchCtx, stopWatch := context.WithCancel(context.Background())
		watched := make(chan struct{})
		go func() { defer close(watched); sec.watchCertExpiry(watchCtx) }()
		defer func() { stopWatch(); <-watched }()
		if obs.registry != nil {
			for _, c := range sec.tlsMetrics() {
				if err := obs.registry.Register(c); err != nil {
					return fmt.Errorf("metrics: %w", err)
				}
			}
		}
	}

	grpcLis, err := listen("grpc-addr", o.grpcAddr)
	if err != nil {
		return err
	}
	defer grpcLis.Close()
	adminLis, err := listen("admin-addr", o.adminAddr)
	if err != nil {
		return err
	}
	defer adminLis.Close()
	var clientLis []net.Listener
	var services []string
	for i, cl := range o.clientListeners() {
		flagName := "listen"
		if i == 0 && o.clientAddrListed() {
			flagName = "client-addr"
		}
		l, err := listen(flagName, cl.addr)
		if err != nil {
			return err
		}
		defer l.Close()
		clientLis = append(clientLis, l)
		if !slices.Contains(services, cl.service) {
			services = append(services, cl.service)
		}
	}

	maxPending := o.maxPending
	if maxPending == 0 {
		maxPending = -1 // the bridge reads zero as "default"; the flag means "none"
	}
	bridge := clientbridge.New(clientbridge.Config{
		AssignTimeout: o.assignTimeout,
		MaxPending:    maxPending,
		Scheduler:     scheduler.New(policy, uint64(time.Now().UnixNano())),
		Logger:        log,
		OnReject:      obs.onReject,
		Limits:        o.sec.bridgeLimits(),
	})
	r, err := relay.New(relay.Config{
		RelayID: o.relayID, Version: version(), Bridge: bridge, Services: services,
		MaxDataBytes: o.maxDataBytes, HelloTimeout: o.helloTimeout, ClaimTimeout: o.claimTimeout, Logger: log,
		WatchBuffer: o.watchBuffer, MaxWatchers: o.maxWatchers,
		Authorize: sec.authorize, MaxSlotsPerHost: o.sec.maxSlotsPerHost, MaxSlotsPerConn: o.sec.maxSlotsPerConn,
		MaxCredits:  o.sec.maxCredits,
		IdleTimeout: o.sec.idleTimeout,
	})
	if err != nil {
		return err
	}
	obs.relay = r
	metricsSrv, err := obs.serveMetrics(o.metricsAddr, r)
	if err != nil {
		return err
	}
	if metricsSrv != nil {
		defer metricsSrv.Close()
	}

	// Health answers for "" (the port) and for each service the port
	// serves; all turn NOT_SERVING when the drain starts.
	hostHealth, adminHealth := newBoundedHealth(o.sec.maxHealthWatchers, r), newBoundedHealth(o.sec.maxHealthWatchers, r)
	hostHealth.SetServingStatus(relayv1.HostService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	for _, name := range []string{relayv1.StatusService_ServiceDesc.ServiceName, relayv1.AdminService_ServiceDesc.ServiceName} {
		adminHealth.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	// Canceled as each server stops: its streams other than Attach end.
	hostStop, stopHostStreams := context.WithCancel(context.Background())
	defer stopHostStreams()
	adminStop, stopAdminStreams := context.WithCancel(context.Background())
	defer stopAdminStreams()
	hostSrv := grpc.NewServer(slices.Concat(obs.serverOptions(hostStop), sec.hostServerOptions(o.helloTimeout), attachconn.ServerWindowOptions(), []grpc.ServerOption{
		grpc.MaxRecvMsgSize(o.maxDataBytes + 1024),
		grpc.ConnectionTimeout(o.helloTimeout),      // the TLS and HTTP/2 handshakes, too, are bounded
		grpc.ForceServerCodecV2(framecodec.Codec{}), // Data payloads into pooled buffers; plain proto on the wire
	})...)
	relayv1.RegisterHostServiceServer(hostSrv, r)
	healthpb.RegisterHealthServer(hostSrv, hostHealth)
	reflection.Register(hostSrv)

	// The observability chain (logging, metrics, recovery) wraps the token
	// check, so refused calls are logged and counted too.
	adminSrv := grpc.NewServer(slices.Concat(obs.serverOptions(adminStop), sec.adminServerOptions(), []grpc.ServerOption{grpc.ConnectionTimeout(o.helloTimeout)})...)
	relayv1.RegisterStatusServiceServer(adminSrv, r.StatusService())
	relayv1.RegisterAdminServiceServer(adminSrv, r.AdminService())
	healthpb.RegisterHealthServer(adminSrv, adminHealth)
	reflection.Register(adminSrv)
	obs.initServer(hostSrv)
	obs.initServer(adminSrv)

	errc := make(chan error, 2+len(clientLis))
	agentLis := newHandshakeListener(o.sec.limitAgentConns(grpcLis, r), sec.agentHandshakes(r))
	adminConns := newHandshakeListener(adminLis, handshakeConfig{})
	go func() { errc <- hostSrv.Serve(agentLis) }()
	go func() { errc <- adminSrv.Serve(adminConns) }()
	listening := make([]string, len(clientLis))
	var addrs []any // client_addr: the "default" service's first port, if it has one
	for i, cl := range o.clientListeners() {
		go func() { errc <- bridge.Serve(clientLis[i], cl.service) }()
		listening[i] = clientLis[i].Addr().String() + "=" + cl.service
		if cl.service == "default" && addrs == nil {
			addrs = []any{"client_addr", clientLis[i].Addr().String()}
		}
	}
	log.Info("relayd ready", slices.Concat([]any{"relay_id", r.ID(), "version", version(),
		"grpc_addr", grpcLis.Addr().String(), "admin_addr", adminLis.Addr().String()}, addrs, []any{
		"listeners", strings.Join(listening, ","),
		"scheduler", string(policy), "metrics_addr", metricsSrv.AddrString(),
		"tls", sec.tls != nil, "mtls", o.sec.tlsClientCA != "", "auth_tokens", sec.tokens != nil})...)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		serveErr = fmt.Errorf("serve: %w", serveErr)
	}

	// Drain: health NOT_SERVING, no new clients, idle slots end; open
	// sessions run to completion within the drain timeout.
	hostHealth.Shutdown()
	adminHealth.Shutdown()
	bridge.CloseListeners()
	if n := r.ActiveSessions(); n > 0 {
		log.Info("draining", "active_sessions", n, "drain_timeout", o.drainTimeout)
	}
	dctx, cancel := context.WithTimeout(force, o.drainTimeout)
	if !r.Drain(dctx) {
		// Say which ended it: the operator's second signal, or the time.
		reason := "--drain-timeout passed"
		if force.Err() != nil {
			reason = "second signal"
		}
		log.Warn("closing open sessions", "reason", reason, "active_sessions", r.ActiveSessions())
	}
	cancel()
	// The aborted sessions' clients get 2 s for their last bytes, not a
	// minute as in service.
	splice.HurryResets()
	actx, cancel := context.WithTimeout(context.Background(), time.Second) // even after a second signal
	r.AbortSessions(actx)
	cancel()
	bridge.Close()
	// grpc-go's GracefulStop first waits for connections still in their
	// handshakes (up to --hello-timeout), before it sends any GOAWAY.
	agentLis.abortHandshakes()
	stopHostStreams()
	stopped := make(chan struct{})
	go func() { hostSrv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second): // streams stuck on flow control
	case <-force.Done():
	}
	hostSrv.Stop()
	<-stopped
	// The relay first, so WatchEvents streams get the last events (the
	// sessions the shutdown aborted) before the admin server stops.
	r.Close()
	adminConns.abortHandshakes()
	stopAdminStreams()
	adminStopped := make(chan struct{})
	go func() { adminSrv.GracefulStop(); close(adminStopped) }()
	select {
	case <-adminStopped:
	case <-time.After(2 * time.Second): // a watcher that does not read
	case <-force.Done():
	}
	adminSrv.Stop()
	<-adminStopped
	log.Info("relayd stopped")
	return serveErr
}
