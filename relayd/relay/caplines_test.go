package relay_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/relayproject/relay/relayd/relay"
)

// limitLineLog is a log handler that keeps the "limit hit" lines' limit
// and repeats_not_logged.
type limitLineLog struct {
	mu    sync.Mutex
	lines []limitLine
}

type limitLine struct {
	limit, host string
	notLogged   int64
}

func (h *limitLineLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *limitLineLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "limit hit" {
		return nil
	}
	var l limitLine
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "limit":
			l.limit = a.Value.String()
		case "host_id":
			l.host = a.Value.String()
		case "repeats_not_logged":
			l.notLogged = int64(a.Value.Uint64())
		}
		return true
	})
	h.mu.Lock()
	h.lines = append(h.lines, l)
	h.mu.Unlock()
	return nil
}
func (h *limitLineLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *limitLineLog) WithGroup(string) slog.Handler      { return h }

func (h *limitLineLog) snapshot() []limitLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]limitLine(nil), h.lines...)
}

// TestSlotCapLoggedOncePerHost: an agent whose --idle is above the relay's
// --max-slots-per-host asks for another slot every few seconds, for as long
// as it runs. Each refusal is counted, but only the first of a host's, then
// one a minute, is logged ("limit hit" was a Warn line every 2.5-5 s).
// Another host's first hit is logged as before.
func TestSlotCapLoggedOncePerHost(t *testing.T) {
	t.Parallel()
	logs := &limitLineLog{}
	tr := newTestRelay(t, relay.Config{MaxSlotsPerHost: 1, Logger: slog.New(logs)})
	var clock sync.Mutex
	now := time.Now()
	advance := func(d time.Duration) {
		clock.Lock()
		defer clock.Unlock()
		now = now.Add(d)
	}
	relay.SetLimitClock(tr.r, func() time.Time {
		clock.Lock()
		defer clock.Unlock()
		return now
	})
	refuse := func(host string) {
		t.Helper()
		s := tr.attach(t)
		s.send(helloFrame("default", host))
		s.expectEnd(codes.ResourceExhausted)
	}
	for _, host := range []string{"capped", "other"} {
		tr.attach(t).hello(helloFrame("default", host).GetHello())
	}
	for range 10 { // an agent at the cap, asking every 5 s for 50 s
		refuse("capped")
		advance(5 * time.Second)
	}
	refuse("other")
	if got, want := tr.r.LimitHits()[relay.LimitSlotsPerHost], uint64(11); got != want {
		t.Errorf("max_slots_per_host hits = %d, want %d", got, want)
	}
	lines := logs.snapshot()
	if len(lines) != 2 || lines[0].host != "capped" || lines[1].host != "other" {
		t.Fatalf("limit lines = %+v, want one for host capped and one for host other", lines)
	}
	advance(time.Minute)
	refuse("capped")
	lines = logs.snapshot()
	if len(lines) != 3 || lines[2].host != "capped" || lines[2].notLogged != 9 {
		t.Fatalf("limit lines a minute later = %+v, want a third for host capped with 9 repeats not logged", lines)
	}
}
