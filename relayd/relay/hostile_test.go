package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/internal/attachconn"
	"github.com/relayproject/relay/internal/framecodec"
	"github.com/relayproject/relay/relayd/relay"
)

// Hostile input: what a host (or a stranger on the host port) can send or
// leave behind must end only its own stream, with a precise status, and
// leave nothing registered or running.

// unknownFrame is an AttachRequest from a newer (or hostile) peer: its
// oneof is unset, and it carries a field this relay does not know.
func unknownFrame() *relayv1.AttachRequest {
	m := &relayv1.AttachRequest{}
	m.ProtoReflect().SetUnknown(unknownField())
	return m
}

// unknownField is field 99, length-delimited, encoded.
func unknownField() []byte {
	b := protowire.AppendTag(nil, 99, protowire.BytesType)
	return protowire.AppendBytes(b, []byte("a frame from the future"))
}

// withUnknownField is req with field 99 added beside its known frame: an
// additive change by a newer peer, which this relay must ignore.
func withUnknownField(req *relayv1.AttachRequest) *relayv1.AttachRequest {
	req.ProtoReflect().SetUnknown(unknownField())
	return req
}

// TestHostileUnknownFrameKind: a frame whose kind this relay does not know
// (no known oneof field set, an unknown field present) ends its own stream
// with InvalidArgument wherever it comes, while a bystander session keeps
// flowing; an unknown field beside a known frame is ignored.
func TestHostileUnknownFrameKind(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{})
	bystander := tr.newSession(t, "bystander")
	bystander.roundTrip(t, "before")

	hello := helloFrame("default", "future-host")
	tests := []struct {
		name          string
		before, after []*relayv1.AttachRequest // as in TestAttachProtocolViolations
		want          codes.Code
	}{
		{name: "first_frame", before: []*relayv1.AttachRequest{unknownFrame()}, want: codes.InvalidArgument},
		{name: "while_idle", before: []*relayv1.AttachRequest{hello, unknownFrame()}, want: codes.InvalidArgument},
		{name: "in_session", before: []*relayv1.AttachRequest{hello}, after: []*relayv1.AttachRequest{unknownFrame()}, want: codes.InvalidArgument},
		{name: "after_close_write", before: []*relayv1.AttachRequest{hello}, after: []*relayv1.AttachRequest{closeWriteFrame(), unknownFrame()}, want: codes.InvalidArgument},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { // not parallel: clients must reach this test's slot
			h := tr.attach(t)
			for _, f := range tt.before {
				h.send(f)
			}
			var client *net.TCPConn
			if tt.after != nil {
				if resp := h.recv(); resp.GetWelcome() == nil {
					t.Fatalf("answer to Hello = %v, want Welcome", resp)
				}
				client = dialClient(t, tr.clientAddr)
				h.expectOpen()
				h.send(dataFrame([]byte("delivered")))
				for _, f := range tt.after {
					h.send(f)
				}
			}
			h.expectEnd(tt.want)
			if client != nil {
				if got := string(readN(t, client, 9)); got != "delivered" {
					t.Errorf("client got %q, want %q", got, "delivered")
				}
				if len(tt.after) == 1 {
					expectReset(t, client)
				}
			}
			bystander.roundTrip(t, fmt.Sprint("after-", i))
		})
	}

	// Additive changes from a newer peer: unknown fields inside Hello and
	// beside a known frame are ignored, and the session is a normal one.
	t.Run("unknown_field_beside_known_frame", func(t *testing.T) {
		h := tr.attach(t)
		hm := &relayv1.Hello{HostId: "future-host"}
		hm.ProtoReflect().SetUnknown(unknownField())
		h.send(withUnknownField(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: hm}}))
		if resp := h.recv(); resp.GetWelcome() == nil {
			t.Fatalf("answer to a Hello with an unknown field = %v, want Welcome", resp)
		}
		client := dialClient(t, tr.clientAddr)
		h.expectOpen()
		h.send(withUnknownField(dataFrame([]byte("new peer"))))
		if got := string(readN(t, client, 8)); got != "new peer" {
			t.Fatalf("client got %q, want %q", got, "new peer")
		}
		client.CloseWrite()
		h.expectCloseWrite()
		h.send(withUnknownField(closeWriteFrame()))
		h.expectEnd(codes.OK)
	})

	bystander.roundTrip(t, "at the end")
	if st := tr.getStatus(t); st.GetIdleSlots() != 0 || st.GetActiveSessions() != 1 || st.GetHosts() != 1 {
		t.Errorf("after the unknown frames: %d hosts, %d idle slots, %d sessions; want only the bystander", st.GetHosts(), st.GetIdleSlots(), st.GetActiveSessions())
	}
}

