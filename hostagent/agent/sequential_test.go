package agent_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/hostagent/agent"
)

// idleSlots is a waitStatus condition: n idle slots and no session.
func idleSlots(n uint32) func(*relayv1.GetStatusResponse) bool {
	return func(st *relayv1.GetStatusResponse) bool {
		return st.GetIdleSlots() == n && st.GetActiveSessions() == 0
	}
}

// echoOnce runs one session through the relay: msg from the client, echoed
// by the agent's Accept side, every byte checked, both directions closed.
func echoOnce(t *testing.T, ir *inProcessRelay, l *agent.Listener, msg string) {
	t.Helper()
	c := dialClient(t, ir.ClientAddr)
	conn := accept(t, l)
	done := make(chan struct{})
	go func() { defer close(done); echo(conn) }()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	got, err := io.ReadAll(c)
	<-done
	if err != nil || string(got) != msg {
		t.Fatalf("echo: %q, %v; want %q", got, err, msg)
	}
}

// Sessions one after another ride the streams of the idle pool: a session's
// stream is offered again when it ends cleanly, and the agent opens no new
// stream for a session while it counts the session's stream as coming back.
func TestSequentialSessions(t *testing.T) {
	t.Parallel()
	ir := newRelay(t)
	const idle, sessions = 2, 20
	l := listen(t, agent.Config{Relays: []string{ir.GRPCAddr}, Idle: idle})
	waitStatus(t, ir, "the idle slots", idleSlots(idle))
	for i := range sessions {
		echoOnce(t, ir, l, fmt.Sprintf("session %d\n", i))
		// Back to the full pool before the next client, so that each
		// session finds both slots idle: the count below is exact.
		waitStatus(t, ir, "the stream offered again", idleSlots(idle))
	}
	st := waitStats(t, l, "every session counted", func(st agent.Stats) bool { return st.SessionsTotal == sessions })
	if st.StreamsOpened != idle {
		t.Errorf("agent: %d sessions on %d streams, want %d on %d", st.SessionsTotal, st.StreamsOpened, sessions, idle)
	}
	if n := ir.maxConcurrentAttach(); n != idle {
		t.Errorf("relay: at most %d Attach streams at once, want %d", n, idle)
	}

	// The agent without sequential sessions: a stream per session.
	ir2 := newRelay(t)
	l2 := listen(t, agent.Config{Relays: []string{ir2.GRPCAddr}, Idle: idle, StreamPerSession: true})
	waitStatus(t, ir2, "the idle slots", idleSlots(idle))
	for i := range 3 {
		echoOnce(t, ir2, l2, fmt.Sprintf("session %d\n", i))
		waitStatus(t, ir2, "the pool refilled", idleSlots(idle))
	}
	if st := l2.Stats(); st.StreamsOpened != idle+3 {
		t.Errorf("StreamPerSession: %d streams for 3 sessions and %d idle slots, want %d", st.StreamsOpened, idle, idle+3)
	}
}

// After a burst has opened more streams than the pool needs, the streams
// that come back beyond Idle are given up, not kept idle.
func TestSequentialSessionsPoolTrimmed(t *testing.T) {
	t.Parallel()
	ir := newRelay(t)
	const idle, burst = 2, 6
	l := listen(t, agent.Config{Relays: []string{ir.GRPCAddr}, Idle: idle})
	waitStatus(t, ir, "the idle slots", idleSlots(idle))
	clients := make([]io.ReadWriter, burst)
	conns := make([]chan struct{}, burst)
	for i := range burst {
		c := dialClient(t, ir.ClientAddr)
		conn := accept(t, l)
		clients[i] = c
		done := make(chan struct{})
		conns[i] = done
		go func() { defer close(done); echo(conn) }()
	}
	for i, c := range clients {
		msg := fmt.Sprintf("burst %d\n", i)
		c.Write([]byte(msg))
		dialled := c.(interface{ CloseWrite() error })
		dialled.CloseWrite()
		if got, err := io.ReadAll(c); err != nil || string(got) != msg {
			t.Fatalf("echo %d: %q, %v", i, got, err)
		}
		<-conns[i]
	}
	waitStatus(t, ir, "the pool back to Idle", idleSlots(idle))
	// Every stream beyond the pool ended (its handler returned): no idle
	// stream is kept that the relay does not count.
	deadline := time.Now().Add(hangGuard)
	for ir.attachedNow() != idle {
		if time.Now().After(deadline) {
			t.Fatalf("%d Attach streams open, want %d", ir.attachedNow(), idle)
		}
		runtime.Gosched()
	}
	st := waitStats(t, l, "the burst's sessions counted", func(st agent.Stats) bool { return st.SessionsTotal == burst })
	if st.StreamsOpened <= idle+1 {
		t.Errorf("agent: %d sessions on %d streams, want %d sessions on more than %d streams (the burst)", st.SessionsTotal, st.StreamsOpened, burst, idle+1)
	}
	// The pool still serves.
	echoOnce(t, ir, l, "after the burst\n")
}

