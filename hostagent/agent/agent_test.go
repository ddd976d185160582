package agent_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/relayproject/relay/hostagent/agent"
)

func TestAcceptRemoteAddr(t *testing.T) {
	t.Parallel()
	ir := newRelay(t)
	l := listen(t, agent.Config{Relays: []string{ir.GRPCAddr}})
	client := dialClient(t, ir.ClientAddr)
	conn := accept(t, l)
	if got, want := conn.RemoteAddr().String(), client.LocalAddr().String(); got != want {
		t.Errorf("RemoteAddr = %q, want the client's address %q", got, want)
	}
	if _, ok := conn.RemoteAddr().(*net.TCPAddr); !ok {
		t.Errorf("RemoteAddr is a %T, want *net.TCPAddr", conn.RemoteAddr())
	}
	if got := conn.LocalAddr().String(); got != ir.ClientAddr {
		t.Errorf("LocalAddr = %q, want the relay's client port %q", got, ir.ClientAddr)
	}
	ac := conn.(*agent.Conn)
	if ac.SessionID() == "" || ac.Service() != "default" || ac.Relay() != ir.GRPCAddr {
		t.Errorf("SessionID %q, Service %q, Relay %q", ac.SessionID(), ac.Service(), ac.Relay())
	}
}

func TestHalfClose(t *testing.T) {
	t.Parallel()
	t.Run("client_first", func(t *testing.T) {
		t.Parallel()
		ir := newRelay(t)
		l := listen(t, agent.Config{Relays: []string{ir.GRPCAddr}})
		client := dialClient(t, ir.ClientAddr)
		conn := accept(t, l)
		client.Write([]byte("ping"))
		client.CloseWrite()
		got, err := io.ReadAll(conn)
		if err != nil || string(got) != "ping" {
			t.Fatalf("agent read %q, %v; want %q then EOF", got, err, "ping")
		}
		// The other direction still flows after the client's FIN.
		conn.Write([]byte("pong"))
		if err := conn.(*agent.Conn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		got, err = io.ReadAll(client)
		if err != nil || string(got) != "pong" {
			t.Fatalf("client read %q, %v; want %q then EOF", got, err, "pong")
		}
		conn.Close()
	})
	t.Run("agent_first", func(t *testing.T) {
		t.Parallel()
		ir := newRelay(t)
		l := listen(t, agent.Config{Relays: []string{ir.GRPCAddr}})
		client := dialClient(t, ir.ClientAddr)
		conn := accept(t, l)
		big := make([]byte, 200_000) // several frames, and more than a socket buffer
		for i := range big {
			big[i] = byte(i % 251)
		}
		go func() {
			conn.Write(big)
			conn.(*agent.Conn).CloseWrite()
		}()
		got, err := io.ReadAll(client)
		if err != nil || string(got) != string(big) {
			t.Fatalf("client read %d bytes, %v; want all %d then EOF", len(got), err, len(big))
		}
		client.Write([]byte("still talking"))
		client.CloseWrite()
		gotc, err := io.ReadAll(conn)
		if err != nil || string(gotc) != "still talking" {
			t.Fatalf("agent read %q, %v", gotc, err)
		}
		conn.Close()
	})
}

// echo serves one session: it copies until the client's FIN, then closes.
func echo(conn net.Conn) {
	io.Copy(conn, conn)
	conn.Close()
}

func TestSlotsReplenished(t *testing.T) {
	t.Parallel()
	ir := newRelay(t)
	const idle = 2
	l := listen(t, agent.Config{Relays: []string{ir.GRPCAddr}, Idle: idle})
	for i := range 3 * idle {
		client := dialClient(t, ir.ClientAddr)
		conn := accept(t, l)
		msg := fmt.Sprint("session ", i)
		client.Write([]byte(msg))
		client.CloseWrite()
		echo(conn)
		got, err := io.ReadAll(client)
		if err != nil || string(got) != msg {
			t.Fatalf("session %d: client read %q, %v", i, got, err)
		}
	}
}

// TestConns spreads slots over several connections to one relay: every
// connection carries slots, and sessions on each are byte-exact.
func TestConns(t *testing.T) {
	t.Parallel()
	ir := newRelay(t)
	const conns, idle = 3, 6
	l := listen(t, agent.Config{Relays: []string{ir.GRPCAddr}, Idle: idle, Conns: conns})
	for i := range 2 * idle {
		client := dialClient(t, ir.ClientAddr)
		conn := accept(t, l)
		msg := fmt.Sprint("session ", i)
		client.Write([]byte(msg))
		client.CloseWrite()
		echo(conn)
		got, err := io.ReadAll(client)
		if err != nil || string(got) != msg {
			t.Fatalf("session %d: client read %q, %v", i, got, err)
		}
	}
	// The first idle slots went to the connections in turn, and the
	// first of them has been assigned (Attach seen) by now.
	if got := ir.agentConns(); got != conns {
		t.Fatalf("Attach came over %d agent connections, want %d", got, conns)
	}
}

// TestSlotsReplacedWhileInUse keeps every session open: a slot must be
// replaced as soon as a client is assigned to it, not when its session ends.
func TestSlotsReplacedWhileInUse(t *testing.T) {
	t.Parallel()
	ir := newRelay(t)
	const idle = 2
	l := listen(t, agent.Config{Relays: []string{ir.GRPCAddr}, Idle: idle})
	var clients []*net.TCPConn
	var conns []net.Conn
	for range 3 * idle {
		clients = append(clients, dialClient(t, ir.ClientAddr))
		conns = append(conns, accept(t, l))
	}
	for i, c := range clients {
		msg := fmt.Sprint("open session ", i)
		c.Write([]byte(msg))
		c.CloseWrite()
		echo(conns[i]) // sessions pair up in arrival order
		if got, err := io.ReadAll(c); err != nil || string(got) != msg {
			t.Fatalf("session %d: client read %q, %v", i, got, err)
		}
	}
}

func TestMaxSessions(t *testing.T) {
	t.Parallel()
	ir := newRelay(t)
	const maxSessions = 2
	l := listen(t, agent.Config{Relays: []string{ir.GRPCAddr}, Idle: 4, MaxSessions: maxSessions})
	c1 := dialClient(t, ir.ClientAddr)
	s1 := accept(t, l)
	c2 := dialClient(t, ir.ClientAddr)
	s2 := accept(t, l)

	c3 := dialClient(t, ir.ClientAddr)
	c3.Write([]byte("third"))
	third := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			third <- c
		}
		close(third)
	}()
	// Both sessions still work while the third client waits.
	for i, p := range []struct {
		c net.Conn
		s net.Conn
	}{{c1, s1}, {c2, s2}} {
		p.c.Write([]byte("x"))
		if got := readN(t, p.s, 1); got != "x" {
			t.Fatalf("session %d: %q", i+1, got)
		}
	}
	select {
	case <-third:
		t.Fatal("a third session was accepted while two were open")
	default:
	}
	if n := ir.Relay.ActiveSessions(); n != maxSessions {
		t.Errorf("relay has %d sessions, want %d", n, maxSessions)
	}

	// One session ends: the third client gets its turn, its bytes intact.
	c1.CloseWrite()
	echo(s1)
	io.ReadAll(c1)
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
	if n := ir.maxConcurrentAttach(); n > maxSessions {
		t.Errorf("the agent held %d Attach streams at once, want at most MaxSessions = %d", n, maxSessions)
	}
}