// tcpHostServer serves tr's relay on a second gRPC server over loopback TCP,
// so that each grpc.ClientConn is its own agent connection with its own peer
// address (every bufconn connection has the same one). It counts the Attach
// handlers started and returned.
type tcpHostServer struct {
	addr           string
	started, ended atomic.Int64
}

func (tr *testRelay) serveTCP(tb testing.TB) *tcpHostServer {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	s := &tcpHostServer{addr: lis.Addr().String()}
	count := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		s.started.Add(1)
		defer s.ended.Add(1)
		return handler(srv, ss)
	}
	srv := grpc.NewServer(append(attachconn.ServerWindowOptions(), // as relayd's
		grpc.ChainStreamInterceptor(count, tr.intercept), grpc.WaitForHandlers(true), grpc.ForceServerCodecV2(framecodec.Codec{}))...)
	relayv1.RegisterHostServiceServer(srv, tr.r)
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(lis) }()
	// Runs before newTestRelay's cleanup (LIFO): the handlers have returned
	// before the relay is closed.
	tb.Cleanup(func() { srv.Stop(); <-done })
	return s
}

// conn opens a new agent connection to s; cleanup closes it.
func (s *tcpHostServer) conn(tb testing.TB) (*grpc.ClientConn, relayv1.HostServiceClient) {
	tb.Helper()
	cc, err := grpc.NewClient("passthrough:///"+s.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatalf("grpc.NewClient: %v", err)
	}
	tb.Cleanup(func() { cc.Close() })
	return cc, relayv1.NewHostServiceClient(cc)
}

// attachVia is testRelay.attach over another client connection. ctx (with
// hangGuard added) bounds the stream.
func (tr *testRelay) attachVia(tb testing.TB, ctx context.Context, client relayv1.HostServiceClient) *hostStream {
	tb.Helper()
	id := strconv.FormatInt(tr.seq.Add(1), 10)
	end := make(chan error, 1)
	tr.mu.Lock()
	tr.ends[id] = end
	tr.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, hangGuard)
	tb.Cleanup(cancel)
	ctx = metadata.AppendToOutgoingContext(ctx, streamIDKey, id)
	stream, err := client.Attach(ctx)
	if err != nil {
		tb.Fatalf("Attach: %v", err)
	}
	return &hostStream{tb: tb, stream: stream, cancel: cancel, end: end}
}

// watchStarvation measures how late this process's goroutines are woken
// until the returned func is called (or the test ends): it returns the
// longest a 5 ms sleep overran. A timing bound that failed by no more than
// that was the machine's, not the code's.
func watchStarvation(tb testing.TB) func() time.Duration {
	stop := make(chan struct{})
	done := make(chan time.Duration, 1)
	go func() {
		var worst time.Duration
		for {
			const nap = 5 * time.Millisecond
			start := time.Now()
			select {
			case <-stop:
				done <- worst
				return
			case <-time.After(nap):
			}
			worst = max(worst, time.Since(start)-nap)
		}
	}()
	var once sync.Once
	var worst time.Duration
	finish := func() time.Duration {
		once.Do(func() { close(stop); worst = <-done })
		return worst
	}
	tb.Cleanup(func() { finish() })
	return finish
}

// waitUntil polls cond (state with no event to wait on: counters, the
// goroutine count) until it holds, failing after hangGuard with why().
func waitUntil(tb testing.TB, what string, cond func() (bool, string)) {
	tb.Helper()
	const interval = 5 * time.Millisecond
	deadline := time.Now().Add(hangGuard)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for range int(hangGuard/interval) + 1 {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not reached within %v: %s", what, hangGuard, why)
		}
		<-tick.C
	}
	if ok, why := cond(); !ok {
		tb.Fatalf("%s: not reached within %v: %s", what, hangGuard, why)
	}
}