// With Idle 1 the replacement slot opens as a session begins; a session
// that ends while that slot is still on its way keeps its stream, or the
// relay would hold no slot of the agent for a moment (the host detached).
// The next session's end trims the pool back to Idle.
func TestSessionStreamKeptWhileReplacementOnItsWay(t *testing.T) {
	t.Parallel()
	ir := newRelay(t)
	l := listen(t, agent.Config{Relays: []string{ir.GRPCAddr}, Idle: 1})
	waitStatus(t, ir, "the idle slot", idleSlots(1))
	release := ir.holdNewStreams(t)
	c := dialClient(t, ir.ClientAddr)
	conn := accept(t, l)
	deadline := time.Now().Add(hangGuard)
	for ir.attachesSoFar() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d Attach streams opened, want 2 (the replacement, held by the relay)", ir.attachesSoFar())
		}
		runtime.Gosched()
	}
	c.CloseWrite()
	echo(conn)
	io.ReadAll(c)
	waitStatus(t, ir, "the session's stream idle again, the host still attached", func(st *relayv1.GetStatusResponse) bool {
		return st.GetActiveSessions() == 0 && st.GetIdleSlots() == 1 && st.GetHosts() == 1
	})
	release()
	waitStatus(t, ir, "the replacement welcomed too", idleSlots(2))
	// And the agent has seen its welcome: a session ending while the
	// agent still counts the replacement on its way rightly keeps its
	// stream, and the pool would not be trimmed below.
	waitStats(t, l, "both slots idle", func(st agent.Stats) bool { return st.IdleSlots == 2 })
	echoOnce(t, ir, l, "trimmed at its end\n")
	waitStatus(t, ir, "the pool back to Idle", idleSlots(1))
	deadline = time.Now().Add(hangGuard)
	for ir.attachedNow() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d Attach streams open, want 1", ir.attachedNow())
		}
		runtime.Gosched()
	}
}

// A Conn aborted after its session ended (both directions closed, the
// stream offered again) sends nothing: the next session on the same
// stream is not touched.
func TestLateAbortDoesNotReachNextSession(t *testing.T) {
	t.Parallel()
	ir := newRelay(t)
	// One stream in all (MaxSessions 1): the second session rides the
	// first one's stream.
	l := listen(t, agent.Config{Relays: []string{ir.GRPCAddr}, Idle: 1, MaxSessions: 1})
	waitStatus(t, ir, "the idle slot", idleSlots(1))

	c1 := dialClient(t, ir.ClientAddr)
	conn1 := accept(t, l).(*agent.Conn)
	c1.Write([]byte("one"))
	c1.CloseWrite()
	if got := readN(t, conn1, 3); got != "one" {
		t.Fatalf("host got %q", got)
	}
	conn1.Write([]byte("eno"))
	conn1.CloseWrite()
	if got, err := io.ReadAll(c1); err != nil || string(got) != "eno" {
		t.Fatalf("client got %q, %v", got, err)
	}
	if _, err := conn1.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("host read after the client's FIN: %v, want EOF", err)
	}
	waitStatus(t, ir, "the first session over", func(st *relayv1.GetStatusResponse) bool {
		return st.GetActiveSessions() == 0 && st.GetSessionsTotal() == 1
	})

	// The next session, on whichever stream; then the old Conn aborts.
	c2 := dialClient(t, ir.ClientAddr)
	conn2 := accept(t, l).(*agent.Conn)
	conn1.Abort(errors.New("late abort of an ended session"))
	c2.Write([]byte("two"))
	if got := readN(t, conn2, 3); got != "two" {
		t.Fatalf("second session: host got %q", got)
	}
	conn2.Write([]byte("owt"))
	if got := readN(t, c2, 3); got != "owt" {
		t.Fatalf("second session: client got %q", got)
	}
	c2.CloseWrite()
	conn2.CloseWrite()
	if got, err := io.ReadAll(c2); err != nil || len(got) != 0 {
		t.Fatalf("second session after the late abort: %q, %v; want a clean EOF", got, err)
	}
	if st := l.Stats(); st.StreamsOpened != 1 {
		t.Errorf("%d streams opened, want 1: the second session did not ride the first one's stream", st.StreamsOpened)
	}
}

