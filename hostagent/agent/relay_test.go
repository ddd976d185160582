package agent_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	"github.com/relayproject/relay/clientbridge"
	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/hostagent/agent"
	"github.com/relayproject/relay/internal/attachconn"
	"github.com/relayproject/relay/internal/framecodec"
	"github.com/relayproject/relay/relayd/relay"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hangGuard bounds blocking steps so a bug fails the step that hangs
// rather than the whole binary; correct code takes microseconds.
const hangGuard = 20 * time.Second

// inProcessRelay is a real relay in this process: a clientbridge on a
// loopback client port, a relay.Relay, and a gRPC server on a loopback TCP
// port (the agent dials TCP addresses).
type inProcessRelay struct {
	GRPCAddr, ClientAddr string
	Relay                *relay.Relay

	mu                  sync.Mutex
	attached, maxAttach int                 // Attach handlers running now, and at most
	attaches            int                 // Attach streams opened since the start
	peers               map[string]struct{} // agent connections (their addresses) that opened Attach
	gate                chan struct{}       // if set, new Attach streams wait until it is closed
	stop                func()
}

// holdNewStreams makes new Attach streams wait in the relay, before their
// Hello is read, until release is called (or the test ends).
func (ir *inProcessRelay) holdNewStreams(tb testing.TB) (release func()) {
	gate := make(chan struct{})
	ir.mu.Lock()
	ir.gate = gate
	ir.mu.Unlock()
	var once sync.Once
	release = func() {
		once.Do(func() {
			ir.mu.Lock()
			ir.gate = nil
			ir.mu.Unlock()
			close(gate)
		})
	}
	tb.Cleanup(release)
	return release
}

// startRelay serves a relay on grpcLis; the client port is 127.0.0.1:0.
func startRelay(grpcLis net.Listener) (*inProcessRelay, error) {
	return startRelayWith(grpcLis, clientbridge.Config{})
}

// startRelayWith is startRelay with a bridge configuration.
func startRelayWith(grpcLis net.Listener, bcfg clientbridge.Config) (*inProcessRelay, error) {
	return startRelayConfig(grpcLis, bcfg, relay.Config{})
}

// relayIDs numbers in-process relays: each has its own Welcome.relay_id,
// as real ones do.
var relayIDs atomic.Int64

// startRelayConfig is startRelayWith with a relay configuration (its
// RelayID and Bridge are set here).
func startRelayConfig(grpcLis net.Listener, bcfg clientbridge.Config, rcfg relay.Config) (*inProcessRelay, error) {
	return startRelayOn([]net.Listener{grpcLis}, bcfg, rcfg)
}

// startRelayOn is startRelayConfig with the gRPC server on every listener
// of grpcLis (GRPCAddr is the first's): one relay at several addresses.
func startRelayOn(grpcLiss []net.Listener, bcfg clientbridge.Config, rcfg relay.Config) (*inProcessRelay, error) {
	grpcLis := grpcLiss[0]
	clientLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	bridge := clientbridge.New(bcfg)
	if rcfg.RelayID == "" {
		rcfg.RelayID = "test-relay-" + strconv.FormatInt(relayIDs.Add(1), 10)
	}
	rcfg.Bridge = bridge
	r, err := relay.New(rcfg)
	if err != nil {
		return nil, err
	}
	ir := &inProcessRelay{GRPCAddr: grpcLis.Addr().String(), ClientAddr: clientLis.Addr().String(), Relay: r}
	// The codec and the fixed flow-control windows relayd serves with
	// (run.go), so that the agent meets its encoder, not proto's, and a
	// jammed stream holds what it holds behind relayd.
	srv := grpc.NewServer(append(attachconn.ServerWindowOptions(),
		grpc.StreamInterceptor(ir.count), grpc.WaitForHandlers(true), grpc.ForceServerCodecV2(framecodec.Codec{}))...)
	relayv1.RegisterHostServiceServer(srv, r)
	relayv1.RegisterStatusServiceServer(srv, r.StatusService())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); bridge.Serve(clientLis, "default") }()
	go func() { defer wg.Done(); srv.Serve(grpcLis) }()
	for _, lis := range grpcLiss[1:] {
		wg.Add(1)
		go func() { defer wg.Done(); srv.Serve(lis) }()
	}
	ir.stop = func() {
		r.Shutdown()
		bridge.Close()
		srv.Stop()
		r.Close()
		wg.Wait()
	}
	return ir, nil
}

