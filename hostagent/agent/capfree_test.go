package agent

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
)

// capErr is a claim or slot refused at relayd's --max-slots-per-host.
var capErr = status.Error(codes.ResourceExhausted, `host "h" already holds 1 slots for service "default" (relayd --max-slots-per-host)`)

// cappedListener is a manager with one link the relay's cap holds: a claim
// was refused there while the link held its credit stream and a session.
func cappedListener(t *testing.T, slotCredits bool) (*Listener, *link) {
	t.Helper()
	cfg := Config{Relays: []string{"127.0.0.1:1"}, HostID: "h", Idle: 4, SlotCredits: slotCredits,
		BackoffBase: time.Minute, BackoffMax: time.Minute, Logger: slog.New(slog.DiscardHandler)}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	l := &Listener{cfg: cfg, log: cfg.Logger, events: make(chan event, 64)}
	l.sessCtx, l.stopSess = context.WithCancel(context.Background())
	l.idleCtx, l.stopIdle = context.WithCancel(l.sessCtx)
	t.Cleanup(l.stopSess)
	lk := &link{addr: "127.0.0.1:1"}
	lk.idleCtx, lk.stopIdle = context.WithCancel(l.idleCtx)
	lk.creditRunning = slotCredits
	lk.active, lk.returning = 1, 1
	l.stats.active.Store(1)
	l.backoff(lk, capErr)
	if !lk.capped || lk.capFreed != 0 {
		t.Fatalf("after a refusal at the cap: capped %v, capFreed %d; want true, 0", lk.capped, lk.capFreed)
	}
	return l, lk
}

// TestFailedReofferFreesCapRoom: a stream of sequential sessions whose
// re-offer fails (the relay ended it: EOF, or a token no longer good) has
// left the relay's cap: its room is free for the next slot or credit at
// once (capFreed), the stream counted nowhere any more; a failure the
// relay reports (Unavailable) is an outage instead, and ends the capped
// state and its room.
func TestFailedReofferFreesCapRoom(t *testing.T) {
	t.Parallel()
	for _, credits := range []bool{false, true} {
		l, lk := cappedListener(t, credits)
		reply := make(chan bool, 1)
		l.handle(event{link: lk, kind: evSessionEnd, reply: reply})
		if !<-reply {
			t.Fatalf("credits=%v: the stream was not offered again", credits)
		}
		if lk.connecting != 1 || lk.active != 0 || lk.capFreed != 0 {
			t.Fatalf("credits=%v: offered again: connecting %d, active %d, capFreed %d; want 1, 0, 0", credits, lk.connecting, lk.active, lk.capFreed)
		}
		// offerAgain: the relay ended the stream (err nil), outage of now.
		l.handle(event{link: lk, kind: evFailed, outage: lk.outage, again: true})
		if lk.connecting != 0 || lk.capFreed != 1 || !lk.capped {
			t.Errorf("credits=%v: re-offer ended: connecting %d, capFreed %d, capped %v; want 0, 1, true", credits, lk.connecting, lk.capFreed, lk.capped)
		}
		if credits {
			// The room goes to a credit at once (no backoff wait).
			if got := l.creditTarget(lk, 1, time.Now()); got != 1 {
				t.Errorf("creditTarget after the re-offer ended = %d, want 1 (the room it freed)", got)
			}
		}

		// The same with an error of the current outage: an outage, not the cap.
		reply = make(chan bool, 1)
		lk.active, lk.returning = 1, 1
		l.handle(event{link: lk, kind: evSessionEnd, reply: reply})
		if !<-reply {
			t.Fatalf("credits=%v: the stream was not offered again (2)", credits)
		}
		l.handle(event{link: lk, kind: evFailed, err: status.Error(codes.Unavailable, "gone"), outage: lk.outage, again: true})
		if lk.connecting != 0 || lk.capFreed != 0 || lk.capped {
			t.Errorf("credits=%v: re-offer failed Unavailable: connecting %d, capFreed %d, capped %v; want 0, 0, false", credits, lk.connecting, lk.capFreed, lk.capped)
		}
		if n := l.stats.capped.Load(); n != 0 {
			t.Errorf("credits=%v: Stats().CappedRelays = %d, want 0", credits, n)
		}
	}
}

