package agent

// Slot credits (Config.SlotCredits): per relay one credit stream that
// grants the relay Idle credits, idle slots that cost it no stream; each
// Offer on it is claimed by a new stream (runSlot with a claim id), and
// that stream, once its session ended, waits a moment as an idle stream
// (a warm one, see defaultWarmLinger).

import (
	"context"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/internal/shallow"
)

// granter sends a credit stream's Credit frames for the manager, which
// must not block on a stream.
type granter struct {
	pending atomic.Int64
	wake    chan struct{} // capacity 1
}

// add grants n more credits; it never blocks.
func (g *granter) add(n int) {
	g.pending.Add(int64(n))
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// run sends the credits granted until ctx ends or a Send fails.
func (g *granter) run(ctx context.Context, stream relayv1.HostService_AttachClient) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-g.wake:
		}
		if n := g.pending.Swap(0); n > 0 {
			err := stream.Send(&relayv1.AttachRequest{Frame: &relayv1.AttachRequest_Credit{Credit: &relayv1.Credit{Slots: uint32(n)}}})
			if err != nil {
				return err
			}
		}
	}
}

// errNoCredits is a relay that answered a credit stream as an idle slot.
var errNoCredits = status.Error(codes.FailedPrecondition, "relay does not know slot credits (Hello.slot_credits): upgrade it, or run the agent without --slot-credits")

// runCredits owns lk's credit stream: it asks for credits, reports each
// Offer to the manager, and sends the credits the manager grants. Closing
// the listener (or retiring lk) cancels the stream: the relay then hands
// every client it offered and nobody claimed to another host.
func (l *Listener) runCredits(lk *link, outage, credits int) {
	defer l.slots.Done()
	ctx, cancel := context.WithCancel(l.sessCtx)
	defer cancel()
	defer context.AfterFunc(lk.idleCtx, cancel)()
	emitEnd := func(err error) {
		switch {
		case lk.idleCtx.Err() != nil:
			err = nil // given up by the agent
		case err == io.EOF:
			err = status.Error(codes.Unavailable, "relay ended the credit stream without Drain")
		}
		l.events <- event{link: lk, kind: evCreditsEnded, err: err, outage: outage}
	}
	l.stats.streams.Add(1)
	var (
		welcome *relayv1.Welcome
		stream  relayv1.HostService_AttachClient
		err     error
	)
	shallow.Run(func() { welcome, stream, err = l.attach(ctx, lk, "", credits) })
	if err == nil && welcome.GetSlotCredits() == 0 {
		err = errNoCredits
	}
	if err != nil {
		emitEnd(err)
		return
	}
	g := &granter{wake: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if g.run(ctx, stream) != nil {
			cancel() // Recv below returns the stream's status
		}
	}()
	l.events <- event{link: lk, kind: evCreditsAttached, credits: int(welcome.GetSlotCredits()), granter: g}
	for {
		resp, err := stream.Recv()
		if err != nil {
			cancel()
			wg.Wait()
			if c := status.Code(err); c == codes.Unauthenticated || c == codes.PermissionDenied {
				// The relay checks the token again before each offer, and
				// the one this stream was opened with is no longer good
				// (rotated, or revoked): a new stream, at once, carries the
				// agent's token now. If that one is refused too, that is
				// the failure, with its backoff.
				l.log.Debug("relay refused the credit stream's token; opening a new one", "relay", lk.addr, "err", err)
				err = nil
			}
			emitEnd(err)
			return
		}
		if o := resp.GetOffer(); o != nil {
			l.events <- event{link: lk, kind: evOffer, claim: o.GetClaimId(), outage: outage}
			continue
		}
		if d := resp.GetDrain(); d != nil {
			l.drain(stream) // the relay ends the stream with OK
			cancel()
			wg.Wait()
			emitEnd(&drainError{drain: d})
			return
		}
		if resp.GetFrame() != nil {
			cancel()
			wg.Wait()
			emitEnd(status.Errorf(codes.Internal, "relay sent %T on a credit stream", resp.GetFrame()))
			return
		}
		// A frame from a newer relay: ignore it.
	}
}

// defaultWarmLinger is how long a warm stream (slot credits: a claimed stream
// offered again after its session) stays idle on the relay before it is
// withdrawn. While it is, the relay gives it clients before any credit,
// which saves the Offer and claim round trip for a steady stream of short
// sessions; but a client given to it is not held back from a stuck agent
// as an offer is, so not for long.
const defaultWarmLinger = 500 * time.Millisecond

// coolWarm withdraws the warm streams that have waited WarmLinger for a
// client, and brings *nextRetry forward to when the next one has. With
// slot credits, every idle stream is a warm one.
func (l *Listener) coolWarm(now time.Time, nextRetry *time.Time) {
	for _, lk := range l.links {
		for i := 0; i < len(lk.withdrawable); {
			w := lk.withdrawable[i]
			if at := w.since.Add(l.cfg.WarmLinger); now.Before(at) {
				if nextRetry.IsZero() || at.Before(*nextRetry) {
					*nextRetry = at
				}
				i++
				continue
			}
			lk.withdrawable = slices.Delete(lk.withdrawable, i, i+1)
			l.withdrawSlot(lk, w)
		}
	}
}