func TestRelayStartsLater(t *testing.T) {
	t.Parallel()
	// A port bound but not listening until the relay starts: connections
	// are refused, and no parallel test's socket can take the port
	// meanwhile (the agent would reach that test's listener instead).
	addr, listenLater := reservePort(t)

	logs := make(chan string, 64)
	l := listen(t, agent.Config{
		Relays:      []string{addr},
		BackoffBase: time.Millisecond, BackoffMax: 10 * time.Millisecond,
		Logger: slog.New(logHandler{logs}),
	})
	for failures := 0; failures < 3; {
		select {
		case msg := <-logs:
			if msg == "relay unreachable" {
				failures++
			}
		case <-time.After(hangGuard):
			t.Fatal("the agent logged no failed attempt")
		}
	}

	lis, err := listenLater()
	if err != nil {
		t.Fatal(err)
	}
	ir := newRelayOn(t, lis)
	client := dialClient(t, ir.ClientAddr)
	conn := accept(t, l)
	client.Write([]byte("late"))
	client.CloseWrite()
	echo(conn)
	if got, err := io.ReadAll(client); err != nil || string(got) != "late" {
		t.Fatalf("client read %q, %v", got, err)
	}
}

func TestCloseStopsAccept(t *testing.T) {
	t.Parallel()
	ir := newRelay(t)
	l := listen(t, agent.Config{Relays: []string{ir.GRPCAddr}})
	errc := make(chan error, 1)
	go func() { _, err := l.Accept(); errc <- err }()
	l.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Accept: %v, want net.ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := l.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown with no session: %v", err)
	}
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	t.Run("waits_for_session", func(t *testing.T) {
		t.Parallel()
		ir := newRelay(t)
		l := listen(t, agent.Config{Relays: []string{ir.GRPCAddr}})
		client := dialClient(t, ir.ClientAddr)
		conn := accept(t, l)
		done := make(chan error, 1)
		go func() { done <- l.Shutdown(context.Background()) }()
		if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) { // Shutdown has closed the listener
			t.Fatalf("Accept during Shutdown: %v", err)
		}
		// The open session still works.
		client.Write([]byte("hi"))
		client.CloseWrite()
		if got := readN(t, conn, 2); got != "hi" {
			t.Fatalf("agent read %q", got)
		}
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned %v with a session open", err)
		default:
		}
		echo(conn)
		io.ReadAll(client)
		if err := <-done; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	})
	t.Run("aborts_when_ctx_ends", func(t *testing.T) {
		t.Parallel()
		ir := newRelay(t)
		l := listen(t, agent.Config{Relays: []string{ir.GRPCAddr}})
		client := dialClient(t, ir.ClientAddr)
		conn := accept(t, l)
		conn.Write([]byte("partial"))
		if got := readN(t, client, 7); got != "partial" {
			t.Fatalf("client read %q", got)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- l.Shutdown(ctx) }()
		if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept during Shutdown: %v", err)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Shutdown = %v, want context.Canceled", err)
		}
		if _, err := conn.Read(make([]byte, 1)); err == nil || err == io.EOF {
			t.Errorf("agent Read after the abort: %v, want an abort error", err)
		}
		if _, err := io.ReadAll(client); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("client read error %v, want a reset", err)
		}
	})
}