// fakeCreditRelay is a HostServiceClient whose Attach streams welcome a
// credit stream with the credits its Hello asks for, then stay quiet until
// canceled.
type fakeCreditRelay struct{ hellos chan *relayv1.Hello }

func (f *fakeCreditRelay) Attach(ctx context.Context, _ ...grpc.CallOption) (relayv1.HostService_AttachClient, error) {
	return &fakeCreditStream{ctx: ctx, f: f, welcome: make(chan *relayv1.Welcome, 1)}, nil
}

type fakeCreditStream struct {
	relayv1.HostService_AttachClient // only Send, Recv and CloseSend are called
	ctx                              context.Context
	f                                *fakeCreditRelay
	welcome                          chan *relayv1.Welcome
}

func (s *fakeCreditStream) Send(req *relayv1.AttachRequest) error {
	if h := req.GetHello(); h != nil {
		if h.GetClaimId() != "" {
			s.welcome <- nil // the offer went elsewhere: NotFound
			return nil
		}
		s.f.hellos <- h
		s.welcome <- &relayv1.Welcome{SlotId: "s1", SlotCredits: h.GetSlotCredits(), MaxDataBytes: 1024}
	}
	return nil
}

func (s *fakeCreditStream) Recv() (*relayv1.AttachResponse, error) {
	select {
	case w := <-s.welcome:
		if w == nil {
			return nil, status.Error(codes.NotFound, "offer is not pending")
		}
		return &relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Welcome{Welcome: w}}, nil
	case <-s.ctx.Done():
		return nil, status.FromContextError(s.ctx.Err()).Err()
	}
}

func (s *fakeCreditStream) CloseSend() error { return nil }

// TestCreditsEndedRoomNotCountedTwice: a capped link's credit stream ends
// (here: its token refused, which opens a new one at once, err nil) with
// credits unoffered. Their room (capFreed) is asked for again by the next
// credit stream; once that stream is welcomed with them, the room is its
// credits, not its credits and capFreed too: the agent would grant as many
// again on the running stream, past the cap, each a claim refused there.
func TestCreditsEndedRoomNotCountedTwice(t *testing.T) {
	t.Parallel()
	l, lk := cappedListener(t, true)
	fake := &fakeCreditRelay{hellos: make(chan *relayv1.Hello, 1)}
	lk.clients = []relayv1.HostServiceClient{fake}
	// The credit stream held 2 unoffered credits, the room the cap showed.
	lk.credits, lk.granter = 2, &granter{wake: make(chan struct{}, 1)}
	l.stats.idle.Store(2)
	l.handle(event{link: lk, kind: evCreditsEnded, outage: lk.outage}) // err nil: new stream at once
	if lk.capFreed != 2 || lk.credits != 0 || !lk.capped {
		t.Fatalf("credit stream ended: capFreed %d, credits %d, capped %v; want 2, 0, true", lk.capFreed, lk.credits, lk.capped)
	}
	// manage: the room goes to a new credit stream (no probe past it: the
	// backoff of the refusal runs).
	l.serving = []*link{lk}
	var next time.Time
	open := lk.active
	l.shareCredits(time.Now(), &next, &open, 1)
	hello := <-fake.hellos
	if got := hello.GetSlotCredits(); got != 2 {
		t.Fatalf("the new credit stream asked for %d credits, want 2", got)
	}
	ev := <-l.events
	if ev.kind != evCreditsAttached {
		t.Fatalf("event %v, want evCreditsAttached", ev.kind)
	}
	l.handle(ev)
	if lk.credits != 2 {
		t.Fatalf("welcomed: credits %d, want 2", lk.credits)
	}
	// The room the cap showed is the 2 credits now held: nothing more to
	// grant until a stream ends or the backoff passes.
	if got := l.creditTarget(lk, 1, time.Now()); got != 2 {
		t.Errorf("creditTarget after the new stream's welcome = %d, want 2 (capFreed %d counted again)", got, lk.capFreed)
	}
	before := lk.credits
	l.shareCredits(time.Now(), &next, &open, 1)
	if lk.credits != before {
		t.Errorf("shareCredits granted %d credits past the room the cap showed", lk.credits-before)
	}
	lk.stopIdle() // the credit stream's goroutine ends
	for ev := range l.events {
		if ev.kind == evCreditsEnded {
			break
		}
	}
	l.slots.Wait()
}