// TestHostileAbandonedStreams opens 2,000 Attach streams and abandons them
// every way a crashing or hostile agent can: silent streams and streams that
// said Hello, each cancelled, or left to die with their whole connection.
// Afterwards nothing of them may be left: no host, no idle slot, no handler,
// no goroutine; a bystander session's bytes pass intact throughout.
//
// Not parallel: the goroutine count is the whole process's, and parallel
// tests would move it both ways.
func TestHostileAbandonedStreams(t *testing.T) {
	const perBatch = 500
	// The hello timeout must not be what ends the silent streams.
	tr := newTestRelay(t, relay.Config{HelloTimeout: 10 * time.Minute})
	srv := tr.serveTCP(t)
	bystander := tr.newSession(t, "bystander")
	bigUp := bytes.Repeat([]byte("bystander bytes "), 8<<10) // 128 KiB, many frames
	checkBystander := func(step string) {
		t.Helper()
		bystander.roundTrip(t, step)
		if _, err := bystander.client.Write(bigUp); err != nil {
			t.Fatalf("%s: bystander write: %v", step, err)
		}
		if got := bystander.host.recvData(len(bigUp), 0); !bytes.Equal(got, bigUp) {
			t.Fatalf("%s: bystander's %d bytes arrived damaged", step, len(bigUp))
		}
	}
	checkBystander("before")
	baseline := runtime.NumGoroutine()

	type batch struct {
		name      string
		hello     bool // say Hello (and read Welcome) before abandoning
		wholeConn bool // abandon by closing the agent connection, not stream by stream
	}
	rounds := [][]batch{ // at most 1,000 streams open at once (the race detector caps goroutines)
		{{"silent_cancelled", false, false}, {"hello_cancelled", true, false}},
		{{"silent_conn_closed", false, true}, {"hello_conn_closed", true, true}},
	}
	opened := int64(0)
	for _, round := range rounds {
		type held struct {
			cc      *grpc.ClientConn
			streams []*hostStream
			b       batch
		}
		var all []held
		for bi, b := range round {
			cc, client := srv.conn(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			hs := held{cc: cc, b: b}
			for i := range perBatch {
				h := tr.attachVia(t, ctx, client)
				if b.hello {
					h.hello(&relayv1.Hello{HostId: fmt.Sprintf("abandon-%s-%d-%d", b.name, bi, i%7)})
				}
				hs.streams = append(hs.streams, h)
			}
			opened += perBatch
			all = append(all, hs)
		}
		// Every stream has reached its handler (a silent one too).
		waitUntil(t, "streams reach the relay", func() (bool, string) {
			return srv.started.Load() == opened, fmt.Sprintf("%d of %d Attach handlers started", srv.started.Load(), opened)
		})
		checkBystander("while " + round[0].name + " and " + round[1].name + " are held")
		for _, hs := range all {
			if hs.b.wholeConn {
				hs.cc.Close()
				continue
			}
			for _, h := range hs.streams {
				h.cancel()
			}
		}
		waitUntil(t, "abandoned streams end", func() (bool, string) {
			return srv.ended.Load() == opened, fmt.Sprintf("%d of %d Attach handlers returned", srv.ended.Load(), opened)
		})
		for _, hs := range all {
			for _, h := range hs.streams {
				if got := codeOf(h.serverEnd()); got != codes.Canceled {
					t.Fatalf("%s: handler returned %v, want Canceled", hs.b.name, got)
				}
			}
		}
		for _, hs := range all {
			hs.cc.Close() // the cancelled streams' connections too, for the goroutine count
		}
		checkBystander("after " + round[0].name + " and " + round[1].name)
	}

	st := tr.getStatus(t)
	if st.GetHosts() != 1 || st.GetIdleSlots() != 0 || st.GetActiveSessions() != 1 || st.GetPendingClients() != 0 {
		t.Errorf("after %d abandoned streams: %d hosts, %d idle slots, %d sessions, %d pending; want only the bystander (1, 0, 1, 0)",
			opened, st.GetHosts(), st.GetIdleSlots(), st.GetActiveSessions(), st.GetPendingClients())
	}
	hosts, err := tr.status.ListHosts(context.Background(), &relayv1.ListHostsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, h := range hosts.GetHosts() {
		ids = append(ids, h.GetHostId())
	}
	if len(ids) != 1 || ids[0] != "bystander" {
		t.Errorf("ListHosts after the abandoned streams: %d hosts %q, want only the bystander", len(ids), ids[:min(len(ids), 10)])
	}
	// The agent connections are closed, their streams are gone: the
	// goroutine count comes back to where it was (goleak in TestMain then
	// checks that nothing at all is left after the test).
	const slack = 10 // timers' and the runtime's own come and go
	defer func() { t.Logf("goroutines: baseline %d, at the end %d", baseline, runtime.NumGoroutine()) }()
	waitUntil(t, "goroutines back to the baseline", func() (bool, string) {
		n := runtime.NumGoroutine()
		return n <= baseline+slack, fmt.Sprintf("%d goroutines, baseline %d (+%d allowed)", n, baseline, slack)
	})
	checkBystander("at the end")
	bystander.client.CloseWrite()
	bystander.host.expectCloseWrite()
	bystander.host.send(closeWriteFrame())
	bystander.host.expectEnd(codes.OK)
}

// TestHostileSlotLimits: a host id or an agent connection that opens more
// streams than allowed gets ResourceExhausted on the stream over the limit
// only; its other slots keep serving, the hit is counted, and a slot freed
// makes room again.
func TestHostileSlotLimits(t *testing.T) {
	t.Parallel()

	t.Run("max_slots_per_host", func(t *testing.T) {
		t.Parallel()
		tr := newTestRelay(t, relay.Config{MaxSlotsPerHost: 2})
		// One slot in session, one idle: both count.
		a := tr.newSession(t, "greedy")
		b := tr.attach(t)
		b.hello(&relayv1.Hello{HostId: "greedy"})
		over := tr.attach(t)
		over.send(helloFrame("default", "greedy"))
		over.expectEnd(codes.ResourceExhausted)
		if got := tr.r.LimitHits()[relay.LimitSlotsPerHost]; got != 1 {
			t.Errorf("LimitHits()[%s] = %d, want 1", relay.LimitSlotsPerHost, got)
		}
		// Another host is not limited by this one.
		other := tr.attach(t)
		other.hello(&relayv1.Hello{HostId: "modest"})
		other.send(closeFrame(relayv1.CloseReason_CLOSE_REASON_UNSPECIFIED))
		other.expectEnd(codes.OK)

		a.roundTrip(t, "a still works")
		bs := &session{host: b, client: dialClient(t, tr.clientAddr)}
		bs.open = b.expectOpen()
		bs.roundTrip(t, "b still works")
		if st := tr.getStatus(t); st.GetHosts() != 1 || st.GetActiveSessions() != 2 || st.GetIdleSlots() != 0 {
			t.Errorf("status: %d hosts, %d sessions, %d idle slots; want 1, 2, 0", st.GetHosts(), st.GetActiveSessions(), st.GetIdleSlots())
		}

		// A session ends: its slot no longer counts, a new one is admitted.
		a.host.send(closeFrame(relayv1.CloseReason_CLOSE_REASON_HOST_ABORT))
		a.host.expectEnd(codes.Aborted) // OK is only for a clean end
		again := tr.attach(t)
		again.hello(&relayv1.Hello{HostId: "greedy"})
		if got := tr.r.LimitHits()[relay.LimitSlotsPerHost]; got != 1 {
			t.Errorf("LimitHits()[%s] = %d after a slot was freed, want still 1", relay.LimitSlotsPerHost, got)
		}
	})

	t.Run("max_slots_per_conn", func(t *testing.T) {
		t.Parallel()
		tr := newTestRelay(t, relay.Config{MaxSlotsPerConn: 2})
		srv := tr.serveTCP(t)
		_, conn1 := srv.conn(t)
		_, conn2 := srv.conn(t)
		ctx := context.Background()

		// Different host ids: only the connection limit applies.
		a := tr.attachVia(t, ctx, conn1)
		a.hello(&relayv1.Hello{HostId: "a"})
		as := &session{host: a, client: dialClient(t, tr.clientAddr)}
		as.open = a.expectOpen()
		b := tr.attachVia(t, ctx, conn1)
		b.hello(&relayv1.Hello{HostId: "b"})
		over := tr.attachVia(t, ctx, conn1)
		over.send(helloFrame("default", "c"))
		over.expectEnd(codes.ResourceExhausted)
		if got := tr.r.LimitHits()[relay.LimitSlotsPerConn]; got != 1 {
			t.Errorf("LimitHits()[%s] = %d, want 1", relay.LimitSlotsPerConn, got)
		}
		// Another connection of the same agent host is not limited by conn1.
		d := tr.attachVia(t, ctx, conn2)
		d.hello(&relayv1.Hello{HostId: "c"})
		d.send(closeFrame(relayv1.CloseReason_CLOSE_REASON_UNSPECIFIED))
		d.expectEnd(codes.OK)

		as.roundTrip(t, "a still works")
		bs := &session{host: b, client: dialClient(t, tr.clientAddr)}
		bs.open = b.expectOpen()
		bs.roundTrip(t, "b still works")

		// A slot given back makes room on conn1.
		as.host.send(closeFrame(relayv1.CloseReason_CLOSE_REASON_HOST_ABORT))
		as.host.expectEnd(codes.Aborted) // OK is only for a clean end
		again := tr.attachVia(t, ctx, conn1)
		again.hello(&relayv1.Hello{HostId: "c"})
		if got := tr.r.LimitHits()[relay.LimitSlotsPerConn]; got != 1 {
			t.Errorf("LimitHits()[%s] = %d after a slot was freed, want still 1", relay.LimitSlotsPerConn, got)
		}
	})
}

// TestHostileIdleTimeout: a session that moves no byte for IdleTimeout is
// aborted (the host gets Close{TIMEOUT} and the stream ends ABORTED, the
// client a reset); sessions that keep moving bytes, in either direction,
// are not, however long they last.
func TestHostileIdleTimeout(t *testing.T) {
	t.Parallel()
	// Long enough that a loaded machine's round trip fits in it (at 250 ms
	// the session was aborted in the middle of it on a loaded CI runner).
	const idle = 2 * time.Second

	t.Run("silent_session_aborted", func(t *testing.T) {
		t.Parallel()
		tr := newTestRelay(t, relay.Config{IdleTimeout: idle})
		s := tr.newSession(t, "h")
		s.roundTrip(t, "then silence") // bytes once do not keep it alive forever
		resp := s.host.recv()
		if got := resp.GetClose().GetReason(); got != relayv1.CloseReason_CLOSE_REASON_TIMEOUT {
			t.Fatalf("frame = %v, want Close{TIMEOUT}", resp)
		}
		s.host.expectEnd(codes.Aborted)
		expectReset(t, s.client)
		// The hit is counted once the abort is under way: the host and the
		// client may see its effects first.
		waitUntil(t, "the idle timeout counted", func() (bool, string) {
			got := tr.r.LimitHits()[relay.LimitIdleTimeout]
			return got == 1, fmt.Sprintf("LimitHits()[%s] = %d, want 1", relay.LimitIdleTimeout, got)
		})
		if n := tr.r.ActiveSessions(); n != 0 {
			t.Errorf("ActiveSessions = %d after the timeout, want 0", n)
		}
	})

	// The timeout counts from the last byte, not from the timer's last
	// look: a byte early in the first period did not buy a second whole
	// period (the session ended up to twice the timeout after it).
	t.Run("counted_from_last_byte", func(t *testing.T) {
		t.Parallel()
		const idle = time.Second
		tr := newTestRelay(t, relay.Config{IdleTimeout: idle})
		s := tr.newSession(t, "h")
		starved := watchStarvation(t)
		time.Sleep(idle * 3 / 10) // the byte goes early in the timer's first period
		sent := time.Now()
		s.roundTrip(t, "then silence")
		passed := time.Now() // the relay passed the last byte between sent and passed
		resp := s.host.recv()
		ended := time.Now()
		if got := resp.GetClose().GetReason(); got != relayv1.CloseReason_CLOSE_REASON_TIMEOUT {
			t.Fatalf("frame = %v, want Close{TIMEOUT}", resp)
		}
		if early := ended.Sub(sent); early < idle {
			t.Errorf("the session ended %v after the last byte was sent, before the idle timeout %v", early, idle)
		}
		if late := ended.Sub(passed); late > idle*3/2 {
			if gap := starved(); gap >= late-idle {
				t.Skipf("inconclusive: the session ended %v after the last byte, but this process was starved of CPU for %v meanwhile", late, gap)
			}
			t.Errorf("the session ended %v after the last byte, want about the idle timeout %v (at most %v)", late, idle, idle*3/2)
		}
		s.host.expectEnd(codes.Aborted)
	})

	for _, tt := range []struct {
		name       string
		fromClient bool // which side sends the trickle
	}{{"client_trickle_kept", true}, {"host_trickle_kept", false}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const keepIdle = 500 * time.Millisecond // room for a loaded machine
			tr := newTestRelay(t, relay.Config{IdleTimeout: keepIdle})
			s := tr.newSession(t, "h")
			exchange := func(i int) error {
				b := []byte{byte('a' + i%26)}
				if tt.fromClient {
					if _, err := s.client.Write(b); err != nil {
						return fmt.Errorf("client write: %w", err)
					}
					resp, err := s.host.stream.Recv()
					if err != nil {
						return fmt.Errorf("host recv: %w", err)
					}
					if !bytes.Equal(resp.GetData().GetPayload(), b) {
						return fmt.Errorf("host got %v, want Data %q", resp, b)
					}
					return nil
				}
				if err := s.host.stream.Send(dataFrame(b)); err != nil {
					return fmt.Errorf("host send: %w", err)
				}
				got := make([]byte, 1)
				if _, err := io.ReadFull(s.client, got); err != nil {
					return fmt.Errorf("client read: %w", err)
				}
				if !bytes.Equal(got, b) {
					return fmt.Errorf("client got %q, want %q", got, b)
				}
				return nil
			}
			// One byte every 50ms for 4 idle timeouts. The ticker paces the
			// trickle; it waits for nothing. A correct relay aborts no sooner
			// than keepIdle after the last byte it passed, which was passed
			// after lastStart: a failure sooner than that is the relay's;
			// a later one means this test was starved of CPU for keepIdle,
			// and proves nothing either way.
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			lastStart := time.Now() // the session's timer was armed before this
			for i := range 4 * int(keepIdle/(50*time.Millisecond)) {
				<-tick.C
				start := time.Now()
				if err := exchange(i); err != nil {
					if gap := time.Since(lastStart); gap >= keepIdle {
						t.Skipf("inconclusive: byte %d failed (%v) %v after the previous one began, not less than the idle timeout %v: the test was starved of CPU", i, err, gap, keepIdle)
					}
					t.Fatalf("byte %d: %v; the session was ended though a byte moved less than %v before", i, err, keepIdle)
				}
				lastStart = start
			}
			s.roundTrip(t, "still here")
			s.client.CloseWrite()
			s.host.expectCloseWrite()
			s.host.send(closeWriteFrame())
			s.host.expectEnd(codes.OK)
			if got := tr.r.LimitHits()[relay.LimitIdleTimeout]; got != 0 {
				t.Errorf("LimitHits()[%s] = %d, want 0", relay.LimitIdleTimeout, got)
			}
		})
	}
}

