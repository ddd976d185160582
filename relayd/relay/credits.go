package relay

// Slot credits (Hello.slot_credits): an idle slot that is a counter on a
// credit stream rather than a stream of its own. Each credit is one entry
// of the credit stream in the bridge's idle set; when the scheduler picks
// one, the client waits, untouched, as an offer until a stream of the same
// host claims it (Hello.claim_id), and goes back to the head of the queue
// if none does in time or the credit stream ends first. An idle credit
// costs the relay one interface value in the bridge; an idle slot that is
// a stream costs two goroutines and grpc-go's stream.

import (
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/relayproject/relay/clientbridge"
	relayv1 "github.com/relayproject/relay/gen/relay/v1"
)

// DefaultMaxCredits bounds the credits one credit stream may hold at once
// when Config.MaxCredits is zero.
const DefaultMaxCredits = 10000

// LimitClaimTimeout counts offers not claimed within the hello timeout.
const LimitClaimTimeout = "claim_timeout"

// creditStream is a credit stream as the bridge sees it: every entry of it
// in the bridge's idle set is one credit.
type creditStream struct {
	r       *Relay
	id      string
	host    *host
	service string
	idle    atomic.Int64  // credits in the bridge's idle set, not yet reserved
	wake    chan struct{} // capacity 1: the queue has clients to offer

	mu     sync.Mutex
	closed bool
	queue  []*clientbridge.Client // assigned, Offer not yet sent
	// offers are the offers sent and not yet claimed; guarded by Relay.mu
	// (claims look them up there).
	offers map[string]*offer
}

// offer is a client given to a credit, waiting for its claim.
type offer struct {
	id     string
	cs     *creditStream
	client *clientbridge.Client
	timer  *time.Timer // the claim timeout
}

func (cs *creditStream) HostKey() string { return cs.host.keyStr }

func (cs *creditStream) HostLoad() (int, int) {
	return int(cs.host.active.Load()), int(cs.host.weight.Load())
}

// Reserve takes one credit (under the bridge's lock).
func (cs *creditStream) Reserve() {
	cs.idle.Add(-1)
	cs.host.active.Add(1)
}

// Assign queues c for an Offer. A nil client gives the credit back.
func (cs *creditStream) Assign(c *clientbridge.Client) {
	cs.mu.Lock()
	closed := cs.closed
	if !closed && c != nil {
		cs.queue = append(cs.queue, c)
	}
	cs.mu.Unlock()
	switch {
	case c == nil:
		cs.host.active.Add(-1)
		if !closed {
			// A stream ending meanwhile withdraws its credits first; a
			// credit added after that is taken by a client, which Assign
			// then hands back as below.
			cs.idle.Add(1)
			cs.r.cfg.Bridge.AddIdle(cs.service, cs)
		}
	case closed:
		cs.r.giveBackClient(cs.host, c)
	default:
		select {
		case cs.wake <- struct{}{}:
		default:
		}
	}
}

// giveBackClient undoes a reservation of h that will not become a session:
// the client, untouched, goes back to the head of the queue.
func (r *Relay) giveBackClient(h *host, c *clientbridge.Client) {
	h.active.Add(-1)
	if c != nil {
		r.cfg.Bridge.Requeue(c)
	}
}

// addCredits offers n more credits of cs; false if that would pass the
// relay's bound.
func (r *Relay) addCredits(cs *creditStream, n uint32) bool {
	if cs.idle.Load()+int64(n) > int64(r.cfg.MaxCredits) {
		return false
	}
	for range n {
		cs.idle.Add(1)
		if !r.cfg.Bridge.AddIdle(cs.service, cs) {
			cs.idle.Add(-1)
			return true // shutting down: the stream is drained next
		}
	}
	return true
}

// serveCredits runs a credit stream from its Welcome to its end: it sends
// an Offer for each client given to one of its credits, and adds the
// credits the host grants. Not inlined into Attach, whose frame every
// slot's goroutine keeps.
//
//go:noinline
func (r *Relay) serveCredits(a *attachment) error {
	cs := a.credits
	defer r.closeCredits(cs)
	for {
		select {
		case <-cs.wake:
			var err error
			r.deep.Run(func() { err = r.sendOffers(a) })
			if err != nil {
				a.detach = "stream broke"
				return err
			}
		case n := <-a.loop.credits:
			if !r.addCredits(cs, n) {
				a.detach = "too many credits"
				return status.Errorf(codes.ResourceExhausted, "Credit of %d would give this stream more than %d credits (relayd --max-credits)", n, r.cfg.MaxCredits)
			}
		case err := <-a.loop.idleEnd:
			if err != nil {
				a.detach = err.Error()
			} else {
				a.detach = "credits given up"
			}
			return endStatus(err)
		case <-a.ctx.Done():
			a.detach = a.ctx.Err().Error()
			return status.FromContextError(a.ctx.Err()).Err()
		case how := <-a.woken:
			// Withdrawn before Drain goes out: the host may at once take
			// Drain for the end of its credits.
			r.closeCredits(cs)
			if how == idleShutdown {
				a.detach = "relay shutting down"
				return r.sendDrain(a.stream, relayv1.DrainReason_DRAIN_REASON_SHUTDOWN, shutdownRetryAfter, "relay shutting down; attach to another relay")
			}
			a.detach = "drained"
			return r.sendDrain(a.stream, relayv1.DrainReason_DRAIN_REASON_ADMIN, adminRetryAfter, "host drained by an operator")
		}
	}
}

