package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/relayproject/relay/clientbridge"
	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/hostagent/agent"
	"github.com/relayproject/relay/internal/attachconn"
	"github.com/relayproject/relay/internal/framecodec"
	"github.com/relayproject/relay/internal/splice"
	"github.com/relayproject/relay/relayd/relay"
)

// Every benchmark runs the same client workload over two paths, so each
// relay figure has its direct-TCP baseline beside it in the same run:
//
//	direct: client → echo (loopback TCP)
//	relay:  client → clientbridge → relay.Relay → gRPC (loopback TCP) → agent.Listen → echo
//
// Allocations are counted over the whole process: client, relay, agent and
// echo together. For the stream benchmarks one op is one Write of the
// given size, echoed back, so allocs/op over the relay path is (roughly)
// the allocations per Data frame in each direction on both sides.

type path struct {
	name  string
	start func(tb testing.TB) string // returns the address to dial
}

var paths = []path{{"direct", startDirectEcho}, {"relay", startRelayEcho}}

// echoConn is what both echo servers serve: copy until EOF, half-close, close.
type echoConn interface {
	io.ReadWriteCloser
	CloseWrite() error
}

func serveEcho(c echoConn) {
	defer c.Close()
	if _, err := splice.Copy(c, c); err == nil {
		c.CloseWrite()
		io.Copy(io.Discard, c) // wait for the client's close
	}
}

// startDirectEcho serves echo on loopback TCP until the benchmark ends.
func startDirectEcho(tb testing.TB) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				serveEcho(c.(*net.TCPConn))
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			}()
		}
	}()
	tb.Cleanup(func() {
		lis.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return lis.Addr().String()
}

// startRelayEcho wires a relay the way relayd's run does (bridge, Relay,
// gRPC server on loopback TCP), attaches an in-process agent that echoes
// every session, and returns the relay's client address.
func startRelayEcho(tb testing.TB) string {
	grpcAddr, clientAddr := startRelay(tb)
	startEchoAgent(tb, grpcAddr, 0)
	return clientAddr
}

// startRelay starts a relay wired as relayd wires it, stopped at cleanup.
func startRelay(tb testing.TB) (grpcAddr, clientAddr string) {
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	clientLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		grpcLis.Close()
		tb.Fatal(err)
	}
	bridge := clientbridge.New(clientbridge.Config{})
	r, err := relay.New(relay.Config{RelayID: "bench", Bridge: bridge})
	if err != nil {
		tb.Fatal(err)
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(relay.DefaultMaxDataBytes+1024), grpc.ForceServerCodecV2(framecodec.Codec{}))
	relayv1.RegisterHostServiceServer(srv, r)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); srv.Serve(grpcLis) }()
	go func() { defer wg.Done(); bridge.Serve(clientLis, "default") }()
	tb.Cleanup(func() {
		bridge.CloseListeners()
		r.Shutdown()
		bridge.Close()
		srv.Stop()
		r.Close()
		wg.Wait()
	})
	return grpcLis.Addr().String(), clientLis.Addr().String()
}

// startEchoAgent attaches an agent with idle slots (0: the default) that
// echoes every session; the returned channel is closed once its idle pool
// is full. The agent is shut down at cleanup, before the relay.
func startEchoAgent(tb testing.TB, grpcAddr string, idle int) <-chan struct{} {
	attached := make(chan struct{})
	l, err := agent.Listen(context.Background(), agent.Config{
		Relays: []string{grpcAddr}, HostID: "bench", Idle: idle,
		Logger: slog.New(&onMessage{msg: "relay attached", do: sync.OnceFunc(func() { close(attached) })}),
	})
	if err != nil {
		tb.Fatal(err)
	}
	var wg, sessions sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			sessions.Add(1)
			go func() { defer sessions.Done(); serveEcho(c.(*agent.Conn)) }()
		}
	}()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := l.Shutdown(ctx); err != nil {
			tb.Errorf("agent shutdown: %v", err)
		}
		sessions.Wait()
		wg.Wait()
	})
	return attached
}

// onMessage is a slog.Handler that runs do when a record with message msg
// is logged, and drops every record: a way to wait for an event the agent
// only logs.
type onMessage struct {
	msg string
	do  func()
}

func (h *onMessage) Enabled(context.Context, slog.Level) bool { return true }
func (h *onMessage) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *onMessage) WithGroup(string) slog.Handler            { return h }
func (h *onMessage) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.do()
	}
	return nil
}

func dial(tb testing.TB, addr string) *net.TCPConn {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	return c.(*net.TCPConn)
}

