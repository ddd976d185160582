package relay_test

import (
	"context"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/relayd/relay"
)

// sequentialSlot attaches a slot that asks for sequential sessions.
func sequentialSlot(t *testing.T, tr *testRelay) (*hostStream, *relayv1.Welcome) {
	t.Helper()
	h := tr.attach(t)
	w := h.hello(&relayv1.Hello{HostId: "seq-host", SequentialSessions: true})
	if !w.GetSequentialSessions() {
		t.Fatalf("Welcome %v does not agree to sequential sessions", w)
	}
	return h, w
}

// cleanEnd closes both directions of s, the client first, and checks that
// the client reads every byte and then EOF.
func cleanEnd(t *testing.T, s *session) {
	t.Helper()
	s.client.CloseWrite()
	s.host.expectCloseWrite()
	s.host.send(closeWriteFrame())
	if b, err := io.ReadAll(s.client); err != nil || len(b) != 0 {
		t.Fatalf("client after the host's CloseWrite: %q, %v; want EOF", b, err)
	}
}

// expectSessionEnd reads the SessionEnd of the session open.
func (h *hostStream) expectSessionEnd(open *relayv1.Open) {
	h.tb.Helper()
	resp := h.recv()
	if resp.GetSessionEnd() == nil || resp.GetSessionEnd().GetSessionId() != open.GetSessionId() {
		h.tb.Fatalf("frame = %v, want SessionEnd of %s", resp, open.GetSessionId())
	}
}

// A stream of sequential sessions carries sessions one after another:
// SessionEnd after each clean end, Hello offers the slot again (same
// slot_id), and a half-close after SessionEnd gives it up with OK.
func TestSequentialSessionsOnOneStream(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{})
	h, w := sequentialSlot(t, tr)
	for i, msg := range []string{"first", "second", "third"} {
		s := &session{host: h, client: dialClient(t, tr.clientAddr), welcome: w}
		s.open = h.expectOpen()
		s.roundTrip(t, msg)
		cleanEnd(t, s)
		h.expectSessionEnd(s.open)
		if st := tr.getStatus(t); st.GetActiveSessions() != 0 || st.GetIdleSlots() != 0 || st.GetSessionsTotal() != uint64(i+1) || st.GetHosts() != 1 {
			t.Fatalf("status between sessions: %v, want no session, no idle slot, %d sessions in all, the host attached", st, i+1)
		}
		if i == 2 {
			break
		}
		h.send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: &relayv1.Hello{}}})
		again := h.recv().GetWelcome()
		if again == nil || again.GetSlotId() != w.GetSlotId() || !again.GetSequentialSessions() {
			t.Fatalf("answer to the second Hello = %v, want Welcome of slot %s", again, w.GetSlotId())
		}
	}
	if err := h.stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	h.expectEnd(codes.OK)
	if st := tr.getStatus(t); st.GetHosts() != 0 || st.GetSessionsTotal() != 3 {
		t.Errorf("status after the stream was given up: %v", st)
	}
}

// A host that does not ask keeps one session per stream: the stream ends
// with OK after a clean session, with no SessionEnd.
func TestSequentialSessionsOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{})
	s := tr.newSession(t, "one-shot")
	if s.welcome.GetSequentialSessions() {
		t.Fatalf("Welcome %v agrees to sequential sessions nobody asked for", s.welcome)
	}
	s.roundTrip(t, "x")
	cleanEnd(t, s)
	s.host.expectEnd(codes.OK)
}