// sendOffers sends an Offer for each queued client; each waits for its
// claim until the hello timeout.
func (r *Relay) sendOffers(a *attachment) error {
	cs := a.credits
	for {
		cs.mu.Lock()
		if len(cs.queue) == 0 {
			cs.mu.Unlock()
			return nil
		}
		c := cs.queue[0]
		cs.queue[0] = nil
		cs.queue = cs.queue[1:]
		cs.mu.Unlock()
		o := &offer{id: "o" + strconv.FormatUint(r.offerSeq.Add(1), 10), cs: cs, client: c}
		r.mu.Lock()
		r.offers[o.id] = o
		cs.offers[o.id] = o
		o.timer = time.AfterFunc(r.cfg.HelloTimeout, func() { r.expireOffer(o) })
		r.mu.Unlock()
		err := a.stream.Send(&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Offer{Offer: &relayv1.Offer{
			ClaimId: o.id, ClientAddr: c.Conn.RemoteAddr().String(),
		}}})
		if err != nil {
			return err // closeCredits hands the offer back
		}
	}
}

// takeOfferLocked removes o from the pending offers; false if it is gone
// (claimed, expired, or handed back). r.mu is held.
func (r *Relay) takeOfferLocked(o *offer) bool {
	if r.offers[o.id] != o {
		return false
	}
	delete(r.offers, o.id)
	delete(o.cs.offers, o.id)
	o.timer.Stop()
	return true
}

// expireOffer hands back an offer that was not claimed in time.
func (r *Relay) expireOffer(o *offer) {
	r.mu.Lock()
	ok := r.takeOfferLocked(o)
	r.mu.Unlock()
	if !ok {
		return
	}
	r.limitHit(LimitClaimTimeout, "host_id", o.cs.host.key.id, "service", o.cs.service, "claim_id", o.id)
	r.giveBackClient(o.cs.host, o.client)
}

// closeCredits withdraws every credit of cs and hands back the clients
// given to them and not yet claimed. It may run twice.
func (r *Relay) closeCredits(cs *creditStream) {
	cs.mu.Lock()
	cs.closed = true
	queued := cs.queue
	cs.queue = nil
	cs.mu.Unlock()
	cs.idle.Add(-int64(r.cfg.Bridge.RemoveIdleAll(cs.service, cs)))
	r.mu.Lock()
	var pending []*offer
	for _, o := range cs.offers {
		r.takeOfferLocked(o)
		pending = append(pending, o)
	}
	r.mu.Unlock()
	for _, c := range queued {
		r.giveBackClient(cs.host, c)
	}
	for _, o := range pending {
		r.giveBackClient(cs.host, o.client)
	}
}

// claim takes the offer a claiming stream of host k names.
func (r *Relay) claim(k hostKey, id string) (*clientbridge.Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.offers[id]
	if o == nil {
		return nil, status.Errorf(codes.NotFound, "offer %q is not pending: claimed already, not claimed within the relay's hello timeout, or its credit stream has ended", id)
	}
	if o.cs.host.key != k {
		return nil, status.Errorf(codes.PermissionDenied, "offer %q was made to another host", id)
	}
	r.takeOfferLocked(o)
	return o.client, nil
}

// sendWelcome answers a Hello; credits is the credit stream's.
func (r *Relay) sendWelcome(a *attachment, credits uint32) error {
	return a.stream.Send(&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Welcome{Welcome: &relayv1.Welcome{
		RelayId: r.cfg.RelayID, SlotId: a.sl.id, MaxDataBytes: uint32(r.cfg.MaxDataBytes),
		SequentialSessions: a.sequential && credits == 0, SlotCredits: credits,
	}}})
}

// attachCredits makes a a credit stream of n credits (at most MaxCredits):
// Welcome, then the credits go to the bridge, so any Offer follows Welcome.
func (r *Relay) attachCredits(a *attachment, n uint32) (*attachment, error) {
	n = min(n, uint32(r.cfg.MaxCredits))
	a.credits = &creditStream{r: r, id: a.sl.id, host: a.h, service: a.service, wake: make(chan struct{}, 1), offers: map[string]*offer{}}
	a.detach = "credits ended"
	if err := r.sendWelcome(a, n); err != nil {
		a.detach = "stream broke"
		a.release()
		return nil, err
	}
	r.addCredits(a.credits, n)
	r.emitSlotOpened(a.key, a.sl.id)
	return a, nil
}

// attachClaim gives a the client of the offer it claims: Welcome, and the
// client is waiting for the slot's first idle wait.
func (r *Relay) attachClaim(a *attachment, id string) (*attachment, error) {
	c, err := r.claim(a.key, id)
	if err != nil {
		a.release()
		return nil, err
	}
	if err := r.sendWelcome(a, 0); err != nil {
		r.giveBackClient(a.h, c)
		a.detach = "stream broke"
		a.release()
		return nil, err
	}
	a.sl.assigned <- c
	r.emitSlotOpened(a.key, a.sl.id)
	return a, nil
}

// creditLoop is a credit stream's receive loop after Hello: Credit frames
// go to the handler; Close, or half-closing the RPC, gives the credits up.
func (l *recvLoop) creditLoop() error {
	var req relayv1.AttachRequest
	for {
		if err := l.stream.RecvMsg(&req); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		switch f := req.Frame.(type) {
		case *relayv1.AttachRequest_Credit:
			select {
			case l.credits <- f.Credit.GetSlots():
			case <-l.stream.Context().Done():
				return l.stream.Context().Err()
			}
		case *relayv1.AttachRequest_Close:
			return &closeFrameError{reason: f.Close.GetReason(), detail: f.Close.GetDetail()}
		case nil:
			return protocolError(codes.InvalidArgument, "frame with no known field set")
		default:
			return protocolError(codes.FailedPrecondition, "%s on a credit stream, which carries no session", frameName(&req))
		}
	}
}