// endingRelay is a relay that agrees to sequential sessions, runs one
// session on its first stream, and ends that stream with OK (or endWith)
// when the agent offers it again; every later stream it keeps idle.
type endingRelay struct {
	relayv1.UnimplementedHostServiceServer
	endWith error
	first   atomic.Bool
	waiting atomic.Int32 // streams welcomed and waiting for Open
}

func (e *endingRelay) Attach(stream relayv1.HostService_AttachServer) error {
	if _, err := stream.Recv(); err != nil { // Hello
		return err
	}
	welcome := &relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Welcome{Welcome: &relayv1.Welcome{
		RelayId: "ending", SlotId: "s", MaxDataBytes: 1024, SequentialSessions: true,
	}}}
	if err := stream.Send(welcome); err != nil {
		return err
	}
	if !e.first.CompareAndSwap(false, true) {
		e.waiting.Add(1)
		defer e.waiting.Add(-1)
		<-stream.Context().Done()
		return nil
	}
	// One session with no bytes: both directions closed, then SessionEnd.
	for _, f := range []*relayv1.AttachResponse{
		{Frame: &relayv1.AttachResponse_Open{Open: &relayv1.Open{SessionId: "c1", ClientAddr: "127.0.0.1:1", ListenerAddr: "127.0.0.1:2"}}},
		{Frame: &relayv1.AttachResponse_CloseWrite{CloseWrite: &relayv1.CloseWrite{}}},
	} {
		if err := stream.Send(f); err != nil {
			return err
		}
	}
	if req, err := stream.Recv(); err != nil || req.GetCloseWrite() == nil {
		return fmt.Errorf("want the agent's CloseWrite, got %v, %v", req, err)
	}
	if err := stream.Send(&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_SessionEnd{SessionEnd: &relayv1.SessionEnd{SessionId: "c1"}}}); err != nil {
		return err
	}
	if req, err := stream.Recv(); err != nil || req.GetHello() == nil {
		return fmt.Errorf("want the agent's Hello, got %v, %v", req, err)
	}
	return e.endWith // instead of Welcome
}

// A relay that ends a stream the agent offers again is not a failure: no
// backoff, and the slot leaves the agent's counts, so the pool is refilled
// to Idle and counted right. That is so when it ends it with OK (no
// Welcome), and when it refuses the token the stream was opened with
// (relayd checks it again there: rotated or revoked); a new stream carries
// the agent's token now, and only its refusal would be a failure.
func TestSequentialStreamEndedOnReoffer(t *testing.T) {
	t.Parallel()
	for name, endWith := range map[string]error{
		"ok":              nil,
		"unauthenticated": status.Error(codes.Unauthenticated, "token 0badc0de is no longer in this relay's --auth-tokens file"),
		"denied":          status.Error(codes.PermissionDenied, "token 0badc0de may not serve service \"default\""),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testStreamEndedOnReoffer(t, endWith)
		})
	}
}

func testStreamEndedOnReoffer(t *testing.T, endWith error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fake := &endingRelay{endWith: endWith}
	srv := grpc.NewServer()
	relayv1.RegisterHostServiceServer(srv, fake)
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-served })

	const idle = 2
	l := listen(t, agent.Config{Relays: []string{lis.Addr().String()}, Idle: idle})
	conn := accept(t, l).(*agent.Conn)
	if _, err := conn.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("Read = %v, want EOF (the relay's CloseWrite)", err)
	}
	conn.CloseWrite()
	deadline := time.Now().Add(hangGuard)
	for fake.waiting.Load() != idle || l.Stats().IdleSlots != idle {
		if time.Now().After(deadline) {
			t.Fatalf("relay has %d idle streams, agent counts %d idle slots; want %d and %d", fake.waiting.Load(), l.Stats().IdleSlots, idle, idle)
		}
		runtime.Gosched()
	}
	if st := l.Stats(); st.Reconnects != 0 || st.ActiveSessions != 0 {
		t.Errorf("agent stats %+v: want no reconnect and no session", st)
	}
}