// BenchmarkStream measures one session's throughput: b.N writes of size
// bytes, read back concurrently, then a half-close and EOF. The reported
// MB/s is payload one way.
func BenchmarkStream(b *testing.B) {
	for _, p := range paths {
		for _, size := range []int{4 << 10, 128 << 10} {
			b.Run(fmt.Sprintf("%s/write=%dKiB", p.name, size>>10), func(b *testing.B) {
				addr := p.start(b)
				c := dial(b, addr)
				defer c.Close()
				msg := bytes.Repeat([]byte("relay-hotpath-0123456789abcdef-\n"), size/32+1)[:size]
				want := int64(b.N) * int64(size)
				readErr := make(chan error, 1)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				go func() {
					n, err := io.Copy(io.Discard, struct{ io.Reader }{c}) // no WriterTo: a plain read loop
					if err == nil && n != want {
						err = fmt.Errorf("read %d bytes before EOF, want %d", n, want)
					}
					readErr <- err
				}()
				for range b.N {
					if _, err := c.Write(msg); err != nil {
						b.Fatal(err)
					}
				}
				if err := c.CloseWrite(); err != nil {
					b.Fatal(err)
				}
				if err := <-readErr; err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
			})
		}
	}
}

// BenchmarkRoundTrip measures one 64-byte echo round trip on an open
// session: latency, and the allocations of one small frame each way.
func BenchmarkRoundTrip(b *testing.B) {
	for _, p := range paths {
		b.Run(p.name, func(b *testing.B) {
			c := dial(b, p.start(b))
			defer c.Close()
			msg := bytes.Repeat([]byte("ping"), 16)
			got := make([]byte, len(msg))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, got); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSession measures a whole short session: dial, 1-byte echo,
// half-close, EOF, close. Over the relay it includes taking an idle slot
// and the agent's replacing it.
func BenchmarkSession(b *testing.B) {
	for _, p := range paths {
		b.Run(p.name, func(b *testing.B) {
			addr := p.start(b)
			var one [1]byte
			b.ReportAllocs()
			for b.Loop() {
				c := dial(b, addr)
				if _, err := c.Write([]byte{'x'}); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, one[:]); err != nil {
					b.Fatal(err)
				}
				c.CloseWrite()
				if _, err := c.Read(one[:]); err != io.EOF {
					b.Fatalf("want EOF after the echo, got %v", err)
				}
				c.Close()
			}
		})
	}
}

// discardSender stands in for a gRPC stream: it drops every frame.
type discardSender struct{}

func (discardSender) SendData([]byte) error                       { return nil }
func (discardSender) SendCloseWrite() error                       { return nil }
func (discardSender) SendClose(relayv1.CloseReason, string) error { return nil }

// BenchmarkAttachConnCopy measures the adapter alone, no sockets, no gRPC:
// payloads handed in with Deliver (as a receive loop does), read by
// splice.Copy, and written to a second attachconn.Conn that frames them for
// a Sender that drops them. One op is one frame of BufferSize bytes.
func BenchmarkAttachConnCopy(b *testing.B) {
	src := attachconn.New(attachconn.Config{Sender: discardSender{}, MaxData: relay.DefaultMaxDataBytes})
	dst := attachconn.New(attachconn.Config{Sender: discardSender{}, MaxData: relay.DefaultMaxDataBytes})
	payload := bytes.Repeat([]byte{0xa5}, splice.BufferSize)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	done := make(chan error, 1)
	b.ResetTimer()
	go func() {
		n, err := splice.Copy(dst, src)
		if err == nil && n != int64(b.N)*int64(len(payload)) {
			err = fmt.Errorf("copied %d bytes, want %d", n, int64(b.N)*int64(len(payload)))
		}
		done <- err
	}()
	for range b.N {
		if err := src.Deliver(payload); err != nil {
			b.Fatal(err)
		}
	}
	src.DeliverCloseWrite()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	src.Close()
	dst.Close()
}

// BenchmarkReceiveFrame measures this project's share of receiving one Data
// frame, no sockets, no gRPC transport: the frame codec decodes the wire
// bytes into a reused message and a pooled payload, Deliver pushes the
// payload to its destination (as the receive loops do during a session),
// and the buffer goes back to the pool. It allocates nothing per frame.
func BenchmarkReceiveFrame(b *testing.B) {
	payload := bytes.Repeat([]byte{0x5a}, relay.DefaultMaxDataBytes)
	wire, err := proto.Marshal(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Data{Data: &relayv1.Data{Payload: payload}}})
	if err != nil {
		b.Fatal(err)
	}
	// As received: in pieces of one HTTP/2 DATA frame (16 KiB) each.
	var data mem.BufferSlice
	for rest := wire; len(rest) > 0; rest = rest[min(len(rest), 16<<10):] {
		data = append(data, mem.SliceBuffer(rest[:min(len(rest), 16<<10)]))
	}
	conn := attachconn.New(attachconn.Config{Sender: discardSender{}, MaxData: relay.DefaultMaxDataBytes})
	ended := make(chan error, 1)
	conn.PushTo(io.Discard, func(_ int64, err error) { ended <- err })
	var codec framecodec.Codec
	var req relayv1.AttachRequest
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if err := codec.Unmarshal(data, &req); err != nil {
			b.Fatal(err)
		}
		d := req.GetData()
		if err := conn.Deliver(d.Payload); err != nil {
			b.Fatal(err)
		}
		framecodec.Recycle(d.Payload)
		d.Payload = nil
	}
	conn.DeliverCloseWrite()
	if err := <-ended; err != nil {
		b.Fatal(err)
	}
	conn.Close()
}

