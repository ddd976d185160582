package relay_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/relayd/relay"
)

// A host that half-closes the RPC during a session without a CloseWrite
// frame gives no FIN: the client must see an abnormal end, not a clean EOF
// (the host may never have seen Open, so the client's request is unserved).
func TestHalfCloseWithoutCloseWriteAbortsSession(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{})
	s := tr.newSession(t, "h")
	if _, err := s.client.Write([]byte("important request")); err != nil {
		t.Fatal(err)
	}
	s.client.CloseWrite()
	if err := s.host.stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	expectReset(t, s.client)
	if err := s.host.serverEnd(); err != nil {
		t.Logf("handler returned %v", err)
	}
}

// The host stops reading while the client floods it, so the relay's Send
// blocks on flow control; then the client resets. The relay cannot send a
// Close frame past the blocked Send, so it must end the RPC (ABORTED) to
// release it, instead of keeping the session forever.
func TestClientResetWhileHostNotReading(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{})
	s := tr.newSession(t, "h")

	// Write until the path backs up: the relay stops reading the client once
	// its Send is blocked. The bound only guards against a relay that never
	// pushes back (which would fail the test, not hang it).
	chunk := make([]byte, 64<<10)
	blocked := false
	for written := 0; written < 256<<20; written += len(chunk) {
		s.client.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := s.client.Write(chunk); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("client write: %v", err)
			}
			blocked = true
			break
		}
	}
	if !blocked {
		t.Fatal("256 MiB written without backpressure from the relay")
	}
	s.client.SetLinger(0)
	s.client.Close() // reset
	// The host writes: the relay's write to the gone client fails.
	s.host.send(dataFrame([]byte("are you there?")))
	if got := codeOf(s.host.serverEnd()); got != codes.Aborted {
		t.Fatalf("handler returned %v, want Aborted", got)
	}
	// Drain what the host never read, up to the status.
	for {
		if _, err := s.host.stream.Recv(); err != nil {
			if err == io.EOF || codeOf(err) != codes.Aborted {
				t.Fatalf("stream ended with %v, want Aborted", err)
			}
			break
		}
	}
}

// panicOnMessage is a log handler that panics on one message, standing for
// a bug in what a handler does while setting something up.
type panicOnMessage struct{ msg string }

func (h panicOnMessage) Enabled(context.Context, slog.Level) bool { return true }
func (h panicOnMessage) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		panic("bug while logging " + h.msg)
	}
	return nil
}
func (h panicOnMessage) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h panicOnMessage) WithGroup(string) slog.Handler      { return h }

// A panic while a session is set up (here, its "session opened" line, run
// on a short-lived goroutine) reaches the recovery interceptor as Internal,
// and undoes the setup as the handler's defers once did: the session is
// not left listed (Drain would wait for it forever) and the client, which
// nothing served, is reset.
func TestPanicInSessionSetup(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{Logger: slog.New(panicOnMessage{msg: "session opened"})})
	h := tr.attach(t)
	h.hello(&relayv1.Hello{HostId: "h"})
	// The relay may accept, assign and reset the client before the dialing
	// goroutine has seen its connection complete: then Dial itself reports
	// the reset.
	c, dialErr := net.Dial("tcp", tr.clientAddr)
	h.expectOpen()
	h.expectEnd(codes.Internal)
	switch {
	case dialErr == nil:
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(hangGuard))
		expectReset(t, c)
	case !errors.Is(dialErr, syscall.ECONNRESET):
		t.Fatalf("dial: %v, want a connection or a reset", dialErr)
	}
	if n := tr.getStatus(t).GetActiveSessions(); n != 0 {
		t.Errorf("%d sessions listed after the panic, want 0", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	tr.r.Shutdown()
	if !tr.r.Drain(ctx) {
		t.Error("Drain did not return: a session of the panicked handler is still counted")
	}
}
