package relay

import (
	"testing"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
)

// TestEventHubDropsAndCounts: a watcher that does not read loses the events
// beyond its buffer, never blocks publish, and learns how many it lost with
// the next event that fits.
func TestEventHubDropsAndCounts(t *testing.T) {
	t.Parallel()
	h := &eventHub{buffer: 2}
	w := h.add(&relayv1.WatchEventsRequest{})
	defer h.remove(w)
	other := h.add(&relayv1.WatchEventsRequest{Kinds: []relayv1.EventKind{relayv1.EventKind_EVENT_KIND_HOST_ATTACHED}})
	defer h.remove(other)

	ev := func(id string) func() *relayv1.WatchEventsResponse {
		return func() *relayv1.WatchEventsResponse {
			return &relayv1.WatchEventsResponse{Event: &relayv1.WatchEventsResponse_SlotOpened{SlotOpened: &relayv1.SlotOpened{SlotId: id}}}
		}
	}
	meta := eventMeta{kind: relayv1.EventKind_EVENT_KIND_SLOT_OPENED, service: "default", host: "h"}
	for _, id := range []string{"s1", "s2", "s3", "s4", "s5"} {
		h.publish(meta, ev(id)) // must not block although nobody reads
	}
	for _, want := range []string{"s1", "s2"} {
		q := <-w.ch
		if got := q.ev.GetSlotOpened().GetSlotId(); got != want || q.dropped != 0 {
			t.Fatalf("event %q dropped %d, want %q dropped 0", got, q.dropped, want)
		}
	}
	h.publish(meta, ev("s6"))
	q := <-w.ch
	if got := q.ev.GetSlotOpened().GetSlotId(); got != "s6" || q.dropped != 3 {
		t.Fatalf("event %q dropped %d, want s6 after 3 dropped", got, q.dropped)
	}
	if len(other.ch) != 0 {
		t.Fatalf("a watcher of host_attached only got %d slot_opened events", len(other.ch))
	}
}

func TestWatcherFilters(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		req  *relayv1.WatchEventsRequest
		meta eventMeta
		want bool
	}{
		{"empty_matches_all", &relayv1.WatchEventsRequest{}, eventMeta{relayv1.EventKind_EVENT_KIND_SESSION_CLOSED, "a", "h"}, true},
		{"service_match", &relayv1.WatchEventsRequest{Service: "a"}, eventMeta{relayv1.EventKind_EVENT_KIND_SESSION_CLOSED, "a", "h"}, true},
		{"service_mismatch", &relayv1.WatchEventsRequest{Service: "b"}, eventMeta{relayv1.EventKind_EVENT_KIND_SESSION_CLOSED, "a", "h"}, false},
		{"host_match", &relayv1.WatchEventsRequest{HostId: "h"}, eventMeta{relayv1.EventKind_EVENT_KIND_SESSION_CLOSED, "a", "h"}, true},
		{"host_filter_skips_hostless", &relayv1.WatchEventsRequest{HostId: "h"}, eventMeta{relayv1.EventKind_EVENT_KIND_CLIENT_REJECTED, "a", ""}, false},
		{"kind_match", &relayv1.WatchEventsRequest{Kinds: []relayv1.EventKind{relayv1.EventKind_EVENT_KIND_SESSION_CLOSED}}, eventMeta{relayv1.EventKind_EVENT_KIND_SESSION_CLOSED, "a", "h"}, true},
		{"kind_mismatch", &relayv1.WatchEventsRequest{Kinds: []relayv1.EventKind{relayv1.EventKind_EVENT_KIND_SESSION_OPENED}}, eventMeta{relayv1.EventKind_EVENT_KIND_SESSION_CLOSED, "a", "h"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := &eventHub{buffer: 1}
			w := h.add(tt.req)
			defer h.remove(w)
			if got := w.wants(tt.meta); got != tt.want {
				t.Fatalf("wants(%+v) = %v, want %v", tt.meta, got, tt.want)
			}
		})
	}
}
