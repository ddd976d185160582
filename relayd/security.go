package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"

	"github.com/relayproject/relay/clientbridge"
	"github.com/relayproject/relay/internal/auth"
	"github.com/relayproject/relay/internal/cli"
	"github.com/relayproject/relay/internal/logging"
	"github.com/relayproject/relay/internal/tlsconf"
	"github.com/relayproject/relay/relayd/relay"
)

// securityOptions are the flags of transport security, authentication and
// limits (issue: safe on the open internet).
type securityOptions struct {
	tlsCert, tlsKey, tlsClientCA string
	authTokens, adminTokenFile   string

	maxSessions, maxClientsPerIP     int
	clientRate                       float64
	clientBurst                      int
	maxSlotsPerHost, maxSlotsPerConn int
	maxCredits                       int
	idleTimeout, keepaliveMinTime    time.Duration
	agentKeepalive                   time.Duration
	maxAgentConns, maxAgentConnsIP   int
	maxHealthWatchers                int
}

func (s *securityOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&s.tlsCert, "tls-cert", "", "PEM `file` with the certificate (chain) of the gRPC port; with --tls-key turns on TLS. Re-read when it changes or on SIGHUP")
	fs.StringVar(&s.tlsKey, "tls-key", "", "PEM `file` with the private key of --tls-cert")
	fs.StringVar(&s.tlsClientCA, "tls-client-ca", "", "PEM `file` of CAs that sign agents' client certificates: requires one from every agent (mTLS)")
	fs.StringVar(&s.authTokens, "auth-tokens", "", "`file` of host tokens, one per line: TOKEN [services=a,b] [hosts=h1,h2]; agents must present one. Re-read on SIGHUP")
	fs.StringVar(&s.adminTokenFile, "admin-token-file", "", "`file` holding the bearer token the admin port requires (mandatory when --admin-addr is not loopback)")
	fs.IntVar(&s.maxSessions, "max-sessions", 10000, "clients held at once, waiting or in session, across all listeners (0: no limit)")
	fs.IntVar(&s.maxClientsPerIP, "max-clients-per-ip", 1000, "clients held at once from one IP address (0: no limit)")
	fs.Float64Var(&s.clientRate, "client-rate", 500, "new client connections per second from one IP address (0: no limit)")
	fs.IntVar(&s.clientBurst, "client-burst", 1000, "new client connections one IP address may open at once before --client-rate applies (0: as many as --client-rate, at least 1)")
	fs.IntVar(&s.maxSlotsPerHost, "max-slots-per-host", 10000, "Attach streams (idle slots and sessions) one host id may hold per service, and apart its credit streams (0: no limit)")
	fs.IntVar(&s.maxSlotsPerConn, "max-slots-per-conn", 10000, "Attach streams one agent connection may hold; also its HTTP/2 concurrent stream limit (0: no limit)")
	fs.IntVar(&s.maxCredits, "max-credits", 10000, "idle slots one host id may hold at once per service as credits (hostagent --slot-credits), which cost the relay no stream")
	fs.DurationVar(&s.idleTimeout, "idle-timeout", time.Hour, "end a session that moves no byte either way for this long (0: never)")
	fs.IntVar(&s.maxAgentConns, "max-agent-conns", 1000, "connections the gRPC port holds at once (each costs buffers before any token is checked; 0: no limit)")
	fs.IntVar(&s.maxAgentConnsIP, "max-agent-conns-per-ip", 100, "connections the gRPC port holds at once from one IP address (0: no limit)")
	fs.IntVar(&s.maxHealthWatchers, "max-health-watchers", 100, "grpc.health.v1.Health/Watch streams each gRPC port holds at once (they need no token; 0: no limit)")
	fs.DurationVar(&s.keepaliveMinTime, "keepalive-min-time", 10*time.Second, "agents that send keepalive pings more often than this are disconnected")
	fs.DurationVar(&s.agentKeepalive, "agent-keepalive", 30*time.Second, "ping an agent connection that has sent nothing for this long, and close it if nothing comes back within as long again (at most 10s): a frozen or vanished agent's sessions end, their clients reset, within this plus 10s; shorter drops agents on slow links (a ping waits behind the data already sent; an agent receiving an upload sends a frame only per 512 KiB); at least 1s")
}

