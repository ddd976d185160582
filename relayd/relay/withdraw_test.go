package relay_test

import (
	"sync"
	"testing"
	"time"

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
	t.Run("crosses_assignment", func(t *testing.T) {
		// The scheduler has given a client to the slot when the Withdraw
		// comes in, and the hooks play the worst order: the loop takes the
		// Withdraw, then the assignment asks the loop for the slot before
		// the loop has ended. The assignment must fail, the slot end with
		// OK and no Open, and the client reach the next slot untouched.
		t.Parallel()
		tr := newTestRelay(t, relay.Config{})
		assigned, withdrawn, asked := make(chan struct{}), make(chan struct{}), make(chan bool, 1)
		wait := func(ch <-chan struct{}, what string) {
			select {
			case <-ch:
			case <-time.After(hangGuard):
				t.Error(what)
			}
		}
		var first, firstAsk sync.Once
		relay.SetTestHooks(tr.r, relay.TestHooks{
			BeforeSetSession: func() {
				first.Do(func() {
					close(assigned)
					wait(withdrawn, "the loop did not take the Withdraw")
				})
			},
			AfterSetSession: func(ok bool) { firstAsk.Do(func() { asked <- ok }) },
			Withdrawn: func() {
				close(withdrawn)
				select {
				case ok := <-asked:
					asked <- ok
				case <-time.After(hangGuard):
					t.Error("the assignment did not ask the loop")
				}
			},
		})
		h := tr.attach(t)
		h.hello(&relayv1.Hello{HostId: "w"})
		c := dialClient(t, tr.clientAddr)
		if _, err := c.Write([]byte("sent while assigned")); err != nil {
			t.Fatalf("client write: %v", err)
		}
		wait(assigned, "the client was not assigned to the slot")
		h.send(withdrawFrame())
		h.expectEnd(codes.OK) // and no Open before it
		if ok := <-asked; ok {
			t.Fatal("a loop that took a Withdraw gave its slot to a session")
		}
		h2 := tr.attach(t)
		h2.hello(&relayv1.Hello{HostId: "w2"})
		s := &session{host: h2, client: c, open: h2.expectOpen()}
		if got := string(h2.recvData(len("sent while assigned"), 0)); got != "sent while assigned" {
			t.Fatalf("next slot got %q, want the client's bytes", got)
		}
		s.roundTrip(t, "then served")
		cleanEnd(t, s)
		h2.expectEnd(codes.OK)
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
