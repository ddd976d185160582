package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/relayproject/relay/clientbridge"
	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	rlog "github.com/relayproject/relay/internal/logging"
	"github.com/relayproject/relay/internal/metricshttp"
	"github.com/relayproject/relay/relayd/relay"
)

// observability is what relayd's gRPC servers share for being watched: one
// chain of logging, metrics and recovery interceptors, and the Prometheus
// registry behind --metrics-addr. It lives apart from run so that other
// interceptors (auth, for one) can join the chain without touching run.
type observability struct {
	log      *slog.Logger
	registry *prometheus.Registry // nil when --metrics-addr is off
	grpcm    *grpcprom.ServerMetrics
	relay    *relay.Relay // set once made; clients are rejected only after

	// attachWarns throttles the Attach streams' "finished call" lines at
	// Warn, by code: a broken or hostile host can end streams at will.
	attachWarns [codes.Unauthenticated + 1]rlog.Every
}

func newObservability(log *slog.Logger, metricsOn bool) (*observability, error) {
	o := &observability{log: log}
	if !metricsOn {
		return o, nil
	}
	o.registry = prometheus.NewRegistry()
	o.grpcm = grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
	for _, c := range []prometheus.Collector{
		o.grpcm,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := o.registry.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return o, nil
}

// serverOptions returns the interceptor chain for a gRPC server: logging
// outermost (so it logs the status recovery made of a panic), then metrics,
// then recovery, innermost, next to the handler.
//
// Streams other than Attach end when stop is done (endOnStop).
func (o *observability) serverOptions(stop context.Context) []grpc.ServerOption {
	logger := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		o.log.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	logOpts := []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithLevels(codeToLevel),
	}
	recoverOpts := []recovery.Option{recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		o.log.ErrorContext(ctx, "panic in a gRPC handler", "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})}
	unary := []grpc.UnaryServerInterceptor{logging.UnaryServerInterceptor(logger, logOpts...)}
	stream := []grpc.StreamServerInterceptor{o.streamLogging(stop, logging.StreamServerInterceptor(logger, logOpts...))}
	if o.grpcm != nil {
		unary = append(unary, o.grpcm.UnaryServerInterceptor())
		stream = append(stream, o.grpcm.StreamServerInterceptor())
	}
	unary = append(unary, recovery.UnaryServerInterceptor(recoverOpts...))
	stream = append(stream, recovery.StreamServerInterceptor(recoverOpts...))
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(unary...), grpc.ChainStreamInterceptor(stream...)}
}

// streamLogging logs each stream's end through mw, except Attach streams,
// which it logs itself with the same message, fields and levels. mw builds
// its per-call fields (a map) before the handler runs, on the goroutine
// grpc-go starts for the stream, and that grows its stack from 4 to 8 KiB;
// an Attach stream's goroutine then waits for the stream's whole life,
// keeping the 8 KiB: measured, 4 KiB more per idle slot and per session.
//
// The other streams also end when stop is done (endOnStop; WatchEvents ends
// by itself), and that is here, not
// an interceptor of its own, as one more in the chain would deepen every
// Attach handler's stack too.
func (o *observability) streamLogging(stop context.Context, mw grpc.StreamServerInterceptor) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		switch info.FullMethod {
		case relayv1.HostService_Attach_FullMethodName:
		case relayv1.StatusService_WatchEvents_FullMethodName:
			// It ends by itself as the relay closes, once it has sent the
			// last events (the sessions the shutdown aborted).
			return mw(srv, ss, info, handler)
		default:
			return mw(srv, ss, info, endOnStop(stop, handler))
		}
		start := time.Now()
		err := handler(srv, ss)
		o.attachEnded(ss.Context(), start, err)
		return err
	}
}

// endOnStop runs handler with the stream's context also canceled when stop
// is done, and reports a call that ended so as UNAVAILABLE. grpc-go's
// GracefulStop waits for every open stream, and a health Watch, for one,
// stays open after it has sent NOT_SERVING: relayd's shutdown would wait
// for its time limit. Handlers that block in Recv and not on their
// context (reflection) still hold it, for as long as their client keeps
// them open.
func endOnStop(stop context.Context, handler grpc.StreamHandler) grpc.StreamHandler {
	return func(srv any, ss grpc.ServerStream) error {
		ctx, cancel := context.WithCancel(ss.Context())
		defer cancel()
		defer context.AfterFunc(stop, cancel)()
		err := handler(srv, &middleware.WrappedServerStream{ServerStream: ss, WrappedContext: ctx})
		canceled := status.Code(err) == codes.Canceled || errors.Is(err, context.Canceled)
		if canceled && stop.Err() != nil && ss.Context().Err() == nil {
			return status.Error(codes.Unavailable, "relayd is shutting down")
		}
		return err
	}
}

