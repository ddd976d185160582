package relay

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/relayproject/relay/clientbridge"
	relayv1 "github.com/relayproject/relay/gen/relay/v1"
)

// DefaultWatchBuffer is how many events a watcher may lag behind before the
// relay starts dropping (and counting) its events.
const DefaultWatchBuffer = 1024

// eventHub fans events out to the WatchEvents streams. Publishing never
// blocks: each watcher has a bounded buffer, and an event that does not fit
// is counted and the count reported with the next event that does, so a
// stuck watcher costs the relay one failed channel send per event, never a
// wait.
type eventHub struct {
	buffer int
	max    int // watchers at once; 0: no bound

	n            atomic.Int32  // len(watchers): publish skips the lock when nobody watches
	droppedTotal atomic.Uint64 // events dropped, over every watcher ever (relay_watch_events_dropped_total)
	mu           sync.Mutex
	watchers     map[*watcher]struct{}
}

type watcher struct {
	filter  *relayv1.WatchEventsRequest
	kinds   map[relayv1.EventKind]bool
	ch      chan queuedEvent
	dropped uint64 // events missed since the last one queued; guarded by eventHub.mu
}

// queuedEvent is an event shared by every watcher, and the drop count of
// this one watcher just before it.
type queuedEvent struct {
	ev      *relayv1.WatchEventsResponse
	dropped uint64
}

