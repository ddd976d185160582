package relay_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/relayproject/relay/clientbridge"
	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/internal/attachconn"
	"github.com/relayproject/relay/internal/framecodec"
	"github.com/relayproject/relay/relayd/relay"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hangGuard bounds every blocking step of a test so a bug shows up as a
// failure naming the step instead of a stuck test binary. It is not a
// timed assertion: every step it guards takes microseconds when correct.
const hangGuard = 20 * time.Second

// streamIDKey is the metadata key that lets the test server report each
// Attach handler's return value to the stream that caused it.
const streamIDKey = "x-test-stream"

// testRelay is an in-process relay: a clientbridge.Bridge serving a real
// loopback TCP listener for service "default", a relay.Relay, and a gRPC
// server with HostService and StatusService over bufconn.
type testRelay struct {
	r          *relay.Relay
	bridge     *clientbridge.Bridge
	clientAddr string // the bridge's TCP listener
	host       relayv1.HostServiceClient
	status     relayv1.StatusServiceClient
	admin      relayv1.AdminServiceClient
	bl         *bufconn.Listener // the gRPC server's

	mu    sync.Mutex
	ends  map[string]chan error // by stream id: what the Attach handler returned
	conns []*grpc.ClientConn
	seq   atomic.Int64
}

func newTestRelay(tb testing.TB, cfg relay.Config, bridgeOpts ...func(*clientbridge.Config)) *testRelay {
	tb.Helper()
	var r *relay.Relay
	bcfg := clientbridge.Config{OnReject: func(c *clientbridge.Client, reason string) {
		r.ClientRejected(c.Conn.RemoteAddr().String(), c.Service, reason)
	}}
	for _, o := range bridgeOpts {
		o(&bcfg)
	}
	bridge := clientbridge.New(bcfg)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	cfg.Bridge = bridge
	if cfg.RelayID == "" {
		cfg.RelayID = "test-relay"
	}
	r, err = relay.New(cfg)
	if err != nil {
		tb.Fatalf("relay.New: %v", err)
	}
	tr := &testRelay{r: r, bridge: bridge, clientAddr: lis.Addr().String(), ends: map[string]chan error{}}

	// relayd's own windows, so that a jammed stream holds here what it
	// holds behind relayd.
	srv := grpc.NewServer(append(attachconn.ServerWindowOptions(),
		grpc.StreamInterceptor(tr.intercept), grpc.WaitForHandlers(true), grpc.ForceServerCodecV2(framecodec.Codec{}))...)
	relayv1.RegisterHostServiceServer(srv, r)
	relayv1.RegisterStatusServiceServer(srv, r.StatusService())
	relayv1.RegisterAdminServiceServer(srv, r.AdminService())
	bl := bufconn.Listen(1 << 20)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); bridge.Serve(lis, "default") }()
	go func() { defer wg.Done(); srv.Serve(bl) }()

	tr.bl = bl
	cc := tr.newConn(tb)
	tr.host = relayv1.NewHostServiceClient(cc)
	tr.status = relayv1.NewStatusServiceClient(cc)
	tr.admin = relayv1.NewAdminServiceClient(cc)
	tb.Cleanup(func() {
		// The order of relayd's own shutdown: sessions, clients, server, loops.
		r.Shutdown()
		bridge.Close()
		tr.closeConns()
		srv.Stop()
		r.Close()
		wg.Wait()
	})
	return tr
}

// newConn dials the relay's gRPC server with opts; the relay's cleanup
// closes it.
func (tr *testRelay) newConn(tb testing.TB, opts ...grpc.DialOption) *grpc.ClientConn {
	tb.Helper()
	cc, err := grpc.NewClient("passthrough:///bufconn", append([]grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return tr.bl.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}, append(attachconn.DialWindowOptions(), opts...)...)...)
	if err != nil {
		tb.Fatalf("grpc.NewClient: %v", err)
	}
	tr.mu.Lock()
	tr.conns = append(tr.conns, cc)
	tr.mu.Unlock()
	return cc
}

