package agent_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/hostagent/agent"
)

// With SlotCredits the relay's idle slots are credits on one stream: a
// session's stream claims the relay's Offer, and its credit is granted
// again. With sequential sessions, a stream whose session ended takes the
// next client as an idle stream (a warm one), and is withdrawn after a
// moment unused; without, each session has a stream of its own. The
// agent's end withdraws the credits.
func TestSlotCredits(t *testing.T) {
	t.Parallel()
	for _, perSession := range []bool{false, true} {
		t.Run(fmt.Sprintf("StreamPerSession=%v", perSession), func(t *testing.T) {
			t.Parallel()
			ir := newRelay(t)
			const idle, sessions = 4, 10
			l := listen(t, agent.Config{Relays: []string{ir.GRPCAddr}, Idle: idle, SlotCredits: true, StreamPerSession: perSession})
			waitStatus(t, ir, "the credits", idleSlots(idle))
			if n := ir.attachedNow(); n != 1 {
				t.Fatalf("%d Attach streams for %d idle slots, want 1 (the credit stream)", n, idle)
			}
			for i := range sessions {
				echoOnce(t, ir, l, fmt.Sprintf("session %d\n", i))
				// And, with sequential sessions, the session's stream idle
				// again for a moment (a warm one).
				waitStatus(t, ir, "the credit granted again", func(st *relayv1.GetStatusResponse) bool {
					return st.GetIdleSlots() >= idle && st.GetActiveSessions() == 0
				})
			}
			st := waitStats(t, l, "every session counted and the credits back", func(st agent.Stats) bool {
				return st.SessionsTotal == sessions && st.IdleSlots >= idle
			})
			if perSession && st.StreamsOpened != 1+sessions {
				t.Errorf("%d streams opened, want %d: the credit stream and one per session", st.StreamsOpened, 1+sessions)
			}
			// Each gap between two sessions is far below the 500 ms a
			// warm stream waits; one warm stream taking the next client is
			// enough to show it.
			if !perSession && st.StreamsOpened >= 1+sessions {
				t.Errorf("%d streams opened for %d sessions one after another: no ended stream took the next client", st.StreamsOpened, sessions)
			}
			// The warm stream, unused, is withdrawn: the credits are left.
			waitStatus(t, ir, "the warm stream withdrawn", idleSlots(idle))
			ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
			defer cancel()
			if err := l.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			waitStatus(t, ir, "no host left", func(st *relayv1.GetStatusResponse) bool {
				return st.GetHosts() == 0 && st.GetIdleSlots() == 0
			})
		})
	}
}

// Credits stay within MaxSessions: with two sessions open and MaxSessions 2
// the relay holds no credit, and a third client waits, its bytes intact,
// until a session ends and the credit comes back.
func TestSlotCreditsMaxSessions(t *testing.T) {
	t.Parallel()
	ir := newRelay(t)
	l := listen(t, agent.Config{Relays: []string{ir.GRPCAddr}, Idle: 4, MaxSessions: 2, SlotCredits: true})
	waitStatus(t, ir, "two credits", idleSlots(2))
	c1 := dialClient(t, ir.ClientAddr)
	s1 := accept(t, l)
	c2 := dialClient(t, ir.ClientAddr)
	s2 := accept(t, l)
	waitStatus(t, ir, "no credit while two sessions are open", func(st *relayv1.GetStatusResponse) bool {
		return st.GetIdleSlots() == 0 && st.GetActiveSessions() == 2
	})
	c3 := dialClient(t, ir.ClientAddr)
	c3.Write([]byte("third"))
	waitStatus(t, ir, "the third client waiting", func(st *relayv1.GetStatusResponse) bool { return st.GetPendingClients() == 1 })

	c1.CloseWrite()
	echo(s1)
	io.ReadAll(c1)
	third := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		third <- c
	}()
	var s3 net.Conn
	select {
	case s3 = <-third:
	case <-time.After(hangGuard):
		t.Fatal("the third client was not served after a session ended")
	}
	if s3 == nil {
		t.Fatal("Accept failed")
	}
	defer s3.Close()
	if got := readN(t, s3, 5); got != "third" {
		t.Fatalf("third session read %q", got)
	}
	c2.CloseWrite()
	echo(s2)
	io.ReadAll(c2)
}

