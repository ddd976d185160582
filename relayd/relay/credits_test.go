package relay_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/relayd/relay"
)

// creditStream attaches a credit stream of n credits for hostID.
func creditStream(t *testing.T, tr *testRelay, hostID string, n uint32) *hostStream {
	t.Helper()
	h := tr.attach(t)
	w := h.hello(&relayv1.Hello{HostId: hostID, SlotCredits: n})
	if w.GetSlotCredits() != n {
		t.Fatalf("Welcome %v, want slot_credits %d", w, n)
	}
	return h
}

// expectOffer reads an Offer from a credit stream.
func (h *hostStream) expectOffer() *relayv1.Offer {
	h.tb.Helper()
	resp := h.recv()
	o := resp.GetOffer()
	if o == nil || o.GetClaimId() == "" {
		h.tb.Fatalf("frame = %v, want Offer", resp)
	}
	return o
}

func creditFrame(n uint32) *relayv1.AttachRequest {
	return &relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Credit{Credit: &relayv1.Credit{Slots: n}}}
}

// claimSession claims offer o for hostID with a new stream and returns the
// session it carries.
func (tr *testRelay) claimSession(t *testing.T, hostID string, o *relayv1.Offer, hello *relayv1.Hello) *session {
	t.Helper()
	c := tr.attach(t)
	if hello == nil {
		hello = &relayv1.Hello{}
	}
	hello.HostId, hello.ClaimId = hostID, o.GetClaimId()
	w := c.hello(hello)
	return &session{host: c, welcome: w, open: c.expectOpen()}
}

// Credits are idle slots without streams: status counts them, a client
// given to one is offered on the credit stream, and the stream that claims
// the offer carries the client's session, byte for byte. A Credit frame
// adds a slot.
func TestCreditsOfferAndClaim(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{ClaimTimeout: time.Minute})
	cs := creditStream(t, tr, "cred", 2)
	if st := tr.getStatus(t); st.GetIdleSlots() != 2 || st.GetHosts() != 1 {
		t.Fatalf("status with 2 credits: %v, want 2 idle slots, 1 host", st)
	}
	hosts, err := tr.status.ListHosts(context.Background(), &relayv1.ListHostsRequest{})
	if err != nil || len(hosts.GetHosts()) != 1 || hosts.GetHosts()[0].GetIdleCredits() != 2 || hosts.GetHosts()[0].GetIdleSlots() != 2 {
		t.Fatalf("ListHosts = %v, %v; want the host with 2 idle slots, both credits", hosts, err)
	}
	for i, msg := range []string{"first", "second", "third"} {
		client := dialClient(t, tr.clientAddr)
		s := tr.claimSession(t, "cred", cs.expectOffer(), nil)
		s.client = client
		if s.open.GetClientAddr() != client.LocalAddr().String() {
			t.Fatalf("Open for %s, want the client %s", s.open.GetClientAddr(), client.LocalAddr())
		}
		s.roundTrip(t, msg)
		cleanEnd(t, s)
		s.host.expectEnd(codes.OK)
		if i == 1 {
			if st := tr.getStatus(t); st.GetIdleSlots() != 0 || st.GetSessionsTotal() != 2 {
				t.Fatalf("status with both credits used: %v, want no idle slot, 2 sessions", st)
			}
			cs.send(creditFrame(1))
		}
	}
	if err := cs.stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	cs.expectEnd(codes.OK)
	if st := tr.getStatus(t); st.GetHosts() != 0 || st.GetIdleSlots() != 0 || st.GetSessionsTotal() != 3 {
		t.Errorf("status after the credit stream was given up: %v", st)
	}
}