func TestSetReadDeadline(t *testing.T) {
	t.Parallel()
	ir := newRelay(t)
	l := listen(t, agent.Config{Relays: []string{ir.GRPCAddr}})
	client := dialClient(t, ir.ClientAddr)
	conn := accept(t, l)
	errc := make(chan error, 1)
	go func() { _, err := conn.Read(make([]byte, 8)); errc <- err }()
	conn.SetReadDeadline(time.Now()) // a blocked Read (or one about to block) returns
	err := <-errc
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read = %v, want os.ErrDeadlineExceeded", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("Read error %v is not a net.Error with Timeout()", err)
	}
	// The session survives its deadline.
	conn.SetReadDeadline(time.Time{})
	client.Write([]byte("after"))
	if got := readN(t, conn, 5); got != "after" {
		t.Fatalf("read %q after clearing the deadline", got)
	}
}

func TestCloseWithUnreadDataResetsClient(t *testing.T) {
	t.Parallel()
	ir := newRelay(t)
	l := listen(t, agent.Config{Relays: []string{ir.GRPCAddr}})
	client := dialClient(t, ir.ClientAddr)
	conn := accept(t, l)
	client.Write([]byte("hello world"))
	readN(t, conn, 1) // the rest of the frame is left unread
	conn.Close()
	b, err := io.ReadAll(client)
	if len(b) != 0 || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read %q, %v; want a reset", b, err)
	}
}