func (s *securityOptions) validate(o *options) error {
	if (s.tlsCert == "") != (s.tlsKey == "") {
		return cli.UsageError{Err: fmt.Errorf("--tls-cert and --tls-key go together: give both or neither")}
	}
	if s.tlsClientCA != "" && s.tlsCert == "" {
		return cli.UsageError{Err: fmt.Errorf("--tls-client-ca needs TLS: give --tls-cert and --tls-key too")}
	}
	if !tlsconf.IsLoopback(o.adminAddr) && s.adminTokenFile == "" {
		return cli.UsageError{Err: fmt.Errorf("--admin-addr %s is not a loopback address: give --admin-token-file too (the admin port shows every session and host)", o.adminAddr)}
	}
	for _, v := range []struct {
		flag string
		n    float64
	}{
		{"max-sessions", float64(s.maxSessions)}, {"max-clients-per-ip", float64(s.maxClientsPerIP)},
		{"client-rate", s.clientRate}, {"client-burst", float64(s.clientBurst)},
		{"max-slots-per-host", float64(s.maxSlotsPerHost)}, {"max-slots-per-conn", float64(s.maxSlotsPerConn)},
		{"max-credits", float64(s.maxCredits)}, {"idle-timeout", float64(s.idleTimeout)},
		{"max-agent-conns", float64(s.maxAgentConns)}, {"max-agent-conns-per-ip", float64(s.maxAgentConnsIP)},
		{"max-health-watchers", float64(s.maxHealthWatchers)},
	} {
		if v.n < 0 {
			got := fmt.Sprint(v.n)
			if v.flag == "idle-timeout" {
				got = s.idleTimeout.String() // not nanoseconds
			}
			return cli.UsageError{Err: fmt.Errorf("--%s must not be negative, got %s", v.flag, got)}
		}
	}
	if s.maxCredits == 0 {
		return cli.UsageError{Err: fmt.Errorf("--max-credits must be at least 1 (a host that asks for credits gets at most this many)")}
	}
	if math.IsNaN(s.clientRate) || math.IsInf(s.clientRate, 0) {
		return cli.UsageError{Err: fmt.Errorf("--client-rate must be a number of connections per second, got %v", s.clientRate)}
	}
	if s.keepaliveMinTime <= 0 {
		return cli.UsageError{Err: fmt.Errorf("--keepalive-min-time must be positive, got %v", s.keepaliveMinTime)}
	}
	if s.agentKeepalive < time.Second {
		return cli.UsageError{Err: fmt.Errorf("--agent-keepalive must be at least 1s (grpc-go pings no more often), got %v", s.agentKeepalive)}
	}
	return nil
}

func (s *securityOptions) bridgeLimits() clientbridge.Limits {
	return clientbridge.Limits{MaxClients: s.maxSessions, MaxClientsPerIP: s.maxClientsPerIP, RatePerIP: s.clientRate, BurstPerIP: s.clientBurst}
}

// limitAgentConns wraps the gRPC port's listener with the connection
// limits; refusals are counted as limit hits of the relay.
func (s *securityOptions) limitAgentConns(l net.Listener, r *relay.Relay) net.Listener {
	if s.maxAgentConns == 0 && s.maxAgentConnsIP == 0 {
		return l
	}
	return clientbridge.LimitListener(l, clientbridge.Limits{MaxClients: s.maxAgentConns, MaxClientsPerIP: s.maxAgentConnsIP},
		func(remote net.Addr, reason string) {
			name := relay.LimitAgentConns
			if reason == clientbridge.RejectMaxClientsPerIP {
				name = relay.LimitAgentConnsPerIP
			}
			r.LimitHit(name, "peer_addr", remote.String())
		})
}

// security is the loaded state behind securityOptions.
type security struct {
	opts       *securityOptions
	log        *slog.Logger
	tls        *tlsconf.Source  // nil: plaintext
	tokens     *auth.Store      // nil: no host authentication
	adminToken *auth.AdminToken // nil: the admin port is open

	handshakeFailures *prometheus.CounterVec // relay_tls_handshake_failures_total, by kind
}