// TestHostileAuthorizeDenied: a stream that Authorize refuses ends with
// Authorize's PermissionDenied and registers nothing: no host, no idle slot,
// no place under the slot limits; a client arriving meanwhile waits for an
// authorized host instead.
func TestHostileAuthorizeDenied(t *testing.T) {
	t.Parallel()
	type call struct{ service, hostID, auth string }
	var mu sync.Mutex
	var calls []call
	tr := newTestRelay(t, relay.Config{
		MaxSlotsPerHost: 1, MaxSlotsPerConn: 1, // a refused stream must not take a place
		Authorize: func(ctx context.Context, service, hostID string) error {
			md, _ := metadata.FromIncomingContext(ctx)
			mu.Lock()
			calls = append(calls, call{service, hostID, fmt.Sprint(md.Get("authorization"))})
			mu.Unlock()
			if hostID != "trusted" {
				return status.Errorf(codes.PermissionDenied, "host %q may not attach", hostID)
			}
			return nil
		},
	})
	for i := range 3 {
		h := tr.attach(t)
		h.send(helloFrame("default", "intruder"))
		h.expectEnd(codes.PermissionDenied)
		if st := tr.getStatus(t); st.GetHosts() != 0 || st.GetIdleSlots() != 0 {
			t.Fatalf("after refusal %d: %d hosts, %d idle slots; want none", i, st.GetHosts(), st.GetIdleSlots())
		}
	}
	if hits := tr.r.LimitHits(); hits[relay.LimitSlotsPerConn] != 0 || hits[relay.LimitSlotsPerHost] != 0 {
		t.Errorf("LimitHits = %v after refusals, want no slot limit hit", hits)
	}

	// A client arrives: no slot is idle (the refused ones registered none),
	// so it waits, and the authorized host that attaches gets it.
	client := dialClient(t, tr.clientAddr)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer good")
	h := tr.attachVia(t, ctx, tr.host)
	h.hello(&relayv1.Hello{HostId: "trusted"})
	s := &session{host: h, client: client, open: h.expectOpen()}
	s.roundTrip(t, "authorized")

	mu.Lock()
	defer mu.Unlock()
	want := []call{{"default", "intruder", "[]"}, {"default", "intruder", "[]"}, {"default", "intruder", "[]"}, {"default", "trusted", "[Bearer good]"}}
	if fmt.Sprint(calls) != fmt.Sprint(want) {
		t.Errorf("Authorize calls = %v, want %v", calls, want)
	}
}

