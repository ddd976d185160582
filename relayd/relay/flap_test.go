package relay_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/relayd/relay"
)

// hostLineLog is a log handler that keeps the attached and detached lines.
type hostLineLog struct {
	mu    *sync.Mutex
	lines *[]hostLine
	added chan struct{} // a line was kept
}

type hostLine struct {
	msg, reason string
	notLogged   int64
}

func (h hostLineLog) Enabled(context.Context, slog.Level) bool { return true }
func (h hostLineLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "host attached" && r.Message != "host detached" {
		return nil
	}
	l := hostLine{msg: r.Message}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "reason":
			l.reason = a.Value.String()
		case "not_logged_since_last_line":
			l.notLogged = a.Value.Int64()
		}
		return true
	})
	h.mu.Lock()
	*h.lines = append(*h.lines, l)
	h.mu.Unlock()
	select {
	case h.added <- struct{}{}:
	default:
	}
	return nil
}
func (h hostLineLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h hostLineLog) WithGroup(string) slog.Handler      { return h }

func (h hostLineLog) snapshot() []hostLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hostLine(nil), *h.lines...)
}

// TestHostFlappingLogged: a host that attaches and detaches again and
// again (a Hello, then a half-close) is not two log lines per flap: it
// gets two lines a second, then one when the second ends, which gives the
// state the flaps left it in (here detached, with its reason) and how many
// lines were not logged.
func TestHostFlappingLogged(t *testing.T) {
	t.Parallel()
	logs := hostLineLog{mu: &sync.Mutex{}, lines: &[]hostLine{}, added: make(chan struct{}, 1)}
	tr := newTestRelay(t, relay.Config{Logger: slog.New(logs)})
	const flaps = 20
	start := time.Now()
	for range flaps {
		h := tr.attach(t)
		h.hello(&relayv1.Hello{HostId: "flapper"})
		if err := h.stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		h.serverEnd() // the slot is gone: the host detached
	}
	elapsed := time.Since(start)
	// The last line says detached, and the lines account for every flap.
	deadline := time.After(10 * time.Second)
	for {
		lines := logs.snapshot()
		var accounted int64
		for _, l := range lines {
			accounted += 1 + l.notLogged
		}
		if accounted == 2*flaps {
			if most := 3 * (1 + int(elapsed/time.Second)); len(lines) > most {
				t.Errorf("%d flaps in %v logged %d lines, want at most %d: %+v", flaps, elapsed, len(lines), most, lines)
			}
			if last := lines[len(lines)-1]; last.msg != "host detached" || last.reason == "" {
				t.Errorf("last line %+v, want host detached with its reason", last)
			}
			return
		}
		select {
		case <-logs.added:
		case <-deadline:
			t.Fatalf("10 s after %d flaps, the lines account for %d attaches and detaches, want %d: %+v", flaps, accounted, 2*flaps, lines)
		}
	}
}

// TestHostLinesFlushedAtClose: lines a flapping host has not had yet are
// logged when the relay closes, not lost with their timer.
func TestHostLinesFlushedAtClose(t *testing.T) {
	t.Parallel()
	logs := hostLineLog{mu: &sync.Mutex{}, lines: &[]hostLine{}, added: make(chan struct{}, 1)}
	const flaps = 5
	t.Cleanup(func() { // runs after the relay's cleanup has closed it
		lines := logs.snapshot()
		var accounted int64
		for _, l := range lines {
			accounted += 1 + l.notLogged
		}
		if accounted != 2*flaps {
			t.Errorf("after Close, the lines account for %d attaches and detaches, want %d: %+v", accounted, 2*flaps, lines)
		}
	})
	tr := newTestRelay(t, relay.Config{Logger: slog.New(logs)})
	for range flaps {
		h := tr.attach(t)
		h.hello(&relayv1.Hello{HostId: "flapper"})
		if err := h.stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		h.serverEnd()
	}
}