func loadSecurity(s *securityOptions, o *options, log *slog.Logger) (*security, error) {
	sec := &security{opts: s, log: log, handshakeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "relay_tls_handshake_failures_total",
		Help: "TLS handshakes on the gRPC port that failed for the peer's setup, by kind: plaintext (no TLS), certificate (refused, either side), other. Peers that hang up or time out are not counted.",
	}, []string{"kind"})}
	for _, k := range handshakeKinds {
		sec.handshakeFailures.WithLabelValues(k) // at 0 from the start
	}
	if s.tlsCert != "" {
		src, err := tlsconf.NewSource(tlsconf.Files{CertFile: s.tlsCert, KeyFile: s.tlsKey, CAFile: s.tlsClientCA}, func(err error, leaf *x509.Certificate) {
			if err != nil {
				log.Error("tls certificate reload failed; the previous one stays in use", "err", err)
				return
			}
			if !warnInvalidCert(log, leaf) {
				log.Info("tls certificate loaded", "subject", leaf.Subject.String(), "not_after", leaf.NotAfter)
			}
		})
		if err != nil {
			return nil, cli.UsageError{Err: fmt.Errorf("--tls-cert/--tls-key/--tls-client-ca: %v", err)}
		}
		if leaf := src.Leaf(); leaf != nil {
			warnInvalidCert(log, leaf)
		}
		sec.tls = src
	}
	if s.authTokens != "" {
		toks, err := auth.ParseFile(s.authTokens)
		if err != nil {
			return nil, cli.UsageError{Err: fmt.Errorf("--auth-tokens: %v", err)}
		}
		if toks.Len() == 0 {
			return nil, cli.UsageError{Err: fmt.Errorf("--auth-tokens %s: no token in the file (no agent could attach)", s.authTokens)}
		}
		sec.tokens = auth.NewStore(toks)
	}
	if s.adminTokenFile != "" {
		tok, err := auth.ReadTokenFile(s.adminTokenFile)
		if err != nil {
			return nil, cli.UsageError{Err: fmt.Errorf("--admin-token-file: %v", err)}
		}
		sec.adminToken = auth.NewAdminToken(tok)
	}
	if sec.adminToken != nil && !tlsconf.IsLoopback(o.adminAddr) {
		log.Warn("the admin port is not on loopback and has no TLS: its bearer token crosses the network in clear text; keep it on a private network or tunnel it", "admin_addr", o.adminAddr)
	}
	if !tlsconf.IsLoopback(o.grpcAddr) {
		if sec.tokens == nil && s.tlsClientCA == "" {
			log.Warn("ANYONE CAN ATTACH AS A HOST: the gRPC port is not on loopback and neither --auth-tokens nor --tls-client-ca is set; any process that reaches it can receive your clients' connections",
				"grpc_addr", o.grpcAddr)
		}
		if sec.tls == nil {
			log.Warn("the gRPC port is not on loopback and has no TLS: tokens and session bytes cross the network in clear text (see --tls-cert)", "grpc_addr", o.grpcAddr)
		}
	}
	return sec, nil
}

// warnInvalidCert says so, and reports true, if leaf is not valid now. It is
// served all the same (it is the operator's file), but every agent will
// refuse it, and relayd's only other line is "bad certificate".
func warnInvalidCert(log *slog.Logger, leaf *x509.Certificate) bool {
	if now := time.Now(); !now.After(leaf.NotAfter) && !now.Before(leaf.NotBefore) {
		return false
	}
	log.Warn("tls certificate loaded, but it is not valid now: agents will refuse it", "subject", leaf.Subject.String(),
		"not_before", leaf.NotBefore, "not_after", leaf.NotAfter)
	return true
}

// watchCertExpiry says, while relayd runs, that the certificate in use is
// about to expire (Warn) and that it has (Error: every TLS handshake fails
// from then on, and agents say only "bad certificate"). It returns when ctx
// is done.
func (sec *security) watchCertExpiry(ctx context.Context) {
	sec.tls.WatchExpiry(ctx, func(leaf *x509.Certificate, expired bool) {
		if expired {
			sec.log.Error("tls certificate expired: agents refuse every connection now; renew --tls-cert (relayd re-reads it when it changes, or on SIGHUP)",
				"subject", leaf.Subject.String(), "not_after", leaf.NotAfter)
			return
		}
		sec.log.Warn("tls certificate expires soon: renew --tls-cert (relayd re-reads it when it changes, or on SIGHUP)", "subject", leaf.Subject.String(),
			"not_after", leaf.NotAfter, "expires_in", time.Until(leaf.NotAfter).Round(time.Second))
	})
}

// tlsMetrics are relay_tls_cert_not_after_seconds, for an alert on the
// certificate's expiry, and relay_tls_handshake_failures_total, when
// relayd serves TLS.
func (sec *security) tlsMetrics() []prometheus.Collector {
	return []prometheus.Collector{prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "relay_tls_cert_not_after_seconds",
		Help: "Expiry (Unix time) of the TLS certificate relayd serves on its gRPC port.",
	}, func() float64 { return float64(sec.tls.Leaf().NotAfter.Unix()) }), sec.handshakeFailures}
}