// Between a session's end and the next Hello the host sends nothing: a
// frame sent there is a protocol error, and the next Hello is legal only
// after SessionEnd.
func TestSequentialSessionsProtocol(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// after runs once the first session's SessionEnd has arrived, or
		// (early) right after the host's CloseWrite.
		early bool
		after func(h *hostStream)
		want  codes.Code
	}{
		{name: "hello_before_session_end", early: true, after: func(h *hostStream) {
			h.send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: &relayv1.Hello{}}})
		}, want: codes.FailedPrecondition},
		{name: "data_before_hello", after: func(h *hostStream) { h.send(dataFrame([]byte("late"))) }, want: codes.FailedPrecondition},
		{name: "close_write_before_hello", after: func(h *hostStream) { h.send(closeWriteFrame()) }, want: codes.FailedPrecondition},
		{name: "close_gives_up", after: func(h *hostStream) { h.send(closeFrame(relayv1.CloseReason_CLOSE_REASON_HOST_ABORT)) }, want: codes.OK},
		{name: "hello_twice", after: func(h *hostStream) {
			h.send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: &relayv1.Hello{}}})
			if h.recv().GetWelcome() == nil {
				h.tb.Fatal("no Welcome for the first Hello after SessionEnd")
			}
			h.send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: &relayv1.Hello{}}})
		}, want: codes.FailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr := newTestRelay(t, relay.Config{})
			h, w := sequentialSlot(t, tr)
			s := &session{host: h, client: dialClient(t, tr.clientAddr), welcome: w}
			s.open = h.expectOpen()
			s.roundTrip(t, "x")
			if tt.early {
				h.send(closeWriteFrame())
				tt.after(h)
				h.expectEnd(tt.want)
				return
			}
			cleanEnd(t, s)
			h.expectSessionEnd(s.open)
			tt.after(h)
			h.expectEnd(tt.want)
			if st := tr.getStatus(t); st.GetHosts() != 0 || st.GetIdleSlots() != 0 {
				t.Errorf("status after the stream ended: %v", st)
			}
		})
	}
}

// After SessionEnd the relay waits for Hello no longer than its hello
// timeout, and a relay that drains meanwhile answers with Drain.
func TestSequentialSessionsWaitForHello(t *testing.T) {
	t.Parallel()
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		// 1 s, not less: the host's first Hello must not run into it on a
		// loaded machine (at 50 ms it did, and the test failed at random).
		tr := newTestRelay(t, relay.Config{HelloTimeout: time.Second})
		h, w := sequentialSlot(t, tr)
		s := &session{host: h, client: dialClient(t, tr.clientAddr), welcome: w}
		s.open = h.expectOpen()
		cleanEnd(t, s)
		h.expectSessionEnd(s.open) // and never says Hello again
		h.expectEnd(codes.DeadlineExceeded)
		if n := tr.r.LimitHits()[relay.LimitHelloTimeout]; n != 1 {
			t.Errorf("hello timeouts counted: %d, want 1", n)
		}
	})
	t.Run("host_drained_during_the_session", func(t *testing.T) {
		t.Parallel()
		tr := newTestRelay(t, relay.Config{})
		h, w := sequentialSlot(t, tr)
		s := &session{host: h, client: dialClient(t, tr.clientAddr), welcome: w}
		s.open = h.expectOpen()
		resp, err := tr.admin.DrainHost(context.Background(), &relayv1.DrainHostRequest{HostId: "seq-host"})
		if err != nil || resp.GetActiveSessions() != 1 {
			t.Fatalf("DrainHost = %v, %v; want 1 active session", resp, err)
		}
		s.roundTrip(t, "the session goes on")
		cleanEnd(t, s)
		h.expectSessionEnd(s.open)
		// Not offered again: Drain, before or after the host's Hello.
		h.send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: &relayv1.Hello{}}})
		if d := h.recv().GetDrain(); d == nil || d.GetReason() != relayv1.DrainReason_DRAIN_REASON_ADMIN {
			t.Fatalf("after SessionEnd on a drained host: %v, want Drain (admin)", d)
		}
		h.expectEnd(codes.OK)
		if st := tr.getStatus(t); st.GetIdleSlots() != 0 || st.GetHosts() != 0 {
			t.Errorf("status: %v, want the drained host's slot gone", st)
		}
	})
	t.Run("relay_drains", func(t *testing.T) {
		t.Parallel()
		tr := newTestRelay(t, relay.Config{})
		h, w := sequentialSlot(t, tr)
		s := &session{host: h, client: dialClient(t, tr.clientAddr), welcome: w}
		s.open = h.expectOpen()
		cleanEnd(t, s)
		h.expectSessionEnd(s.open)
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		if !tr.r.Drain(ctx) {
			t.Fatal("Drain did not finish")
		}
		resp := h.recv()
		if d := resp.GetDrain(); d == nil || d.GetReason() != relayv1.DrainReason_DRAIN_REASON_SHUTDOWN {
			t.Fatalf("frame = %v, want Drain (shutdown)", resp)
		}
		h.expectEnd(codes.OK)
	})
}