// MaxSessions bounds the credits over all relays, shared out: with Idle 3
// and MaxSessions 4 the two relays hold 2 credits each, not 3 each, nor 3
// and 1.
func TestSlotCreditsMaxSessionsOverRelays(t *testing.T) {
	t.Parallel()
	a, b := newRelay(t), newRelay(t)
	l := listen(t, agent.Config{Relays: []string{a.GRPCAddr, b.GRPCAddr}, Idle: 3, MaxSessions: 4, SlotCredits: true})
	idle := func(ir *inProcessRelay) uint32 {
		st, err := ir.Relay.StatusService().GetStatus(context.Background(), &relayv1.GetStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return st.GetIdleSlots()
	}
	// Both credit streams welcomed, every credit in place: the relays add
	// a stream's credits before its Welcome, and the agent counts them
	// once it has the Welcome.
	waitStatus(t, a, "credits on both relays, as the agent counts them", func(*relayv1.GetStatusResponse) bool {
		na, nb := idle(a), idle(b)
		return na > 0 && nb > 0 && l.Stats().IdleSlots == int(na+nb)
	})
	if na, nb := idle(a), idle(b); na != 2 || nb != 2 {
		t.Fatalf("%d + %d credits over the two relays, want MaxSessions = 4 shared out, 2 each", na, nb)
	}
}

// noCreditsRelay answers every Hello with a Welcome that does not know
// slot credits, as a relay older than them would, and keeps the stream.
type noCreditsRelay struct {
	relayv1.UnimplementedHostServiceServer
	ended chan struct{} // a stream the agent ended
}

func (n *noCreditsRelay) Attach(stream relayv1.HostService_AttachServer) error {
	if _, err := stream.Recv(); err != nil {
		return err
	}
	if err := stream.Send(&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Welcome{Welcome: &relayv1.Welcome{RelayId: "old", SlotId: "s", MaxDataBytes: 1024}}}); err != nil {
		return err
	}
	<-stream.Context().Done()
	select {
	case n.ended <- struct{}{}:
	default:
	}
	return nil
}

// A relay that answers a credit stream as an idle slot is reported, the
// stream ended (no client may land on it), and the relay retried with
// backoff; the agent never counts it as credits.
func TestSlotCreditsRelayWithoutCredits(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fake := &noCreditsRelay{ended: make(chan struct{}, 1)}
	srv := grpc.NewServer()
	relayv1.RegisterHostServiceServer(srv, fake)
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-served })

	logs := make(chan string, 16)
	l := listen(t, agent.Config{Relays: []string{lis.Addr().String()}, SlotCredits: true, Logger: slog.New(logHandler{logs})})
	select {
	case <-fake.ended:
	case <-time.After(hangGuard):
		t.Fatal("the agent kept a credit stream the relay took for an idle slot")
	}
	for refused := false; !refused; {
		select {
		case msg := <-logs:
			refused = msg == "relay refused the slot"
		case <-time.After(hangGuard):
			t.Fatal(`no "relay refused the slot" logged`)
		}
	}
	if st := l.Stats(); st.IdleSlots != 0 || st.Reconnects == 0 {
		t.Errorf("Stats = %+v, want no idle slot and a reconnect counted", st)
	}
}