func (tr *testRelay) closeConns() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, cc := range tr.conns {
		cc.Close()
	}
}

func (tr *testRelay) intercept(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	err := recovered(srv, ss, handler)
	if md, ok := metadata.FromIncomingContext(ss.Context()); ok {
		if ids := md.Get(streamIDKey); len(ids) == 1 {
			tr.mu.Lock()
			ch := tr.ends[ids[0]]
			tr.mu.Unlock()
			if ch != nil {
				ch <- err // capacity 1, one handler per stream
			}
		}
	}
	return err
}

// hostStream is a raw Attach client that speaks frames by hand.
type hostStream struct {
	tb     testing.TB
	stream relayv1.HostService_AttachClient
	cancel context.CancelFunc
	end    chan error
}

func (tr *testRelay) attach(tb testing.TB) *hostStream {
	tb.Helper()
	id := strconv.FormatInt(tr.seq.Add(1), 10)
	end := make(chan error, 1)
	tr.mu.Lock()
	tr.ends[id] = end
	tr.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	tb.Cleanup(cancel)
	ctx = metadata.AppendToOutgoingContext(ctx, streamIDKey, id)
	stream, err := tr.host.Attach(ctx)
	if err != nil {
		tb.Fatalf("Attach: %v", err)
	}
	return &hostStream{tb: tb, stream: stream, cancel: cancel, end: end}
}

// send sends one frame. io.EOF means the relay ended the stream; the
// status then comes from recv, so it is not an error here.
func (h *hostStream) send(req *relayv1.AttachRequest) {
	h.tb.Helper()
	if err := h.stream.Send(req); err != nil && err != io.EOF {
		h.tb.Fatalf("Send %v: %v", req, err)
	}
}

func (h *hostStream) recv() *relayv1.AttachResponse {
	h.tb.Helper()
	resp, err := h.stream.Recv()
	if err != nil {
		h.tb.Fatalf("Recv: %v", err)
	}
	return resp
}

// hello sends Hello and returns the Welcome.
func (h *hostStream) hello(hello *relayv1.Hello) *relayv1.Welcome {
	h.tb.Helper()
	h.send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: hello}})
	resp := h.recv()
	w := resp.GetWelcome()
	if w == nil {
		h.tb.Fatalf("answer to Hello = %v, want Welcome", resp)
	}
	return w
}

func (h *hostStream) expectOpen() *relayv1.Open {
	h.tb.Helper()
	resp := h.recv()
	o := resp.GetOpen()
	if o == nil {
		h.tb.Fatalf("frame = %v, want Open", resp)
	}
	return o
}

// recvData reads Data frames until n bytes arrived, checking each payload
// against maxData (when non-zero).
func (h *hostStream) recvData(n, maxData int) []byte {
	h.tb.Helper()
	var got []byte
	for len(got) < n {
		resp := h.recv()
		d := resp.GetData()
		if d == nil {
			h.tb.Fatalf("after %d of %d bytes: frame = %v, want Data", len(got), n, resp)
		}
		if maxData > 0 && len(d.GetPayload()) > maxData {
			h.tb.Errorf("Data payload of %d bytes > max_data_bytes %d", len(d.GetPayload()), maxData)
		}
		got = append(got, d.GetPayload()...)
	}
	return got
}

func (h *hostStream) expectCloseWrite() {
	h.tb.Helper()
	if resp := h.recv(); resp.GetCloseWrite() == nil {
		h.tb.Fatalf("frame = %v, want CloseWrite", resp)
	}
}

// expectEnd reads until the stream ends and checks its status, as the host
// sees it and as the handler returned it, and returns the host's error.
func (h *hostStream) expectEnd(want codes.Code) error {
	h.tb.Helper()
	var err error
	for {
		var resp *relayv1.AttachResponse
		resp, err = h.stream.Recv()
		if err == nil && resp.GetWelcome() != nil {
			continue // a violation right after Hello may end the stream before or after Welcome
		}
		if err == nil {
			h.tb.Fatalf("frame %v while waiting for the end of the stream (want %v)", resp, want)
		}
		got := status.Code(err)
		if err == io.EOF {
			got = codes.OK
		}
		if got != want {
			h.tb.Fatalf("stream ended with %v (%v), want %v", got, err, want)
		}
		break
	}
	if got := status.Code(h.serverEnd()); got != want {
		h.tb.Fatalf("handler returned %v, want %v", got, want)
	}
	return err
}

