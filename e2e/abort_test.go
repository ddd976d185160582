package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tcpState is the kernel's TCP state of c (unix.BPF_TCP_* values).
func tcpState(tb testing.TB, c *net.TCPConn) uint8 {
	tb.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		tb.Fatal(err)
	}
	var info *unix.TCPInfo
	var serr error
	if err := raw.Control(func(fd uintptr) { info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil {
		tb.Fatal(err)
	}
	if serr != nil {
		tb.Fatal(serr)
	}
	return info.State
}

// TestAbortAfterHalfClose: once one direction of a session is closed, only
// one copy loop is left, blocked reading the side that is still open. An
// abort from the other side (a client reset, an agent crash) must still end
// the session at once — the design's "client resets → Close{client_reset}"
// and "stream breaks → client gets a reset" — even when the side still open
// is silent, or the session leaks until that side happens to speak.
func TestAbortAfterHalfClose(t *testing.T) {
	t.Parallel()
	const hello = "hello\n"
	greeting := patternBytes(3, 64<<10)
	tests := []struct {
		name string
		// backend serves the one connection; it must stay silent with its
		// connection open until the test ends (released is closed).
		backend func(c *net.TCPConn, eof chan<- struct{})
		// run drives the client and the agent.
		run func(t *testing.T, c *net.TCPConn, agent *agentProc, eof <-chan struct{})
		// backendReset: the agent must also reset the backend's connection
		// (its only way to tell a silent backend that the session is gone).
		backendReset bool
	}{
		{
			// The client sends its request, half-closes, then resets; the
			// backend is still working on its answer.
			name: "client_half_closes_then_resets",
			backend: func(c *net.TCPConn, eof chan<- struct{}) {
				io.Copy(io.Discard, c)
				close(eof)
			},
			run: func(t *testing.T, c *net.TCPConn, _ *agentProc, eof <-chan struct{}) {
				if _, err := io.WriteString(c, hello); err != nil {
					t.Fatal(err)
				}
				c.CloseWrite()
				select {
				case <-eof:
				case <-time.After(ioTimeout):
					t.Fatal("the client's FIN did not reach the backend")
				}
				c.SetLinger(0)
				c.Close()
			},
			backendReset: true,
		},
		{
			// The backend has said everything and half-closed; the client
			// still could send but is silent; then the agent crashes.
			name: "host_half_closes_then_dies",
			backend: func(c *net.TCPConn, _ chan<- struct{}) {
				if _, err := c.Write(greeting); err != nil {
					return
				}
				c.CloseWrite()
				io.Copy(io.Discard, c)
			},
			run: func(t *testing.T, c *net.TCPConn, agent *agentProc, _ <-chan struct{}) {
				got, err := io.ReadAll(c)
				if err != nil || len(got) != len(greeting) {
					t.Fatalf("client: read greeting: %d bytes, %v; want %d bytes and EOF", len(got), err, len(greeting))
				}
				agent.kill(t)
				// The client must get its reset: with nothing to read or
				// write, only the socket's state shows it.
				waitFor(t, ioTimeout, func() (bool, string) {
					s := tcpState(t, c)
					return s == unix.BPF_TCP_CLOSE, fmt.Sprintf("client socket in TCP state %d, want CLOSE (%d): no reset from the relay", s, unix.BPF_TCP_CLOSE)
				})
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			released := make(chan struct{})
			eof := make(chan struct{})
			backendConn := make(chan *net.TCPConn, 1)
			b := startBackend(t, func(c *net.TCPConn) {
				backendConn <- c
				tt.backend(c, eof)
				select { // silent, connection open
				case <-released:
				case <-time.After(4 * ioTimeout):
				}
			})
			r := startRelay(t)
			agent := startAgent(t, r.grpcAddr, "forward", b.addr)
			t.Cleanup(sync.OnceFunc(func() { close(released) }))
			st := statusClient(t, r)

			c := dial(t, r.clientAddr)
			tt.run(t, c, agent, eof)
			waitFor(t, ioTimeout, func() (bool, string) {
				s, err := getStatus(st)
				if err != nil {
					return false, err.Error()
				}
				return s.GetActiveSessions() == 0, fmt.Sprintf("relay still has %d active session(s)", s.GetActiveSessions())
			})
			if tt.backendReset {
				bc := <-backendConn
				waitFor(t, ioTimeout, func() (bool, string) {
					s := tcpState(t, bc)
					return s == unix.BPF_TCP_CLOSE, fmt.Sprintf("backend socket in TCP state %d, want CLOSE (%d): the agent did not reset it", s, unix.BPF_TCP_CLOSE)
				})
			}
		})
	}
}

// TestAgentDrainTimeout: SIGTERM to hostagent lets open sessions run for
// --drain-timeout, then closes them and exits 0. The session here is one a
// forward backend keeps open in silence after the client's FIN — exactly
// the kind that does not finish on its own.
func TestAgentDrainTimeout(t *testing.T) {
	t.Parallel()
	eof := make(chan struct{})
	released := make(chan struct{})
	b := startBackend(t, func(c *net.TCPConn) {
		io.Copy(io.Discard, c)
		close(eof)
		select {
		case <-released:
		case <-time.After(4 * ioTimeout):
		}
	})
	r := startRelay(t)
	agent := startAgent(t, r.grpcAddr, "--drain-timeout", "1s", "forward", b.addr)
	t.Cleanup(sync.OnceFunc(func() { close(released) }))

	c := dial(t, r.clientAddr)
	io.WriteString(c, "hello\n")
	c.CloseWrite()
	select {
	case <-eof:
	case <-time.After(ioTimeout):
		t.Fatal("the client's FIN did not reach the backend")
	}
	start := time.Now()
	if err := agent.terminate(t); err != nil {
		t.Fatalf("hostagent: SIGTERM: want exit status 0, got %v", err)
	}
	t.Logf("hostagent exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	// The agent told the relay why: a planned stop, not a host lost.
	line := r.waitLog(t, ioTimeout, `"session aborted"`, func(l logLine) bool { return strings.HasPrefix(l.msg(), "session aborted") })
	if line.str("reason") != "CLOSE_REASON_HOST_ABORT" || !strings.Contains(line.str("err"), "drain timeout") {
		t.Errorf("relayd recorded the session's end as %s (%s), want CLOSE_REASON_HOST_ABORT naming the agent's drain timeout", line.str("reason"), line.str("err"))
	}
}

// TestCrashResetsConnections: a relayd or hostagent that dies mid-session
// (SIGKILL, the OOM killer) leaves the kernel to close its sockets, which
// would send FINs: a client, or a backend, would take a cut stream for a
// finished one. Sockets in a session have an abortive close (SO_LINGER 0)
// until the session ends cleanly, so the peers see a reset.
func TestCrashResetsConnections(t *testing.T) {
	t.Parallel()
	for _, crash := range []string{"relayd", "hostagent"} {
		t.Run(crash, func(t *testing.T) {
			t.Parallel()
			backendRead := make(chan error, 1)
			be := startBackend(t, func(c *net.TCPConn) {
				buf := make([]byte, 64)
				n, err := c.Read(buf)
				if err == nil {
					_, err = c.Write(buf[:n]) // one echo, then wait for the end
				}
				if err == nil {
					c.SetReadDeadline(time.Now().Add(ioTimeout))
					_, err = c.Read(buf)
				}
				backendRead <- err
			})
			r := startRelay(t)
			a := startAgent(t, r.grpcAddr, "forward", be.addr)
			c := dial(t, r.clientAddr)
			roundTrip(t, c, "before the crash\n")

			switch crash {
			case "relayd":
				r.kill(t)
				c.SetReadDeadline(time.Now().Add(ioTimeout))
				if _, err := c.Read(make([]byte, 64)); !isConnReset(err) {
					t.Errorf("the client's read after relayd died: %v, want a reset", err)
				}
			case "hostagent":
				a.kill(t)
				if err := <-backendRead; !isConnReset(err) {
					t.Errorf("the backend's read after hostagent died: %v, want a reset", err)
				}
			}
		})
	}
}

// TestCrashResetsWaitingClient: a client still waiting for a slot when
// relayd dies is reset too, not closed with a FIN: it was never served, as
// when the relay rejects it. (A client that sent bytes the relay had not
// read yet is reset by the kernel anyway: this one sent none.)
func TestCrashResetsWaitingClient(t *testing.T) {
	t.Parallel()
	r := startRelay(t)
	c := dial(t, r.clientAddr)
	st := statusClient(t, r)
	waitFor(t, ioTimeout, func() (bool, string) {
		s, err := getStatus(st)
		if err != nil {
			return false, err.Error()
		}
		return s.GetPendingClients() == 1, fmt.Sprintf("pending_clients = %d, want 1", s.GetPendingClients())
	})
	r.kill(t)
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	if _, err := c.Read(make([]byte, 64)); !isConnReset(err) {
		t.Errorf("the waiting client's read after relayd died: %v, want a reset", err)
	}
}

func isConnReset(err error) bool { return errors.Is(err, unix.ECONNRESET) }

// TestStalledBackendReleased: a backend that takes none of a client's
// upload (and sends nothing) leaves hostagent's session stuck writing to
// it, where no Close from the relay can reach it. With --stall-timeout the
// agent ends such a session itself: the client is reset, the backend
// reset, and the slot freed, as --max-sessions 1 shows with a second
// client served. Before, all three waited for the relay's --idle-timeout
// (an hour), and a few clients that reset such uploads locked the host
// out (QA).
func TestStalledBackendReleased(t *testing.T) {
	t.Parallel()
	r := startRelay(t)
	readNow := make(chan struct{})
	backendErr := make(chan error, 2)
	b := startBackend(t, func(c *net.TCPConn) {
		line, err := bufio.NewReader(io.LimitReader(c, 64)).ReadString('\n')
		if err == nil && line == "served\n" { // the second client
			c.Write([]byte(line))
			return
		}
		select { // the first: take nothing until told
		case <-readNow:
		case <-time.After(2 * ioTimeout):
		}
		c.SetReadDeadline(time.Now().Add(ioTimeout))
		_, err = io.Copy(io.Discard, c)
		backendErr <- err
	})
	startAgent(t, r.grpcAddr, "--max-sessions", "1", "--idle", "1", "--stall-timeout", "1s", "forward", b.addr)

	c := dial(t, r.clientAddr)
	writeErr := make(chan error, 1)
	go func() { // 64 MiB: more than every buffer on the way holds
		chunk := make([]byte, 1<<20)
		for range 64 {
			if _, err := c.Write(chunk); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	}()
	// The reset is the kernel's one error for the socket: the blocked
	// write may take it, and the read then sees the end as EOF.
	got, rerr := io.ReadAll(c)
	werr := <-writeErr
	if len(got) > 0 || !errors.Is(rerr, syscall.ECONNRESET) && !errors.Is(werr, syscall.ECONNRESET) {
		t.Fatalf("a client whose upload the backend never took: read %d bytes then %v, write %v; want a reset", len(got), rerr, werr)
	}
	close(readNow)
	if err := <-backendErr; !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the stalled backend's connection ended with %v, want a reset", err)
	}
	r.waitLog(t, ioTimeout, `the session's end with CLOSE_REASON_TIMEOUT`, func(l logLine) bool {
		return l.str("reason") == "CLOSE_REASON_TIMEOUT" && strings.Contains(l.str("err"), "--stall-timeout")
	})
	second := dial(t, r.clientAddr)
	roundTrip(t, second, "served\n")
}