// TestHostileHelloStrings: a first Hello whose host id, service, labels or
// agent version the relay would keep per host and log in every line about
// it is refused with InvalidArgument naming the field, before anything is
// registered; the relay kept a host id as long as the message limit, and
// wrote control characters into its logs and ListHosts as they came.
func TestHostileHelloStrings(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{})
	many := map[string]string{}
	for i := range 65 {
		many[strconv.Itoa(i)] = "v"
	}
	for _, tc := range []struct {
		name  string
		hello *relayv1.Hello
		want  string
	}{
		{"long_host_id", &relayv1.Hello{HostId: strings.Repeat("h", 257)}, "host id: 257 bytes"},
		{"control_in_host_id", &relayv1.Hello{HostId: "web\nlevel=ERROR msg=forged"}, "host id"},
		{"long_service", &relayv1.Hello{Service: strings.Repeat("s", 129), HostId: "h"}, "service: 129 bytes"},
		{"many_labels", &relayv1.Hello{HostId: "h", Labels: many}, "65 labels"},
		{"long_label_value", &relayv1.Hello{HostId: "h", Labels: map[string]string{"k": strings.Repeat("v", 1025)}}, `label "k": value`},
		{"empty_label_key", &relayv1.Hello{HostId: "h", Labels: map[string]string{"": "v"}}, "empty key"},
		{"long_agent_version", &relayv1.Hello{HostId: "h", AgentVersion: strings.Repeat("1", 129)}, "agent version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tr.attach(t)
			h.send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: tc.hello}})
			err := h.expectEnd(codes.InvalidArgument)
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("refused with %v, want it to say %q", err, tc.want)
			}
			if st := tr.getStatus(t); st.GetHosts() != 0 || st.GetIdleSlots() != 0 {
				t.Errorf("after the refusal: %d hosts, %d idle slots; want none", st.GetHosts(), st.GetIdleSlots())
			}
		})
	}
	// At the limits, and text beyond ASCII (spaces of other scripts,
	// joiners), are welcome.
	h := tr.attach(t)
	h.hello(&relayv1.Hello{HostId: strings.Repeat("é", 128), Labels: map[string]string{strings.Repeat("k", 256): "東京\u3000本社, rack\u00a03 👩\u200d💻"}})
	if st := tr.getStatus(t); st.GetHosts() != 1 {
		t.Errorf("a host id and label at the limits: %d hosts, want 1", st.GetHosts())
	}
}

// TestOversizedFrameStatus: a frame over the server's size limit ends the
// stream with RESOURCE_EXHAUSTED, as grpc-go tells the host, and the
// handler returns that too (it is what relayd logs and counts): grpc-go
// cancels the stream's context before the receive loop has the error, and
// the handler took the context's Canceled, logged nowhere at Warn.
func TestOversizedFrameStatus(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{})
	big := strings.Repeat("x", 5<<20) // over grpc-go's default 4 MiB
	for i := range 5 {
		t.Run(fmt.Sprintf("before_hello_%d", i), func(t *testing.T) {
			h := tr.attach(t)
			h.send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: &relayv1.Hello{HostId: "h1", Labels: map[string]string{"big": big}}}})
			h.expectEnd(codes.ResourceExhausted)
		})
		t.Run(fmt.Sprintf("idle_%d", i), func(t *testing.T) {
			h := tr.attach(t)
			h.hello(&relayv1.Hello{HostId: "h1"})
			h.send(dataFrame([]byte(big)))
			h.expectEnd(codes.ResourceExhausted)
		})
	}
}