// serverEnd waits for the Attach handler to return and returns its error.
func (h *hostStream) serverEnd() error {
	h.tb.Helper()
	select {
	case err := <-h.end:
		h.end <- err // keep it for a second look
		return err
	case <-time.After(hangGuard):
		h.tb.Fatal("the Attach handler did not return")
		return nil
	}
}

func helloFrame(service, hostID string) *relayv1.AttachRequest {
	return &relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: &relayv1.Hello{Service: service, HostId: hostID}}}
}

func dataFrame(p []byte) *relayv1.AttachRequest {
	return &relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Data{Data: &relayv1.Data{Payload: p}}}
}

func closeWriteFrame() *relayv1.AttachRequest {
	return &relayv1.AttachRequest{Frame: &relayv1.AttachRequest_CloseWrite{CloseWrite: &relayv1.CloseWrite{}}}
}

func closeFrame(reason relayv1.CloseReason) *relayv1.AttachRequest {
	return &relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Close{Close: &relayv1.Close{Reason: reason, Detail: "test"}}}
}

// dialClient connects a raw TCP client to the relay's client port.
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

// readN reads exactly n bytes from c.
func readN(tb testing.TB, c net.Conn, n int) []byte {
	tb.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		tb.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

// expectReset reads from c until an error and checks that it is a reset.
func expectReset(tb testing.TB, c net.Conn) {
	tb.Helper()
	b, err := io.ReadAll(c)
	if len(b) > 0 {
		tb.Errorf("read %q before the reset, want nothing more", b)
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		tb.Fatalf("read error = %v, want a connection reset", err)
	}
}

// session is a host stream with a client assigned to it.
type session struct {
	host    *hostStream
	client  *net.TCPConn
	welcome *relayv1.Welcome
	open    *relayv1.Open
}

// newSession attaches a slot and connects a client to it. The relay must
// have no other idle slot of service "default".
func (tr *testRelay) newSession(tb testing.TB, hostID string) *session {
	tb.Helper()
	h := tr.attach(tb)
	w := h.hello(&relayv1.Hello{HostId: hostID})
	c := dialClient(tb, tr.clientAddr)
	return &session{host: h, client: c, welcome: w, open: h.expectOpen()}
}

// roundTrip checks that bytes flow both ways on s.
func (s *session) roundTrip(tb testing.TB, msg string) {
	tb.Helper()
	if _, err := s.client.Write([]byte("c:" + msg)); err != nil {
		tb.Fatalf("client write: %v", err)
	}
	if got := string(s.host.recvData(len(msg)+2, 0)); got != "c:"+msg {
		tb.Fatalf("host got %q, want %q", got, "c:"+msg)
	}
	s.host.send(dataFrame([]byte("h:" + msg)))
	if got := string(readN(tb, s.client, len(msg)+2)); got != "h:"+msg {
		tb.Fatalf("client got %q, want %q", got, "h:"+msg)
	}
}

func (tr *testRelay) getStatus(tb testing.TB) *relayv1.GetStatusResponse {
	tb.Helper()
	st, err := tr.status.GetStatus(context.Background(), &relayv1.GetStatusRequest{})
	if err != nil {
		tb.Fatalf("GetStatus: %v", err)
	}
	return st
}

// codeOf is status.Code, with nil as OK.
func codeOf(err error) codes.Code { return status.Code(err) }

// recovered runs handler, turning a panic into codes.Internal as relayd's
// recovery interceptor does.
func recovered(srv any, ss grpc.ServerStream, handler grpc.StreamHandler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = status.Errorf(codes.Internal, "panic: %v", p)
		}
	}()
	return handler(srv, ss)
}