// A client offered to a host that does not claim it in time goes back to
// the queue untouched: the next host's slot gets every byte it sent. The
// silent host's credit stream ends, its other credits withdrawn, and a
// late claim finds nothing.
func TestUnclaimedOfferRequeued(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{ClaimTimeout: 200 * time.Millisecond})
	cs := creditStream(t, tr, "silent", 3)
	client := dialClient(t, tr.clientAddr)
	if _, err := client.Write([]byte("sent before any claim")); err != nil {
		t.Fatal(err)
	}
	o := cs.expectOffer()
	h := tr.attach(t)
	w := h.hello(&relayv1.Hello{HostId: "other"})
	s := &session{host: h, client: client, welcome: w, open: h.expectOpen()}
	if got := string(h.recvData(len("sent before any claim"), 0)); got != "sent before any claim" {
		t.Fatalf("host got %q", got)
	}
	s.roundTrip(t, "after")
	if n := tr.r.LimitHits()[relay.LimitClaimTimeout]; n != 1 {
		t.Errorf("claim_timeout hits = %d, want 1", n)
	}
	cs.expectEnd(codes.DeadlineExceeded)
	if st := tr.getStatus(t); st.GetIdleSlots() != 0 {
		t.Errorf("idle slots after the silent host's credit stream ended: %d, want 0", st.GetIdleSlots())
	}
	late := tr.attach(t)
	late.send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: &relayv1.Hello{HostId: "silent", ClaimId: o.GetClaimId()}}})
	late.expectEnd(codes.NotFound)
	cleanEnd(t, s)
	h.expectEnd(codes.OK)
}

// When a credit stream ends, the clients offered on it and not claimed go
// back to the queue untouched, and its credits are gone: a host that has
// exited never gets a client.
func TestCreditStreamEndRequeuesOffers(t *testing.T) {
	t.Parallel()
	for _, end := range []string{"cancel", "half-close", "Close"} {
		t.Run(end, func(t *testing.T) {
			t.Parallel()
			tr := newTestRelay(t, relay.Config{})
			cs := creditStream(t, tr, "leaving", 3)
			client := dialClient(t, tr.clientAddr)
			if _, err := client.Write([]byte("bytes")); err != nil {
				t.Fatal(err)
			}
			cs.expectOffer()
			want := codes.OK
			switch end {
			case "cancel":
				cs.cancel()
				want = codes.Canceled
			case "half-close":
				cs.stream.CloseSend()
			case "Close":
				cs.send(closeFrame(relayv1.CloseReason_CLOSE_REASON_HOST_ABORT))
			}
			if got := codeOf(cs.serverEnd()); got != want {
				t.Fatalf("credit stream's handler returned %v, want %v", got, want)
			}
			if st := tr.getStatus(t); st.GetIdleSlots() != 0 || st.GetHosts() != 0 || st.GetPendingClients() != 1 {
				t.Fatalf("status after the credit stream ended: %v, want no idle slot, no host, the client pending", st)
			}
			h := tr.attach(t)
			w := h.hello(&relayv1.Hello{HostId: "next"})
			s := &session{host: h, client: client, welcome: w, open: h.expectOpen()}
			if got := string(h.recvData(5, 0)); got != "bytes" {
				t.Fatalf("host got %q", got)
			}
			cleanEnd(t, s)
			h.expectEnd(codes.OK)
		})
	}
}

// Bad claims and frames on credit streams end only that stream, each with
// its status.
func TestCreditProtocolErrors(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{MaxCredits: 5, ClaimTimeout: time.Minute})
	cs := creditStream(t, tr, "owner", 1)
	w := tr.watch(t, &relayv1.WatchEventsRequest{Kinds: []relayv1.EventKind{relayv1.EventKind_EVENT_KIND_HOST_ATTACHED}})
	client := dialClient(t, tr.clientAddr)
	o := cs.expectOffer()

	hello := func(h *relayv1.Hello) *hostStream {
		s := tr.attach(t)
		s.send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: h}})
		return s
	}
	hello(&relayv1.Hello{HostId: "owner", ClaimId: "o-unknown"}).expectEnd(codes.NotFound)
	hello(&relayv1.Hello{HostId: "thief", ClaimId: o.GetClaimId()}).expectEnd(codes.PermissionDenied)
	hello(&relayv1.Hello{HostId: "owner", ClaimId: o.GetClaimId(), SlotCredits: 1}).expectEnd(codes.InvalidArgument)

	// The offer survived the bad claims.
	s := tr.claimSession(t, "owner", o, nil)
	s.client = client
	s.roundTrip(t, "still here")

	plain := tr.attach(t)
	plain.hello(&relayv1.Hello{HostId: "plain"})
	// The refused claims attached no host, not even for a moment: the
	// first host the feed names is the next one that attached.
	if ev, err := w.Recv(); err != nil || describe(ev) != "host_attached plain" {
		t.Fatalf("first host event %q, %v; want host_attached plain", describe(ev), err)
	}
	plain.send(creditFrame(1))
	plain.expectEnd(codes.FailedPrecondition)

	data := creditStream(t, tr, "data", 1)
	data.send(dataFrame([]byte("x")))
	data.expectEnd(codes.FailedPrecondition)

	// A Hello may ask for more than the relay gives; a Credit may not.
	big := tr.attach(t)
	if w := big.hello(&relayv1.Hello{HostId: "big", SlotCredits: 100}); w.GetSlotCredits() != 5 {
		t.Fatalf("Welcome %v, want slot_credits 5 (MaxCredits)", w)
	}
	big.send(creditFrame(1))
	big.expectEnd(codes.ResourceExhausted)

	cleanEnd(t, s)
	s.host.expectEnd(codes.OK)
	cs.cancel()
}