// TestClaimNotFoundKeepsCapRoom: a capped link's claim that finds its offer
// gone (NotFound: it timed out, or its credit stream ended) took no room at
// the relay's cap, so the room its credit stood for is still there. It was
// lost: creditTarget shrank by one per such claim, until a probe past the
// room (one per backoff) found it again.
func TestClaimNotFoundKeepsCapRoom(t *testing.T) {
	t.Parallel()
	l, lk := cappedListener(t, true)
	lk.clients = []relayv1.HostServiceClient{&fakeCreditRelay{hellos: make(chan *relayv1.Hello, 1)}}
	lk.credits, lk.granter = 2, &granter{wake: make(chan struct{}, 1)}
	l.stats.idle.Store(2)
	l.handle(event{link: lk, kind: evOffer, claim: "o1"})
	ev := <-l.events
	if ev.kind != evFailed || ev.err != nil {
		t.Fatalf("event %v (%v), want evFailed with no error", ev.kind, ev.err)
	}
	l.handle(ev)
	l.slots.Wait()
	if got := l.creditTarget(lk, 1, time.Now()); got != 2 {
		t.Errorf("creditTarget after a claim found no offer = %d, want 2 (1 credit, and the room of the one offered: capFreed %d)", got, lk.capFreed)
	}
}

// TestMaxCreditsIsNotTheCap: a relay's --max-credits refusal (a Credit
// beyond it) while the link has idle slots is not its slot cap: the link is
// not capped, and no "relay caps" line or CappedRelays gauge says so.
func TestMaxCreditsIsNotTheCap(t *testing.T) {
	t.Parallel()
	cfg := Config{Relays: []string{"127.0.0.1:1"}, HostID: "h", Idle: 4, SlotCredits: true,
		BackoffBase: time.Minute, BackoffMax: time.Minute, Logger: slog.New(slog.DiscardHandler)}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	l := &Listener{cfg: cfg, log: cfg.Logger, events: make(chan event, 64)}
	l.sessCtx, l.stopSess = context.WithCancel(context.Background())
	l.idleCtx, l.stopIdle = context.WithCancel(l.sessCtx)
	t.Cleanup(l.stopSess)
	lk := &link{addr: "127.0.0.1:1", idle: 2}
	lk.idleCtx, lk.stopIdle = context.WithCancel(l.idleCtx)
	l.backoff(lk, status.Error(codes.ResourceExhausted, `Credit of 1 would give host "h" more than 10 credits (relayd --max-credits)`))
	if lk.capped || l.stats.capped.Load() != 0 {
		t.Errorf("a --max-credits refusal: capped %v, CappedRelays %d; want false, 0", lk.capped, l.stats.capped.Load())
	}
	l.backoff(lk, capErr)
	if !lk.capped {
		t.Error("the slot cap's refusal: not capped")
	}
}

// TestCappedCreditLinkWakesForItsProbe: a capped credit link whose new
// credit stream was welcomed (which ends its failures) still has manage
// wake when the wait for its next credit past the room is over.
func TestCappedCreditLinkWakesForItsProbe(t *testing.T) {
	t.Parallel()
	l, lk := cappedListener(t, true)
	now := time.Now()
	lk.failures, lk.retryAt = 0, now.Add(time.Minute)
	lk.credits, lk.granter = 1, &granter{wake: make(chan struct{}, 1)}
	l.serving = []*link{lk}
	var next time.Time
	open := lk.active + lk.credits
	l.shareCredits(now, &next, &open, 1)
	if !next.Equal(lk.retryAt) {
		t.Errorf("manage wakes at %v, want %v (the next credit past the room)", next, lk.retryAt)
	}
}
