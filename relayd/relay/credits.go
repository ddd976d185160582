package relay

// Slot credits (Hello.slot_credits): an idle slot that is a counter on a
// credit stream rather than a stream of its own. Each credit is one entry
// of the credit stream in the bridge's idle set; when the scheduler picks
// one, the client waits, untouched, as an offer until a stream of the same
// host claims it (Hello.claim_id), and goes back to the head of the queue
// if none does within the claim timeout (which also ends the credit
// stream) or the credit stream ends first. An idle credit
// costs the relay one interface value in the bridge; an idle slot that is
// a stream costs two goroutines and grpc-go's stream.

import (
	"io"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/relayproject/relay/clientbridge"
	relayv1 "github.com/relayproject/relay/gen/relay/v1"
)

// DefaultMaxCredits bounds the credits one host may hold at once when
// Config.MaxCredits is zero; DefaultClaimTimeout is Config.ClaimTimeout's
// default.
const (
	DefaultMaxCredits   = 10000
	DefaultClaimTimeout = 2 * time.Second
)

// Limits of credit streams, as counted by LimitHits: an offer not claimed
// within Config.ClaimTimeout, and credits refused under Config.MaxCredits.
const (
	LimitClaimTimeout = "claim_timeout"
	LimitCredits      = "max_credits"
)