// count tracks concurrent Attach handlers. A handler returns before its
// status reaches the agent, so an agent that opens a slot only after one
// ended never makes the count exceed its own.
func (ir *inProcessRelay) count(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ir.mu.Lock()
	ir.attached++
	ir.attaches++
	ir.maxAttach = max(ir.maxAttach, ir.attached)
	if p, ok := peer.FromContext(ss.Context()); ok {
		if ir.peers == nil {
			ir.peers = map[string]struct{}{}
		}
		ir.peers[p.Addr.String()] = struct{}{}
	}
	gate := ir.gate
	ir.mu.Unlock()
	defer func() {
		ir.mu.Lock()
		ir.attached--
		ir.mu.Unlock()
	}()
	if gate != nil {
		<-gate
	}
	return handler(srv, ss)
}

// agentConns returns how many agent connections have opened Attach.
func (ir *inProcessRelay) agentConns() int {
	ir.mu.Lock()
	defer ir.mu.Unlock()
	return len(ir.peers)
}

// attachedNow returns how many Attach handlers are running.
func (ir *inProcessRelay) attachedNow() int {
	ir.mu.Lock()
	defer ir.mu.Unlock()
	return ir.attached
}

func (ir *inProcessRelay) maxConcurrentAttach() int {
	ir.mu.Lock()
	defer ir.mu.Unlock()
	return ir.maxAttach
}

func newRelay(tb testing.TB) *inProcessRelay {
	tb.Helper()
	return newRelayWith(tb, clientbridge.Config{})
}

func newRelayWith(tb testing.TB, bcfg clientbridge.Config) *inProcessRelay {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ir, err := startRelayWith(lis, bcfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(ir.stop)
	return ir
}

// newRelayConfig is newRelay with a relay configuration.
func newRelayConfig(tb testing.TB, rcfg relay.Config) *inProcessRelay {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ir, err := startRelayConfig(lis, clientbridge.Config{}, rcfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(ir.stop)
	return ir
}

func newRelayOn(tb testing.TB, lis net.Listener) *inProcessRelay {
	tb.Helper()
	ir, err := startRelay(lis)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(ir.stop)
	return ir
}

// listen starts an agent on ir; cleanup aborts whatever is left.
func listen(tb testing.TB, cfg agent.Config) *agent.Listener {
	tb.Helper()
	if cfg.HostID == "" {
		cfg.HostID = "test-host"
	}
	if cfg.Idle == 0 {
		cfg.Idle = 2
	}
	l, err := agent.Listen(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("Listen: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // sessions still open at the end of a test are aborted
		l.Shutdown(ctx)
	})
	return l
}

// accept calls Accept on l, failing the test if it does not return.
func accept(tb testing.TB, l net.Listener) net.Conn {
	tb.Helper()
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() { c, err := l.Accept(); ch <- result{c, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			tb.Fatalf("Accept: %v", r.err)
		}
		tb.Cleanup(func() { r.c.Close() })
		return r.c
	case <-time.After(hangGuard):
		l.Close() // releases the Accept
		tb.Fatal("Accept did not return")
		return nil
	}
}

func dialClient(tb testing.TB, addr string) *net.TCPConn {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatalf("dial %s: %v", addr, err)
	}
	tb.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(hangGuard))
	return c.(*net.TCPConn)
}

func readN(tb testing.TB, r io.Reader, n int) string {
	tb.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		tb.Fatalf("read %d bytes: %v", n, err)
	}
	return string(b)
}

// logHandler passes the messages of log records to a channel, dropping
// them when it is full.
type logHandler struct{ msgs chan string }

func (h logHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h logHandler) Handle(_ context.Context, r slog.Record) error {
	select {
	case h.msgs <- r.Message:
	default:
	}
	return nil
}
func (h logHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h logHandler) WithGroup(string) slog.Handler      { return h }

// attachesSoFar returns the Attach streams opened on ir since it started.
func (ir *inProcessRelay) attachesSoFar() int {
	ir.mu.Lock()
	defer ir.mu.Unlock()
	return ir.attaches
}