// MaxCredits bounds a host's credits over all its credit streams.
func TestMaxCreditsPerHost(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{MaxCredits: 3})
	a := creditStream(t, tr, "h", 2)
	b := tr.attach(t)
	if w := b.hello(&relayv1.Hello{HostId: "h", SlotCredits: 5}); w.GetSlotCredits() != 1 {
		t.Fatalf("second stream's Welcome %v, want the 1 credit left", w)
	}
	c := tr.attach(t)
	c.send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: &relayv1.Hello{HostId: "h", SlotCredits: 1}}})
	c.expectEnd(codes.ResourceExhausted)
	creditStream(t, tr, "other-host", 3).cancel()
	if n := tr.r.LimitHits()[relay.LimitCredits]; n != 1 {
		t.Errorf("max_credits hits = %d, want 1", n)
	}
	a.cancel()
	a.serverEnd()
	b.send(creditFrame(2)) // the credits a gave up are free again
	b.send(creditFrame(1))
	b.expectEnd(codes.ResourceExhausted)
}

// A relay that drains ends credit streams with Drain, as idle slots.
func TestCreditStreamDrained(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{})
	cs := creditStream(t, tr, "drained", 4)
	if !tr.r.Drain(context.Background()) {
		t.Fatal("Drain reported sessions left")
	}
	if d := cs.recv().GetDrain(); d == nil || d.GetReason() != relayv1.DrainReason_DRAIN_REASON_SHUTDOWN {
		t.Fatalf("credit stream got %v, want Drain", d)
	}
	cs.expectEnd(codes.OK)
	if st := tr.getStatus(t); st.GetIdleSlots() != 0 {
		t.Errorf("idle slots after the drain: %d", st.GetIdleSlots())
	}
}

// With sequential sessions, a claiming stream may answer SessionEnd with a
// Hello that claims the next offer.
func TestSequentialClaims(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{ClaimTimeout: time.Minute})
	cs := creditStream(t, tr, "seq", 2)
	client := dialClient(t, tr.clientAddr)
	s := tr.claimSession(t, "seq", cs.expectOffer(), &relayv1.Hello{SequentialSessions: true})
	if !s.welcome.GetSequentialSessions() {
		t.Fatalf("claim's Welcome %v does not agree to sequential sessions", s.welcome)
	}
	s.client = client
	s.roundTrip(t, "one")
	cleanEnd(t, s)
	s.host.expectSessionEnd(s.open)

	next := dialClient(t, tr.clientAddr)
	o := cs.expectOffer()
	s.host.send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: &relayv1.Hello{ClaimId: o.GetClaimId()}}})
	if w := s.host.recv().GetWelcome(); w == nil || w.GetSlotId() != s.welcome.GetSlotId() {
		t.Fatalf("answer to the claiming Hello: %v, want Welcome of slot %s", w, s.welcome.GetSlotId())
	}
	s2 := &session{host: s.host, client: next, welcome: s.welcome, open: s.host.expectOpen()}
	s2.roundTrip(t, "two")
	cleanEnd(t, s2)
	s.host.expectSessionEnd(s2.open)
	if err := s.host.stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	s.host.expectEnd(codes.OK)
	if st := tr.getStatus(t); st.GetSessionsTotal() != 2 || st.GetIdleSlots() != 0 {
		t.Errorf("status: %v, want 2 sessions and both credits used", st)
	}
	cs.cancel()
}