// agentKeepaliveTimeout is how long an agent connection may leave a
// keepalive ping, or sent data, unanswered before it is closed.
const agentKeepaliveTimeout = 10 * time.Second

// agentHandshakes says what the gRPC port's handshakeListener reports: a
// handshake timeout is a hello_timeout limit hit; on a plaintext port an
// agent that speaks TLS is logged, at most once a second.
func (sec *security) agentHandshakes(r *relay.Relay) handshakeConfig {
	cfg := handshakeConfig{
		onTimeout: func(peer net.Addr) {
			r.LimitHit(relay.LimitHelloTimeout, "peer_addr", peer.String(), "during", "the connection's TLS and HTTP/2 handshakes")
		},
		userTimeout: agentKeepaliveTimeout,
	}
	if sec.tls == nil {
		var every logging.Every
		cfg.onTLS = func(peer net.Addr) {
			every.Do(func(skipped int) {
				sec.log.Warn("an agent speaks TLS to this plaintext gRPC port: give relayd --tls-cert and --tls-key, or run that agent without TLS flags (--insecure if the relay is not on loopback)",
					"peer_addr", peer.String(), "not_logged_since_last_line", skipped)
			})
		}
	}
	return cfg
}

// hostServerOptions are the gRPC server options of the agents' port. A
// connection that holds no stream for idle is closed (GOAWAY): anyone can
// finish the handshakes, and such a connection counts against
// --max-agent-conns before any token is checked. An agent's connection
// holds its slots' streams; one without any reconnects when it needs one.
func (sec *security) hostServerOptions(idle time.Duration) []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: sec.opts.keepaliveMinTime, PermitWithoutStream: true}),
		// Pings, not TCP, find an agent that is stopped (SIGSTOP, a frozen
		// VM) or gone without a word: its kernel, or none, keeps the
		// connection up, and the clients given to its idle slots wait.
		// 40 s by default. Shorter is not the default: an agent that is
		// only receiving (a client's upload) sends a frame per 512 KiB it
		// takes, and the ping waits behind up to 2 MiB already sent, so a
		// healthy agent on a slow link would be cut off (a review: 20 s
		// dropped one below 26 KB/s).
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: sec.opts.agentKeepalive, Timeout: min(sec.opts.agentKeepalive, agentKeepaliveTimeout), MaxConnectionIdle: idle}),
	}
	if n := sec.opts.maxSlotsPerConn; n > 0 {
		// Room above the slot limit for health checks, and so a stream over
		// the limit is refused with a status rather than left waiting.
		opts = append(opts, grpc.MaxConcurrentStreams(uint32(n)+64))
	}
	if sec.tls != nil {
		opts = append(opts, grpc.Creds(&loggedHandshakes{TransportCredentials: credentials.NewTLS(sec.tls.ServerConfig()), log: sec.log, failures: sec.handshakeFailures}))
	}
	if sec.tokens != nil {
		var mu sync.Mutex
		var last time.Time
		unary, stream := auth.HostInterceptors(sec.tokens, func(ctx context.Context, method string, err error) {
			// A stranger can make this happen at will: one line a second.
			mu.Lock()
			defer mu.Unlock()
			if time.Since(last) >= time.Second {
				last = time.Now()
				sec.log.Warn("agent refused", "method", method, "peer_addr", peerAddr(ctx), "err", err)
			}
		})
		opts = append(opts, grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream))
	}
	return opts
}

// loggedHandshakes logs failed TLS handshakes on the gRPC port, at most one
// line a second for each kind of failure (plaintext, certificates, other),
// with the count of those not logged: grpc-go only closes such a
// connection, so an agent that speaks plaintext or has no client
// certificate would otherwise fail with nothing in relayd's log to say why,
// and one kind (a scanner's) must not hide another (an agent's). A peer
// that hangs up or times out mid-handshake (a TCP health check) says
// nothing an operator can act on, and is not logged.
type loggedHandshakes struct {
	credentials.TransportCredentials
	log      *slog.Logger
	failures *prometheus.CounterVec // kind: handshakeKinds

	kinds [3]logging.Every
}

func (c *loggedHandshakes) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ServerHandshake(conn)
	if err == nil || !handshakeMistake(err) {
		return out, info, err
	}
	kind := 2
	var notTLS tls.RecordHeaderError
	switch {
	case errors.As(err, &notTLS):
		kind = 0
	case strings.Contains(err.Error(), "certificate"):
		kind = 1
	}
	c.failures.WithLabelValues(handshakeKinds[kind]).Inc()
	c.kinds[kind].Do(func(skipped int) {
		peer := "unknown"
		if a := conn.RemoteAddr(); a != nil {
			peer = a.String()
		}
		attrs := []any{"peer_addr", peer, "err", err}
		if h := handshakeHints[kind]; h != "" {
			attrs = append(attrs, "hint", h)
		}
		c.log.Warn("tls handshake failed", append(attrs, "not_logged_since_last_line", skipped)...)
	})
	return out, info, err
}

