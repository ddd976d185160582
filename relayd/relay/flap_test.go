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

// messageCounter is a log handler that counts lines by message.
type messageCounter struct {
	mu     *sync.Mutex
	counts map[string]int
}

func newMessageCounter() messageCounter {
	return messageCounter{mu: &sync.Mutex{}, counts: map[string]int{}}
}

func (h messageCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h messageCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.counts[r.Message]++
	h.mu.Unlock()
	return nil
}
func (h messageCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h messageCounter) WithGroup(string) slog.Handler      { return h }

func (h messageCounter) count(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[msg]
}

// TestHostFlappingLogged: a host that attaches and detaches again and
// again (a Hello, then a half-close) is not two log lines per flap: its
// first attach and detach are logged as always, and the flaps after them
// share a line a second.
func TestHostFlappingLogged(t *testing.T) {
	t.Parallel()
	logs := newMessageCounter()
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
	if a, d := logs.count("host attached"), logs.count("host detached"); a != 1 || d != 1 {
		t.Errorf("%d flaps logged %d \"host attached\" and %d \"host detached\" lines, want 1 each (the first flap)", flaps, a, d)
	}
	again := logs.count("host attached again within a second of its detach; such lines are logged at most once a second") +
		logs.count("host detached again within a second of its attach; such lines are logged at most once a second")
	if most := 2 + int(elapsed/time.Second); again < 1 || again > most {
		t.Errorf("%d flaps in %v logged %d throttled lines, want 1 to %d", flaps, elapsed, again, most)
	}
}