// MaxSessions below Idle × relays is shared out over the relays: with Idle
// 10 and MaxSessions 8 each of two relays gets 4 idle slots, not the first
// one 8 and the second none (whose clients would then find no slot on an
// idle agent).
func TestMaxSessionsSharedOverRelays(t *testing.T) {
	t.Parallel()
	a, b := newRelay(t), newRelay(t)
	l := listen(t, agent.Config{Relays: []string{a.GRPCAddr, b.GRPCAddr}, Idle: 10, MaxSessions: 8})
	idle := func(ir *inProcessRelay) uint32 {
		st, err := ir.Relay.StatusService().GetStatus(context.Background(), &relayv1.GetStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return st.GetIdleSlots()
	}
	waitStatus(t, a, "every slot attached, as the agent counts them", func(*relayv1.GetStatusResponse) bool {
		na, nb := idle(a), idle(b)
		return na+nb == 8 && l.Stats().IdleSlots == 8
	})
	if na, nb := idle(a), idle(b); na != 4 || nb != 4 {
		t.Fatalf("%d + %d idle slots over the two relays, want 4 each", na, nb)
	}
}

// A relay that comes back while another holds the whole MaxSessions gets
// its share again as sessions end: the streams of the other relay are
// given up instead of offered again, and opened on it.
func TestMaxSessionsShareReturnsToRelayBack(t *testing.T) {
	t.Parallel()
	// Relay a is down (its port refuses) until it starts below.
	aAddr, listenA := reservePort(t)
	b := newRelay(t)
	l := listen(t, agent.Config{Relays: []string{aAddr, b.GRPCAddr}, Idle: 10, MaxSessions: 2,
		BackoffBase: time.Millisecond, BackoffMax: 10 * time.Millisecond})
	idle := func(ir *inProcessRelay) uint32 {
		st, err := ir.Relay.StatusService().GetStatus(context.Background(), &relayv1.GetStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return st.GetIdleSlots()
	}
	waitStatus(t, b, "both slots on relay b while a is down", func(*relayv1.GetStatusResponse) bool { return idle(b) == 2 })

	lis, err := listenA()
	if err != nil {
		t.Fatal(err)
	}
	a := newRelayOn(t, lis)
	// Sessions on b, one after another, until a has its slot back (with
	// Withdraw, it may have it back before any).
	for i := 0; idle(a) == 0; i++ {
		if i == 50 {
			t.Fatalf("relay a has no slot after %d sessions on b (b has %d idle)", i, idle(b))
		}
		client := dialClient(t, b.ClientAddr)
		conn := accept(t, l)
		client.CloseWrite()
		echo(conn)
		io.ReadAll(client)
		client.Close()
		waitStatus(t, b, "the session ended", func(st *relayv1.GetStatusResponse) bool { return st.GetActiveSessions() == 0 })
		waitStatus(t, b, "the slots settled", func(*relayv1.GetStatusResponse) bool {
			return l.Stats().IdleSlots == 2 && l.Stats().ActiveSessions == 0
		})
	}
	if na, nb := idle(a), idle(b); na != 1 || nb != 1 {
		t.Errorf("%d + %d idle slots on relays a and b, want 1 each", na, nb)
	}
}

// A relay that comes back while another holds the whole MaxSessions gets
// its share again on an agent without traffic: the other relay's idle
// slots are withdrawn (Withdraw, which no client can lose a session to)
// one at a time and opened on it. Without that, its clients would find no
// slot for as long as no session ended elsewhere.
func TestMaxSessionsShareReturnsWithoutTraffic(t *testing.T) {
	t.Parallel()
	aAddr, listenA := reservePort(t)
	b := newRelay(t)
	l := listen(t, agent.Config{Relays: []string{aAddr, b.GRPCAddr}, Idle: 10, MaxSessions: 4,
		BackoffBase: time.Millisecond, BackoffMax: 10 * time.Millisecond})
	idle := func(ir *inProcessRelay) uint32 {
		st, err := ir.Relay.StatusService().GetStatus(context.Background(), &relayv1.GetStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return st.GetIdleSlots()
	}
	waitStatus(t, b, "every slot on relay b while a is down", func(*relayv1.GetStatusResponse) bool { return idle(b) == 4 })

	lis, err := listenA()
	if err != nil {
		t.Fatal(err)
	}
	a := newRelayOn(t, lis)
	waitStatus(t, a, "the slots shared out again, with no session", func(*relayv1.GetStatusResponse) bool {
		return idle(a) == 2 && idle(b) == 2 && l.Stats().IdleSlots == 4
	})
	if st := l.Stats(); st.SessionsTotal != 0 {
		t.Fatalf("%d sessions, want none", st.SessionsTotal)
	}
	// Both relays' clients are served.
	for _, ir := range []*inProcessRelay{a, b} {
		client := dialClient(t, ir.ClientAddr)
		conn := accept(t, l)
		client.Write([]byte("ping"))
		client.CloseWrite()
		echo(conn)
		if got, err := io.ReadAll(client); err != nil || string(got) != "ping" {
			t.Fatalf("client of %s: %q, %v; want the echo", ir.GRPCAddr, got, err)
		}
	}
}

// With slot credits, a drained relay's share of MaxSessions is not given
// to the other relay (credits cannot be taken back): after the drain it
// gets its credits again, with no traffic needed.
func TestSlotCreditsShareKeptOverDrain(t *testing.T) {
	t.Parallel()
	a, b := newRelay(t), newRelay(t)
	logs := make(chan string, 256)
	l := listen(t, agent.Config{Relays: []string{a.GRPCAddr, b.GRPCAddr}, Idle: 3, MaxSessions: 4, SlotCredits: true,
		Logger: slog.New(logHandler{logs})})
	idle := func(ir *inProcessRelay) uint32 {
		st, err := ir.Relay.StatusService().GetStatus(context.Background(), &relayv1.GetStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return st.GetIdleSlots()
	}
	waitStatus(t, a, "2 credits on each relay", func(*relayv1.GetStatusResponse) bool {
		return idle(a) == 2 && idle(b) == 2 && l.Stats().IdleSlots == 4
	})
	ctx := context.Background()
	if _, err := a.Relay.AdminService().DrainHost(ctx, &relayv1.DrainHostRequest{HostId: "test-host"}); err != nil {
		t.Fatalf("DrainHost: %v", err)
	}
	waitLogMsg(t, logs, "relay drained this host")
	if _, err := a.Relay.AdminService().UndrainHost(ctx, &relayv1.UndrainHostRequest{HostId: "test-host"}); err != nil {
		t.Fatalf("UndrainHost: %v", err)
	}
	waitStatus(t, a, "relay a's credits back after the drain", func(*relayv1.GetStatusResponse) bool {
		return idle(a) == 2 && idle(b) == 2
	})
}

// TestMaxSessionsIdleSlotFollowsClients: with MaxSessions shared out over
// the relays, a relay whose every slot is in a session gets an idle slot
// from a relay holding two or more, so that its next client is served
// while the agent has room. Its sessions' streams counted in its share,
// and with a load balancer sending one relay more clients, those clients
// waited for the relay's assign timeout while the agent held idle slots
// on the other.
func TestMaxSessionsIdleSlotFollowsClients(t *testing.T) {
	t.Parallel()
	a, b := newRelay(t), newRelay(t)
	l := listen(t, agent.Config{Relays: []string{a.GRPCAddr, b.GRPCAddr}, Idle: 2, MaxSessions: 4})
	idle := func(ir *inProcessRelay) uint32 {
		st, err := ir.Relay.StatusService().GetStatus(context.Background(), &relayv1.GetStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return st.GetIdleSlots()
	}
	waitStatus(t, a, "two idle slots on each relay", func(*relayv1.GetStatusResponse) bool { return idle(a) == 2 && idle(b) == 2 })
	// Three clients of relay a, all held: the third needs a slot that
	// was on relay b.
	for i := range 3 {
		client := dialClient(t, a.ClientAddr)
		msg := fmt.Sprintf("held %d\n", i)
		if _, err := client.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		conn := accept(t, l)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, got); err != nil || string(got) != msg {
			t.Fatalf("session %d: read %q, %v", i, got, err)
		}
	}
	waitStatus(t, a, "three sessions on relay a", func(st *relayv1.GetStatusResponse) bool { return st.GetActiveSessions() == 3 })
}

// TestMaxSessionsSharedWithoutChurn: moving idle slots between relays
// settles. Taking a relay's last idle slot made it one with none idle,
// which the next slot went straight back to: a withdraw and an open every
// round trip (5,645 moves a second, found in review). Two sessions held on
// relay a, Idle 4, MaxSessions 4: the agent settles, and twenty sessions
// on relay b then open a few streams, not hundreds.
func TestMaxSessionsSharedWithoutChurn(t *testing.T) {
	t.Parallel()
	a, b := newRelay(t), newRelay(t)
	l := listen(t, agent.Config{Relays: []string{a.GRPCAddr, b.GRPCAddr}, Idle: 4, MaxSessions: 4})
	waitStatus(t, a, "the slots shared out", func(*relayv1.GetStatusResponse) bool { return l.Stats().IdleSlots == 4 })
	for i := range 2 {
		client := dialClient(t, a.ClientAddr)
		msg := fmt.Sprintf("held %d\n", i)
		if _, err := client.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		conn := accept(t, l)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, got); err != nil || string(got) != msg {
			t.Fatalf("session %d: read %q, %v", i, got, err)
		}
	}
	waitStatus(t, a, "2 sessions and 2 idle slots", func(*relayv1.GetStatusResponse) bool {
		st := l.Stats()
		return st.ActiveSessions == 2 && st.IdleSlots == 2
	})
	// Twenty sessions on relay b, one after another: each takes an idle
	// slot there, whose stream is offered again when it ends.
	before := l.Stats().StreamsOpened
	for range 20 {
		client := dialClient(t, b.ClientAddr)
		conn := accept(t, l)
		client.CloseWrite()
		echo(conn)
		io.ReadAll(client)
		client.Close()
		waitStatus(t, b, "the session on b ended", func(st *relayv1.GetStatusResponse) bool { return st.GetActiveSessions() == 0 })
	}
	if opened := l.Stats().StreamsOpened - before; opened > 10 {
		t.Errorf("%d streams opened around 20 sessions, want a few: slots churn between the relays", opened)
	}
}

// TestCreditsFreedGoToRelayShortOfThem: with MaxSessions reached, the room
// a session's end frees goes to the relay with the fewest credits. It went
// to the first relay listed: with two sessions held on a, the two that
// ended on b gave a two credits and left b none, and b's next client was
// reset after --assign-timeout while a's credits sat idle (QA).
func TestCreditsFreedGoToRelayShortOfThem(t *testing.T) {
	t.Parallel()
	a, b := newRelay(t), newRelay(t)
	l := listen(t, agent.Config{Relays: []string{a.GRPCAddr, b.GRPCAddr}, Idle: 2, MaxSessions: 4, SlotCredits: true})
	idle := func(ir *inProcessRelay) uint32 {
		st, err := ir.Relay.StatusService().GetStatus(context.Background(), &relayv1.GetStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return st.GetIdleSlots()
	}
	waitStatus(t, b, "two credits on each relay", func(*relayv1.GetStatusResponse) bool { return idle(a) == 2 && idle(b) == 2 })
	for range 2 { // held on a
		dialClient(t, a.ClientAddr)
		accept(t, l)
	}
	for i := range 2 { // one after another on b
		echoOnce(t, b, l, fmt.Sprintf("short %d", i))
	}
	// Both of b's sessions have ended: their room is given again.
	waitStatus(t, b, "two credits given again", func(*relayv1.GetStatusResponse) bool { return idle(a)+idle(b) == 2 })
	if got := idle(b); got == 0 {
		t.Errorf("relay b holds %d credits and a %d, with a's two sessions open: b's clients have nowhere to go", got, idle(a))
	}
}

// With slot credits, the streams whose sessions ended stay on the relay as
// idle streams (warm ones) until WarmLinger has passed: at most Idle of
// them per relay, the others given up, and counted within MaxSessions, so
// that credits and warm streams together never promise more sessions.
func TestWarmStreams(t *testing.T) {
	t.Parallel()
	// runSessions opens n sessions at once, then ends each with an echo.
	runSessions := func(t *testing.T, ir *inProcessRelay, l *agent.Listener, n int) {
		t.Helper()
		clients := make([]*net.TCPConn, n)
		conns := make([]net.Conn, n)
		for i := range n {
			clients[i] = dialClient(t, ir.ClientAddr)
			conns[i] = accept(t, l)
		}
		for i := range n {
			clients[i].Write([]byte("x"))
			clients[i].CloseWrite()
			echo(conns[i])
			if b, err := io.ReadAll(clients[i]); err != nil || string(b) != "x" {
				t.Fatalf("session %d: client read %q, %v", i, b, err)
			}
		}
	}
	// settled is a status with no session, idle slots in all, and streams
	// streams attached (the credit stream and the warm ones).
	settled := func(ir *inProcessRelay, idle uint32, streams int) func(*relayv1.GetStatusResponse) bool {
		return func(st *relayv1.GetStatusResponse) bool {
			return st.GetActiveSessions() == 0 && st.GetIdleSlots() == idle && ir.attachedNow() == streams
		}
	}
	t.Run("at most Idle", func(t *testing.T) {
		t.Parallel()
		ir := newRelay(t)
		const idle = 2
		l := listen(t, agent.Config{Relays: []string{ir.GRPCAddr}, Idle: idle, SlotCredits: true, WarmLinger: time.Hour})
		waitStatus(t, ir, "the credits", idleSlots(idle))
		runSessions(t, ir, l, 5)
		waitStatus(t, ir, "2 credits and 2 warm streams, 3 streams given up", settled(ir, 2*idle, 1+idle))
		waitStats(t, l, "the credits and warm streams counted idle", func(st agent.Stats) bool { return st.IdleSlots == 2*idle })
	})
	t.Run("within MaxSessions", func(t *testing.T) {
		t.Parallel()
		ir := newRelay(t)
		l := listen(t, agent.Config{Relays: []string{ir.GRPCAddr}, Idle: 4, MaxSessions: 2, SlotCredits: true, WarmLinger: time.Hour})
		waitStatus(t, ir, "two credits", idleSlots(2))
		runSessions(t, ir, l, 2)
		waitStatus(t, ir, "2 warm streams and no credit", settled(ir, 2, 3))
		clients := map[string]*net.TCPConn{}
		for _, name := range []string{"a", "b", "c"} {
			clients[name] = dialClient(t, ir.ClientAddr)
			clients[name].Write([]byte(name))
		}
		// Which client each session serves: the warm streams take them
		// in any order.
		sessions := map[string]net.Conn{}
		for range 2 {
			s := accept(t, l)
			sessions[readN(t, s, 1)] = s
		}
		waitStatus(t, ir, "the third client waiting", func(st *relayv1.GetStatusResponse) bool {
			return st.GetActiveSessions() == 2 && st.GetPendingClients() == 1 && st.GetIdleSlots() == 0
		})
		for name := range sessions {
			clients[name].CloseWrite()
			echo(sessions[name])
			io.ReadAll(clients[name])
			s := accept(t, l)
			if got := readN(t, s, 1); sessions[got] != nil {
				t.Fatalf("the third session is client %q's, which was served", got)
			}
			break
		}
	})
}