// handshakeKinds name the kinds of failure in relay_tls_handshake_failures_total.
var handshakeKinds = [3]string{"plaintext", "certificate", "other"}

// handshakeHints say, per kind of failure, what to check (QA: the errors
// alone, "first record does not look like a TLS handshake" or "remote
// error: tls: bad certificate", left the operator to guess).
var handshakeHints = [3]string{
	"the peer speaks plaintext: hostagent without TLS flags dials a loopback relay in plaintext; give it --tls-ca (the Node.js example host: RELAY_TLS_CA), or drop relayd's --tls-cert to serve plaintext on a trusted network",
	"a certificate was refused: if the error is the peer's (remote error), the agent does not trust relayd's --tls-cert (give it --tls-ca with the CA that signed it, and --tls-server-name if the name differs); otherwise the agent's --tls-cert is missing, expired or not from a CA in --tls-client-ca",
	"",
}

func (c *loggedHandshakes) Clone() credentials.TransportCredentials {
	return &loggedHandshakes{TransportCredentials: c.TransportCredentials.Clone(), log: c.log, failures: c.failures}
}

// handshakeMistake reports whether a failed handshake says something about
// the peer's setup (plaintext, no or a wrong certificate), rather than that
// the peer went away or was too slow.
func handshakeMistake(err error) bool {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed), errors.As(err, &ne) && ne.Timeout():
		return false
	}
	return true
}

// adminServerOptions are the gRPC server options of the admin port.
func (sec *security) adminServerOptions() []grpc.ServerOption {
	if sec.adminToken == nil {
		return nil
	}
	var every logging.Every
	unary, stream := auth.AdminInterceptors(sec.adminToken, func(ctx context.Context, method string, err error) {
		// Anyone who reaches the port can make this happen at will.
		every.Do(func(skipped int) {
			sec.log.Warn("admin call refused", "method", method, "peer_addr", peerAddr(ctx), "err", err, "not_logged_since_last_line", skipped)
		})
	})
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream)}
}

// authorize checks a Hello against the token the stream came with.
func (sec *security) authorize(ctx context.Context, service, hostID string) error {
	if sec.tokens == nil {
		return nil
	}
	if auth.GrantFrom(ctx) == nil { // the interceptor lets no stream through without one
		return fmt.Errorf("no grant in an authenticated stream")
	}
	// The token's grant now, not the one it had when the stream began: the
	// relay asks again before a stream takes another client (a Hello after
	// SessionEnd), and the file may have changed since (SIGHUP).
	g, err := sec.tokens.CurrentGrant(ctx)
	if err != nil {
		return err
	}
	return g.Allow(service, hostID)
}

// reload re-reads the TLS files, the token file and the admin token file
// (SIGHUP). A file that fails to load is reported; what was loaded before
// stays in use.
func (sec *security) reload() {
	if sec.tls != nil {
		sec.tls.Reload() //nolint:errcheck // reported by the source's callback
	}
	if sec.tokens != nil {
		toks, err := auth.ParseFile(sec.opts.authTokens)
		switch {
		case err != nil:
			sec.log.Error("auth tokens reload failed; the previous tokens stay in use", "err", err)
		case toks.Len() == 0:
			sec.log.Error("auth tokens reload: the file has no token; the previous tokens stay in use", "file", sec.opts.authTokens)
		default:
			sec.tokens.Set(toks)
			sec.log.Info("auth tokens loaded", "tokens", toks.Len())
		}
	}
	if sec.adminToken != nil {
		if tok, err := auth.ReadTokenFile(sec.opts.adminTokenFile); err != nil {
			sec.log.Error("admin token reload failed; the previous token stays in use", "err", err)
		} else {
			sec.adminToken.Set(tok)
			sec.log.Info("admin token loaded", "fingerprint", auth.Fingerprint(tok))
		}
	}
}

// reloadOnSIGHUP calls reload on every SIGHUP; the returned function
// stops it and waits for it.
func (sec *security) reloadOnSIGHUP() (stop func()) {
	return cli.OnHangup(func() {
		sec.log.Info("SIGHUP: reloading certificates and tokens")
		sec.reload()
	})
}

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}
