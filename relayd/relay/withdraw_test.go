package relay_test

import (
	"testing"

	"google.golang.org/grpc/codes"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/relayd/relay"
)

func withdrawFrame() *relayv1.AttachRequest {
	return &relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Withdraw{Withdraw: &relayv1.Withdraw{}}}
}

// Withdraw gives an idle slot up (OK, no slot left for clients); one that
// arrives once the relay has sent Open is void: the session runs and ends
// cleanly, where a half-close or Close there would abort it (the reset
// client that a host giving up slots with those could cause).
func TestWithdraw(t *testing.T) {
	t.Parallel()
	t.Run("idle", func(t *testing.T) {
		t.Parallel()
		tr := newTestRelay(t, relay.Config{})
		h := tr.attach(t)
		if w := h.hello(&relayv1.Hello{HostId: "w"}); !w.GetWithdraw() {
			t.Fatalf("Welcome %v, want withdraw", w)
		}
		h.send(withdrawFrame())
		h.expectEnd(codes.OK)
		if st := tr.getStatus(t); st.GetIdleSlots() != 0 || st.GetHosts() != 0 {
			t.Fatalf("after Withdraw: %d idle slots, %d hosts; want none", st.GetIdleSlots(), st.GetHosts())
		}
		// The next client goes to a slot still offered.
		s := tr.newSession(t, "w2")
		s.roundTrip(t, "to the other slot")
	})
	t.Run("after_open", func(t *testing.T) {
		t.Parallel()
		tr := newTestRelay(t, relay.Config{})
		s := tr.newSession(t, "w")
		s.host.send(withdrawFrame()) // as if sent before the host read Open
		s.roundTrip(t, "served all the same")
		cleanEnd(t, s)
		s.host.expectEnd(codes.OK)
	})
	t.Run("between_sessions", func(t *testing.T) {
		t.Parallel()
		tr := newTestRelay(t, relay.Config{})
		h, w := sequentialSlot(t, tr)
		if !w.GetWithdraw() {
			t.Fatalf("Welcome %v, want withdraw", w)
		}
		s := &session{host: h, client: dialClient(t, tr.clientAddr), welcome: w}
		s.open = h.expectOpen()
		s.roundTrip(t, "first")
		cleanEnd(t, s)
		h.expectSessionEnd(s.open)
		if w := h.hello(&relayv1.Hello{}); !w.GetWithdraw() {
			t.Fatalf("Welcome %v after the offer again, want withdraw", w)
		}
		h.send(withdrawFrame())
		h.expectEnd(codes.OK)
		if st := tr.getStatus(t); st.GetIdleSlots() != 0 {
			t.Fatalf("after Withdraw: %d idle slots, want 0", st.GetIdleSlots())
		}
	})
	t.Run("credit_stream", func(t *testing.T) {
		t.Parallel()
		tr := newTestRelay(t, relay.Config{})
		h := creditStream(t, tr, "c", 2)
		h.send(withdrawFrame())
		h.expectEnd(codes.FailedPrecondition)
	})
}