// attachEnded logs an Attach stream's end as go-grpc-middleware's logging
// interceptor would.
func (o *observability) attachEnded(ctx context.Context, start time.Time, err error) {
	if errors.Is(err, io.EOF) {
		err = nil
	}
	code := logging.DefaultErrorToCode(err)
	level := slog.Level(codeToLevel(code))
	switch {
	case code == codes.Unauthenticated, code == codes.PermissionDenied:
		// Refused: the relay logs why, at most once a second; a refused
		// agent retries with every slot, and this line would repeat it
		// --idle times each round.
		level = slog.LevelDebug
	case code == codes.ResourceExhausted && strings.Contains(status.Convert(err).Message(), "(relayd --max-slots-per-"):
		// A slot over a cap: the relay's "limit hit" line says so, once a
		// minute per host, as an agent at the cap asks for more now and then.
		level = slog.LevelDebug
	case code == codes.Internal && hostSentUndecodable(status.Convert(err).Message()):
		level = slog.LevelWarn
	}
	if !o.log.Enabled(ctx, level) {
		return
	}
	if level == slog.LevelWarn && int(code) < len(o.attachWarns) {
		o.attachWarns[code].Do(func(skipped int) {
			o.logAttachEnd(ctx, level, start, code, err, "not_logged_since_last_line", skipped)
		})
		return
	}
	o.logAttachEnd(ctx, level, start, code, err)
}

// hostSentUndecodable reports whether an Attach stream's INTERNAL status is
// grpc-go's for what the host sent: bytes that do not decode, a compressed
// message without an encoding, a compressor the relay does not have. The
// host's fault, and anyone's who reaches the port without a token: not the
// Error that says relayd has a bug. grpc-go's own failure to encode what
// the relay sends stays an Error.
func hostSentUndecodable(msg string) bool {
	return strings.HasPrefix(msg, "grpc: ") && !strings.HasPrefix(msg, "grpc: error while marshaling")
}

// logAttachEnd writes an Attach stream's "finished call" line, with extra
// fields after the middleware's.
func (o *observability) logAttachEnd(ctx context.Context, level slog.Level, start time.Time, code codes.Code, err error, extra ...any) {
	fields := []any{
		logging.SystemTag[0], logging.SystemTag[1],
		logging.ComponentFieldKey, logging.KindServerFieldValue,
		logging.ServiceFieldKey, relayv1.HostService_ServiceDesc.ServiceName,
		logging.MethodFieldKey, "Attach",
		logging.MethodTypeFieldKey, "bidi_stream",
	}
	if p, ok := peer.FromContext(ctx); ok {
		fields = append(fields, "peer.address", p.Addr.String())
	}
	fields = append(fields, "grpc.start_time", start.Format(time.RFC3339))
	if d, ok := ctx.Deadline(); ok {
		fields = append(fields, "grpc.request.deadline", d.Format(time.RFC3339))
	}
	fields = append(fields, "grpc.code", code.String())
	if err != nil {
		fields = append(fields, "grpc.error", fmt.Sprintf("%v", err))
	}
	fields = append(fields, logging.DurationToTimeMillisFields(time.Since(start))...)
	fields = append(fields, extra...)
	o.log.Log(ctx, level, "finished call", fields...)
}

// initServer zero-initializes the gRPC metrics of every method of srv, so
// that they show before the first call.
func (o *observability) initServer(srv *grpc.Server) {
	if o.grpcm != nil {
		o.grpcm.InitializeMetrics(srv)
	}
}

// codeToLevel keeps the per-call log quiet: every Attach stream is a call,
// and the normal endings of one (OK, a cancel, a session aborted by its
// client, a shutdown) are already told by the relay's own session and host
// lines. Only what hints at a bug or a misconfigured peer is logged at Info
// and above.
func codeToLevel(code codes.Code) logging.Level {
	switch code {
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unimplemented:
		return logging.LevelError
	case codes.Unauthenticated:
		// The token check logs the refusal, at most once a second: a
		// stranger could otherwise add a Warn line per call.
		return logging.LevelDebug
	case codes.PermissionDenied, codes.InvalidArgument,
		codes.FailedPrecondition, codes.ResourceExhausted:
		return logging.LevelWarn
	default:
		return logging.LevelDebug
	}
}

// onReject passes the bridge's rejections to the relay (events, metrics).
// The bridge is made before the relay, hence the indirection.
func (o *observability) onReject(c *clientbridge.Client, reason string) {
	if r := o.relay; r != nil {
		r.ClientRejected(c.Conn.RemoteAddr().String(), c.Service, reason)
	}
}

// serveMetrics registers the relay's metrics and serves /metrics on addr;
// it returns nil when addr is empty (metrics off).
func (o *observability) serveMetrics(addr string, r *relay.Relay) (*metricshttp.Server, error) {
	if addr == "" || o.registry == nil {
		return nil, nil
	}
	if err := r.RegisterMetrics(o.registry); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	s, err := metricshttp.Listen(addr, o.registry)
	if err != nil && strings.Contains(err.Error(), "address already in use") {
		err = fmt.Errorf("%w (see --metrics-addr)", err)
	}
	return s, err
}