// creditStream is a credit stream as the bridge sees it: every entry of it
// in the bridge's idle set is one credit (counted in host.credits).
type creditStream struct {
	r       *Relay
	id      string
	host    *host
	health  *backendHealth // its agent connection's: claims come on the same one
	service string
	wake    chan struct{} // capacity 1: offers to send, or an offer expired

	mu      sync.Mutex
	closed  bool
	queue   []*offer // made, not yet sent
	expired string   // the offer whose claim did not come in time: the stream ends
	// offers are the offers made and not yet claimed; guarded by Relay.mu
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

func (cs *creditStream) Failing() bool { return cs.health.failingNow() }

// Deferred: a credit's client waits for the host's claim, so the host's
// idle streams (a claimed stream offered again after its session, say)
// are taken first.
func (cs *creditStream) Deferred() bool { return true }

// Reserve takes one credit (under the bridge's lock).
func (cs *creditStream) Reserve() {
	cs.host.credits.Add(-1)
	cs.host.active.Add(1)
}

// Assign makes c an offer, to be sent on the stream; its claim timeout
// runs from now, so a stream whose sends are stuck holds no client longer
// than that. A nil client gives the credit back.
func (cs *creditStream) Assign(c *clientbridge.Client) {
	r := cs.r
	cs.mu.Lock()
	switch {
	case c == nil:
		cs.host.active.Add(-1)
		// Under mu: a stream that ends meanwhile must not find its credit
		// back in the bridge after it has withdrawn them. (AddIdle never
		// calls Assign itself.)
		if !cs.closed && r.cfg.Bridge.AddIdle(cs.service, cs) {
			cs.host.credits.Add(1)
		}
		cs.mu.Unlock()
		return
	case cs.closed:
		cs.mu.Unlock()
		// Not under mu: the requeued client may be given at once to
		// another credit of this stream, not yet withdrawn.
		r.giveBackClient(cs.host, c)
		return
	}
	o := &offer{id: "o" + strconv.FormatUint(r.offerSeq.Add(1), 10), cs: cs, client: c}
	r.mu.Lock()
	r.offers[o.id] = o
	cs.offers[o.id] = o
	o.timer = time.AfterFunc(r.cfg.ClaimTimeout, func() { r.expireOffer(o) })
	r.mu.Unlock()
	cs.queue = append(cs.queue, o)
	cs.mu.Unlock()
	wakeCredits(cs)
}

func wakeCredits(cs *creditStream) {
	select {
	case cs.wake <- struct{}{}:
	default:
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

// takeCredits reserves up to n of the host's credits under MaxCredits
// (all n, or none, when exact) and returns how many.
func (r *Relay) takeCredits(h *host, n int64, exact bool) int64 {
	for {
		cur := h.credits.Load()
		k := min(n, int64(r.cfg.MaxCredits)-cur)
		if k <= 0 || (exact && k < n) {
			return 0
		}
		if h.credits.CompareAndSwap(cur, cur+k) {
			return k
		}
	}
}

// addCredits puts n credits of cs, already counted by takeCredits, into
// the bridge's idle set.
func (r *Relay) addCredits(cs *creditStream, n int64) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed || !r.cfg.Bridge.AddIdleN(cs.service, cs, int(n)) {
		cs.host.credits.Add(-n) // ending, or shutting down: the stream is drained next
	}
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
				return err
			}
		case n := <-a.loop.credits:
			if r.takeCredits(cs.host, int64(n), true) < int64(n) {
				a.detach = "too many credits"
				r.limitHit(LimitCredits, "host_id", a.key.id, "service", a.service, "credits", cs.host.credits.Load(), "max_credits", r.cfg.MaxCredits)
				return status.Errorf(codes.ResourceExhausted, "Credit of %d would give host %q more than %d credits (relayd --max-credits)", n, a.key.id, r.cfg.MaxCredits)
			}
			r.addCredits(cs, int64(n))
		case err := <-a.loop.idleEnd:
			if err != nil {
				a.detach = detachReason(err)
			} else {
				a.detach = "credits given up"
			}
			return endStatus(err)
		case <-a.ctx.Done():
			err := a.loop.streamEnd(a.ctx)
			a.detach = detachReason(err)
			return err
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

// sendOffers sends an Offer for each offer made and still pending, or
// reports the stream's end if one expired.
func (r *Relay) sendOffers(a *attachment) error {
	cs := a.credits
	for {
		cs.mu.Lock()
		if cs.expired != "" {
			id := cs.expired
			cs.mu.Unlock()
			a.detach = "offer not claimed in time"
			return status.Errorf(codes.DeadlineExceeded, "offer %s was not claimed within %v (relayd --claim-timeout): this stream's credits are withdrawn", id, r.cfg.ClaimTimeout)
		}
		if len(cs.queue) == 0 {
			cs.mu.Unlock()
			return nil
		}
		o := cs.queue[0]
		cs.queue[0] = nil
		cs.queue = cs.queue[1:]
		cs.mu.Unlock()
		r.mu.Lock()
		pending := r.offers[o.id] == o
		r.mu.Unlock()
		if !pending {
			continue
		}
		if r.cfg.Authorize != nil {
			// Checked again, as a stream of sequential sessions is before
			// each session: the token may have been removed since the
			// stream attached (SIGHUP). Its claim would be refused anyway,
			// but only after the client had waited for it.
			if err := r.cfg.Authorize(a.ctx, a.service, a.key.id); err != nil {
				a.log.Debug("credit stream's token no longer accepted", "err", err)
				a.detach = "its token is no longer accepted: " + status.Convert(err).Message()
				return err // closeCredits hands the offer back
			}
		}
		err := a.stream.Send(&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Offer{Offer: &relayv1.Offer{
			ClaimId: o.id, ClientAddr: o.client.Conn.RemoteAddr().String(),
		}}})
		a.log.Debug("offer sent", "claim_id", o.id, "client_addr", o.client.Conn.RemoteAddr().String(), "err", err)
		if err != nil {
			a.detach = "stream broke"
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

// expireOffer hands back an offer that was not claimed in time, and ends
// its credit stream: a host that does not claim in time is stuck or gone,
// and its other credits would only hold more clients back.
func (r *Relay) expireOffer(o *offer) {
	r.mu.Lock()
	ok := r.takeOfferLocked(o)
	r.mu.Unlock()
	if !ok {
		return
	}
	cs := o.cs
	r.limitHit(LimitClaimTimeout, "host_id", cs.host.key.id, "service", cs.service, "claim_id", o.id)
	cs.mu.Lock()
	if cs.expired == "" {
		cs.expired = o.id
	}
	cs.mu.Unlock()
	// The stream's credits withdrawn first: the client must not be
	// given back to the stream that did not claim it.
	r.closeCredits(cs)
	wakeCredits(cs)
	r.giveBackClient(cs.host, o.client)
}

// closeCredits withdraws every credit of cs and hands back the clients
// given to them and not yet claimed. It may run more than once.
func (r *Relay) closeCredits(cs *creditStream) {
	cs.mu.Lock()
	cs.closed = true
	clear(cs.queue) // every queued offer is in cs.offers too
	cs.queue = nil
	// Under mu, with closed: a client reserved on a credit before this
	// is handed back by Assign, and can no longer find another of them.
	cs.host.credits.Add(-int64(r.cfg.Bridge.RemoveIdleAll(cs.service, cs)))
	cs.mu.Unlock()
	r.mu.Lock()
	var pending []*offer
	for _, o := range cs.offers {
		r.takeOfferLocked(o)
		pending = append(pending, o)
	}
	r.mu.Unlock()
	for _, o := range pending {
		r.giveBackClient(cs.host, o.client)
	}
}

// releaseClaim gives back, untouched, the client of the offer that a
// claiming stream of host k names, when the stream is refused before it
// could take it (a limit): the client need not wait for the claim timeout,
// nor the host lose its credits over it.
func (r *Relay) releaseClaim(k hostKey, id string) {
	r.mu.Lock()
	o := r.offers[id]
	ok := o != nil && o.cs.host.key == k && r.takeOfferLocked(o)
	r.mu.Unlock()
	if ok {
		r.giveBackClient(o.cs.host, o.client)
	}
}

// claim takes the offer a claiming stream of host k names.
func (r *Relay) claim(k hostKey, id string) (*clientbridge.Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o, err := r.claimableLocked(k, id)
	if err != nil {
		return nil, err
	}
	r.takeOfferLocked(o)
	return o.client, nil
}

// checkClaim refuses, before the claiming stream becomes a slot of host
// k, a claim that names no pending offer of k: a claim that comes too late
// or from another host would otherwise attach and detach that host (log
// lines, events) for nothing. An offer may still expire before claim.
func (r *Relay) checkClaim(k hostKey, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err := r.claimableLocked(k, id)
	return err
}

func (r *Relay) claimableLocked(k hostKey, id string) (*offer, error) {
	o := r.offers[id]
	if o == nil {
		return nil, status.Errorf(codes.NotFound, "offer %q is not pending: claimed already, not claimed within the relay's claim timeout (the client went to another host), or its credit stream has ended", id)
	}
	if o.cs.host.key != k {
		return nil, status.Errorf(codes.PermissionDenied, "offer %q was made to another host", id)
	}
	return o, nil
}

// sendWelcome answers a Hello; credits is the credit stream's.
func (r *Relay) sendWelcome(a *attachment, credits uint32) error {
	return a.stream.Send(&relayv1.AttachResponse{Frame: &relayv1.AttachResponse_Welcome{Welcome: &relayv1.Welcome{
		RelayId: r.cfg.RelayID, SlotId: a.sl.id, MaxDataBytes: uint32(r.cfg.MaxDataBytes),
		SequentialSessions: a.sequential && credits == 0, SlotCredits: credits, IdleTimeout: r.idleTimeout(),
	}}})
}

// attachCredits makes a a credit stream with up to n credits (within the
// host's MaxCredits). The credits are idle before Welcome goes out, as a
// slot is, so that a host that has seen Welcome can count on them; an
// Offer for a client given to one meanwhile follows Welcome.
func (r *Relay) attachCredits(a *attachment, n uint32) (*attachment, error) {
	k := r.takeCredits(a.h, int64(n), false)
	if k == 0 {
		a.release()
		r.limitHit(LimitCredits, "host_id", a.key.id, "service", a.service, "max_credits", r.cfg.MaxCredits)
		return nil, status.Errorf(codes.ResourceExhausted, "host %q already holds %d credits for service %q (relayd --max-credits)", a.key.id, a.h.credits.Load(), a.service)
	}
	cs := &creditStream{r: r, id: a.sl.id, host: a.h, health: a.sl.health, service: a.service, wake: make(chan struct{}, 1), offers: map[string]*offer{}}
	a.credits = cs
	a.detach = "credits ended"
	r.addCredits(cs, k)
	if err := r.sendWelcome(a, uint32(k)); err != nil {
		r.closeCredits(cs)
		a.detach = "stream broke"
		a.release()
		return nil, err
	}
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
			return &closeFrameError{reason: f.Close.GetReason(), detail: hostDetail(f.Close.GetDetail())}
		case nil:
			return protocolError(codes.InvalidArgument, "frame with no known field set")
		default:
			return protocolError(codes.FailedPrecondition, "%s on a credit stream, which carries no session", frameName(&req))
		}
	}
}