// add registers a watcher, or returns nil if max are registered.
func (h *eventHub) add(req *relayv1.WatchEventsRequest) *watcher {
	w := &watcher{filter: req}
	if len(req.GetKinds()) > 0 {
		w.kinds = map[relayv1.EventKind]bool{}
		for _, k := range req.GetKinds() {
			w.kinds[k] = true
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.max > 0 && len(h.watchers) >= h.max {
		return nil
	}
	w.ch = make(chan queuedEvent, h.buffer) // only once admitted
	if h.watchers == nil {
		h.watchers = map[*watcher]struct{}{}
	}
	h.watchers[w] = struct{}{}
	h.n.Store(int32(len(h.watchers)))
	return w
}

func (h *eventHub) remove(w *watcher) {
	h.mu.Lock()
	delete(h.watchers, w)
	h.n.Store(int32(len(h.watchers)))
	h.mu.Unlock()
}

// eventMeta is what filters look at: one event's kind, service and host.
type eventMeta struct {
	kind          relayv1.EventKind
	service, host string
}

func (w *watcher) wants(m eventMeta) bool {
	if w.kinds != nil && !w.kinds[m.kind] {
		return false
	}
	if s := w.filter.GetService(); s != "" && s != m.service {
		return false
	}
	if id := w.filter.GetHostId(); id != "" && id != m.host {
		return false
	}
	return true
}

// publish hands ev to every interested watcher, in the order of publish
// calls (the hub's lock orders them). build makes the event only when
// someone is watching.
func (h *eventHub) publish(m eventMeta, build func() *relayv1.WatchEventsResponse) {
	if h.n.Load() == 0 {
		// Nobody watches. A watcher added meanwhile is not registered yet
		// (it has no headers), so it has not been promised this event.
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.watchers) == 0 {
		return
	}
	var ev *relayv1.WatchEventsResponse
	for w := range h.watchers {
		if !w.wants(m) {
			continue
		}
		if ev == nil {
			ev = build()
			ev.Time = timestamppb.New(time.Now())
		}
		select {
		case w.ch <- queuedEvent{ev: ev, dropped: w.dropped}:
			w.dropped = 0
		default:
			w.dropped++
			h.droppedTotal.Add(1)
		}
	}
}

// takeDropped returns the count of w's events dropped since its last
// queued event, and clears it.
func (h *eventHub) takeDropped(w *watcher) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := w.dropped
	w.dropped = 0
	return n
}

// sendDropped sends, once w has caught up (its buffer is empty), a response
// with no event and the count of those it missed since the last one: the
// count must not wait for an event that may never come (a quiet relay, or
// its shutdown).
func (s statusService) sendDropped(w *watcher, stream relayv1.StatusService_WatchEventsServer) error {
	if len(w.ch) > 0 {
		return nil // the next queued event carries it
	}
	if n := s.r.events.takeDropped(w); n > 0 {
		return stream.Send(&relayv1.WatchEventsResponse{Time: timestamppb.Now(), Dropped: n})
	}
	return nil
}

// WatchEvents implements relay.v1.StatusService.
func (s statusService) WatchEvents(req *relayv1.WatchEventsRequest, stream relayv1.StatusService_WatchEventsServer) error {
	for _, k := range req.GetKinds() {
		if k == relayv1.EventKind_EVENT_KIND_UNSPECIFIED {
			return status.Error(codes.InvalidArgument, "kinds: EVENT_KIND_UNSPECIFIED is no kind of event: name the kinds to watch, or give none for all")
		}
		if relayv1.EventKind_name[int32(k)] == "" {
			return status.Errorf(codes.InvalidArgument, "kinds: unknown event kind %d", k)
		}
	}
	r := s.r
	if svc := req.GetService(); svc != "" && !r.services[svc] {
		// A typo here would give a feed that looks merely quiet (QA).
		return status.Errorf(codes.InvalidArgument, "service %q is not served by this relay (it serves %s): no event could match", svc, strings.Join(slices.Sorted(maps.Keys(r.services)), ", "))
	}
	w := r.events.add(req)
	if w == nil {
		peerAddr := ""
		if p, ok := peer.FromContext(stream.Context()); ok && p.Addr != nil {
			peerAddr = p.Addr.String()
		}
		r.limitHit(LimitWatchers, "peer_addr", peerAddr, "max", r.events.max)
		return status.Errorf(codes.ResourceExhausted, "this relay already has %d WatchEvents streams (relayd --max-watchers): end one, or raise the limit", r.events.max)
	}
	defer r.events.remove(w)
	// Headers tell the watcher that it is registered: every event from now
	// on reaches it (or is counted as dropped).
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	ctx := stream.Context()
	for {
		select {
		case q := <-w.ch:
			// The event is shared with other watchers: send a shallow copy
			// carrying this watcher's own drop count.
			out := &relayv1.WatchEventsResponse{Time: q.ev.Time, Dropped: q.dropped, Event: q.ev.Event}
			if err := stream.Send(out); err != nil {
				return err
			}
			if err := s.sendDropped(w, stream); err != nil {
				return err
			}
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-r.watchEnd:
			// The relay has stopped: send what this watcher still holds
			// (bounded by its buffer), then end.
			for {
				select {
				case q := <-w.ch:
					out := &relayv1.WatchEventsResponse{Time: q.ev.Time, Dropped: q.dropped, Event: q.ev.Event}
					if err := stream.Send(out); err != nil {
						return err
					}
				default:
					if err := s.sendDropped(w, stream); err != nil {
						return err
					}
					return status.Error(codes.Unavailable, "relay is shutting down")
				}
			}
		}
	}
}

// The events, one function each, so the call sites stay one line.

func (r *Relay) emitHostAttached(k hostKey, peerAddr, agentVersion string) {
	r.events.publish(eventMeta{relayv1.EventKind_EVENT_KIND_HOST_ATTACHED, k.service, k.id}, func() *relayv1.WatchEventsResponse {
		return &relayv1.WatchEventsResponse{Event: &relayv1.WatchEventsResponse_HostAttached{HostAttached: &relayv1.HostAttached{
			HostId: k.id, Service: k.service, PeerAddr: peerAddr, AgentVersion: agentVersion,
		}}}
	})
}

func (r *Relay) emitHostDetached(k hostKey, reason string) {
	r.events.publish(eventMeta{relayv1.EventKind_EVENT_KIND_HOST_DETACHED, k.service, k.id}, func() *relayv1.WatchEventsResponse {
		return &relayv1.WatchEventsResponse{Event: &relayv1.WatchEventsResponse_HostDetached{HostDetached: &relayv1.HostDetached{
			HostId: k.id, Service: k.service, Reason: reason,
		}}}
	})
}

func (r *Relay) emitSlotOpened(k hostKey, slotID string) {
	r.events.publish(eventMeta{relayv1.EventKind_EVENT_KIND_SLOT_OPENED, k.service, k.id}, func() *relayv1.WatchEventsResponse {
		return &relayv1.WatchEventsResponse{Event: &relayv1.WatchEventsResponse_SlotOpened{SlotOpened: &relayv1.SlotOpened{
			SlotId: slotID, HostId: k.id, Service: k.service,
		}}}
	})
}

func (r *Relay) emitSessionOpened(s *session, wait time.Duration) {
	k := s.host.key
	r.events.publish(eventMeta{relayv1.EventKind_EVENT_KIND_SESSION_OPENED, k.service, k.id}, func() *relayv1.WatchEventsResponse {
		return &relayv1.WatchEventsResponse{Event: &relayv1.WatchEventsResponse_SessionOpened{SessionOpened: &relayv1.SessionOpened{
			SessionId: s.id, ClientAddr: s.clientAddr, HostId: k.id, Service: k.service, SlotId: s.slotID,
			AssignWait: durationpb.New(wait),
		}}}
	})
}

func (r *Relay) emitHalfClosed(s *session, side relayv1.SessionSide) {
	k := s.host.key
	r.events.publish(eventMeta{relayv1.EventKind_EVENT_KIND_SESSION_HALF_CLOSED, k.service, k.id}, func() *relayv1.WatchEventsResponse {
		return &relayv1.WatchEventsResponse{Event: &relayv1.WatchEventsResponse_SessionHalfClosed{SessionHalfClosed: &relayv1.SessionHalfClosed{
			SessionId: s.id, Side: side, HostId: k.id, Service: k.service,
		}}}
	})
}

func (r *Relay) emitSessionClosed(s *session, ev *relayv1.SessionClosed) {
	k := s.host.key
	r.events.publish(eventMeta{relayv1.EventKind_EVENT_KIND_SESSION_CLOSED, k.service, k.id}, func() *relayv1.WatchEventsResponse {
		return &relayv1.WatchEventsResponse{Event: &relayv1.WatchEventsResponse_SessionClosed{SessionClosed: ev}}
	})
}

// ClientRejected reports a client closed without a session; relayd wires it
// to clientbridge.Config.OnReject. reason is one of the clientbridge
// Reject* constants.
func (r *Relay) ClientRejected(clientAddr, service, reason string) {
	rr := rejectReason(reason)
	r.metrics.rejected(service, reason)
	r.events.publish(eventMeta{relayv1.EventKind_EVENT_KIND_CLIENT_REJECTED, service, ""}, func() *relayv1.WatchEventsResponse {
		return &relayv1.WatchEventsResponse{Event: &relayv1.WatchEventsResponse_ClientRejected{ClientRejected: &relayv1.ClientRejected{
			ClientAddr: clientAddr, Service: service, Reason: rr,
		}}}
	})
}

func rejectReason(reason string) relayv1.RejectReason {
	switch reason {
	case clientbridge.RejectTimeout:
		return relayv1.RejectReason_REJECT_REASON_NO_SLOT_IN_TIME
	case clientbridge.RejectQueueFull:
		return relayv1.RejectReason_REJECT_REASON_QUEUE_FULL
	case clientbridge.RejectShutdown:
		return relayv1.RejectReason_REJECT_REASON_SHUTDOWN
	case clientbridge.RejectMaxClients, clientbridge.RejectMaxClientsPerIP, clientbridge.RejectRateLimited:
		return relayv1.RejectReason_REJECT_REASON_LIMIT
	default:
		return relayv1.RejectReason_REJECT_REASON_UNSPECIFIED
	}
}