// memSnapshot is the process's Go memory after a GC: heap in use, stacks
// in use, and goroutines.
type memSnapshot struct{ heap, stack, goroutines int64 }

func snapshot() memSnapshot {
	runtime.GC() // twice: the second empties sync.Pool victim caches, whose buffers would hide new ones
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSnapshot{int64(ms.HeapInuse), int64(ms.StackInuse), int64(runtime.NumGoroutine())}
}

// report reports the growth from a to b per item, as custom metrics.
func (a memSnapshot) report(b *testing.B, z memSnapshot, n int, unit string) {
	b.ReportMetric(float64(z.heap-a.heap)/float64(n), "heap-B/"+unit)
	b.ReportMetric(float64(z.stack-a.stack)/float64(n), "stack-B/"+unit)
	b.ReportMetric(float64(z.goroutines-a.goroutines)/float64(n), "goroutines/"+unit)
}

// BenchmarkIdleSlotMemory measures what one idle slot costs relay and
// agent together (one process): Go heap and stacks in use after a GC, and
// goroutines. relayload's idle-slot figure is relayd's RSS alone.
func BenchmarkIdleSlotMemory(b *testing.B) {
	const slots = 500
	for b.Loop() {
		func() {
			tb := &cleanups{B: b}
			defer tb.run()
			grpcAddr, _ := startRelay(tb)
			before := snapshot()
			<-startEchoAgent(tb, grpcAddr, slots)
			before.report(b, snapshot(), slots, "slot")
		}()
	}
}

// BenchmarkHeldSessionMemory measures what one open, silent session costs
// the whole process (client socket, echo, and on the relay path relay and
// agent too): Go heap and stacks in use after a GC, and goroutines.
func BenchmarkHeldSessionMemory(b *testing.B) {
	const sessions = 500
	for _, p := range paths {
		b.Run(p.name, func(b *testing.B) {
			for b.Loop() {
				func() {
					tb := &cleanups{B: b}
					defer tb.run()
					addr := p.start(tb)
					// One session first, so the path is warm (the agent attached).
					c := dial(tb, addr)
					echoOnce(tb, c)
					before := snapshot()
					conns := make([]*net.TCPConn, sessions)
					for i := range conns {
						conns[i] = dial(tb, addr)
						echoOnce(tb, conns[i])
					}
					before.report(b, snapshot(), sessions, "session")
					c.Close()
					for _, c := range conns {
						c.Close()
					}
				}()
			}
		})
	}
}

func echoOnce(tb testing.TB, c *net.TCPConn) {
	msg := []byte("held")
	if _, err := c.Write(msg); err != nil {
		tb.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		tb.Fatal(err)
	}
}

// cleanups runs the Cleanup functions registered on it when run is called,
// so that a benchmark can set up and tear down a fixture per iteration.
type cleanups struct {
	*testing.B
	fns []func()
}

func (c *cleanups) Cleanup(f func()) { c.fns = append(c.fns, f) }

func (c *cleanups) run() {
	for i := len(c.fns) - 1; i >= 0; i-- {
		c.fns[i]()
	}
	c.fns = nil
}

// TestPathsEcho checks that the benchmark fixtures really echo, byte for
// byte with half-close, so a broken fixture is not measured as a fast one.
func TestPathsEcho(t *testing.T) {
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			c := dial(t, p.start(t))
			defer c.Close()
			msg := bytes.Repeat([]byte("0123456789"), 10000)
			errc := make(chan error, 1)
			go func() {
				_, err := c.Write(msg)
				if err == nil {
					err = c.CloseWrite()
				}
				errc <- err
			}()
			got, err := io.ReadAll(c)
			if err := errors.Join(err, <-errc); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, msg) {
				t.Fatalf("echo of %d bytes came back as %d different bytes", len(msg), len(got))
			}
		})
	}
}