// A claim refused by a limit hands its client back at once: it is offered
// again, and the credit stream lives on.
func TestRefusedClaimReleasesOffer(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{MaxSlotsPerHost: 1, ClaimTimeout: time.Minute})
	cs := creditStream(t, tr, "full", 3)
	dialClient(t, tr.clientAddr)
	tr.claimSession(t, "full", cs.expectOffer(), nil) // the session that fills the cap (the credit stream is not counted)
	dialClient(t, tr.clientAddr)
	first := cs.expectOffer()
	refused := tr.attach(t)
	refused.send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: &relayv1.Hello{HostId: "full", ClaimId: first.GetClaimId()}}})
	refused.expectEnd(codes.ResourceExhausted)
	if again := cs.expectOffer(); again.GetClaimId() == first.GetClaimId() {
		t.Fatalf("offered again as %s, want a new offer", again.GetClaimId())
	}
	cs.cancel()
}

// TestCreditStreamsApartFromCap: --max-slots-per-host counts a host's
// credit streams apart from its slots and sessions. Counted with them, the
// credit streams of as many agents as the cap filled it, every claim was
// refused, and the host served no client while its credits were offered
// (QA). Credit streams are capped at the same number on their own.
func TestCreditStreamsApartFromCap(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{MaxSlotsPerHost: 2, ClaimTimeout: time.Minute})
	cs1 := creditStream(t, tr, "capped", 1)
	cs2 := creditStream(t, tr, "capped", 1)
	third := tr.attach(t)
	third.send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: &relayv1.Hello{HostId: "capped", SlotCredits: 1}}})
	third.expectEnd(codes.ResourceExhausted) // a third credit stream
	var sessions []*session
	for i, cs := range []*hostStream{cs1, cs2} { // the cap's two sessions, one claimed on each stream
		c := dialClient(t, tr.clientAddr)
		s := tr.claimSession(t, "capped", cs.expectOffer(), nil)
		s.client = c
		s.roundTrip(t, fmt.Sprintf("session %d", i))
		sessions = append(sessions, s)
	}
	cs1.send(creditFrame(1))
	dialClient(t, tr.clientAddr)
	o := cs1.expectOffer()
	refused := tr.attach(t)
	refused.send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: &relayv1.Hello{HostId: "capped", ClaimId: o.GetClaimId()}}})
	refused.expectEnd(codes.ResourceExhausted) // a third session
	for _, s := range sessions {
		s.host.cancel()
	}
	cs1.cancel()
	cs2.cancel()
}

// TestCreditStreamAtOneStreamPerConn: with MaxSlotsPerConn 1 a connection
// has room for a credit stream and no claim beside it (the limit is also
// its HTTP/2 stream limit): a credit stream is refused with
// FailedPrecondition saying what to change, and counted as that limit's
// hit; a slot is still taken.
func TestCreditStreamAtOneStreamPerConn(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{MaxSlotsPerConn: 1})
	cs := tr.attach(t)
	cs.send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Hello{Hello: &relayv1.Hello{HostId: "h", SlotCredits: 4}}})
	err := cs.expectEnd(codes.FailedPrecondition)
	if !strings.Contains(err.Error(), "--slot-credits") || !strings.Contains(err.Error(), "--max-slots-per-conn") {
		t.Errorf("refusal %v: want it to name --slot-credits and --max-slots-per-conn", err)
	}
	if got := tr.r.LimitHits()[relay.LimitSlotsPerConn]; got != 1 {
		t.Errorf("LimitHits()[%s] = %d, want 1", relay.LimitSlotsPerConn, got)
	}
	slot := tr.attach(t)
	slot.hello(&relayv1.Hello{HostId: "h"})
	slot.cancel()
}
