package agent

import (
	"context"
	"log/slog"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// levelRecorder keeps the level and message of each record.
type levelRecorder struct{ records *[]slog.Record }

func (h levelRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h levelRecorder) Handle(_ context.Context, r slog.Record) error {
	*h.records = append(*h.records, r)
	return nil
}
func (h levelRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h levelRecorder) WithGroup(string) slog.Handler      { return h }

// The failures of one outage are logged at Warn once a minute, Debug in
// between; a refusal an operator must act on at Error, alike; a failure of
// another kind at once; and after "relay attached", the next failure
// starts a new outage.
func TestBackoffLogThrottle(t *testing.T) {
	t.Parallel()
	var records []slog.Record
	cfg := Config{Relays: []string{"127.0.0.1:1"}, HostID: "h", Idle: 1, Logger: slog.New(levelRecorder{&records})}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	l := &Listener{cfg: cfg, log: cfg.Logger}
	lk := &link{addr: "127.0.0.1:1", idleCtx: context.Background()}
	down := status.Error(codes.Unavailable, "connection refused")
	denied := status.Error(codes.Unauthenticated, "no token")
	check := func(step string, err error, want slog.Level) {
		t.Helper()
		records = records[:0]
		l.backoff(lk, err)
		if len(records) != 1 {
			t.Fatalf("%s: %d lines, want 1", step, len(records))
		}
		if r := records[0]; r.Level != want {
			t.Errorf("%s: %q at %v, want %v", step, r.Message, r.Level, want)
		}
	}
	aMinuteLater := func() {
		lk.warnedAt = lk.warnedAt.Add(-warnEvery)
		for k, at := range lk.warnedKinds {
			lk.warnedKinds[k] = at.Add(-warnEvery)
		}
	}
	check("first failure", down, slog.LevelWarn)
	check("second failure", down, slog.LevelDebug)
	check("third failure", down, slog.LevelDebug)
	aMinuteLater()
	check("a minute into the outage", down, slog.LevelWarn)
	var failures int64
	records[0].Attrs(func(a slog.Attr) bool {
		if a.Key == "failures" {
			failures = a.Value.Int64()
		}
		return true
	})
	if failures != 4 {
		t.Errorf("the Warn a minute into the outage says failures=%d, want 4", failures)
	}
	check("the next failure", down, slog.LevelDebug)
	check("credentials refused", denied, slog.LevelError)
	check("credentials refused again", denied, slog.LevelDebug)
	aMinuteLater()
	check("credentials refused a minute later", denied, slog.LevelError)
	check("unreachable again, a minute after its last Warn", down, slog.LevelWarn)
	// Failures that alternate between two kinds (a refused client
	// certificate reads as "certificate required" or "broken pipe", by
	// turns) are throttled each on its own, not logged at every switch.
	check("refused again, under a minute after its last line", denied, slog.LevelDebug)
	check("unreachable again, under a minute after its last line", down, slog.LevelDebug)

	// The relay is back: the next failure is a new outage.
	lk.failures, lk.idle = 0, 1
	l.logAttached(lk, false)
	if !lk.ready {
		t.Fatal("relay attached was not logged")
	}
	check("the first failure of the next outage", down, slog.LevelWarn)

	// A slot that attaches ends the outage too, though "relay attached"
	// may never come (clients take each slot as it attaches).
	lk.connecting = 1
	l.handle(event{link: lk, kind: evAttached})
	check("the first failure after a slot attached", down, slog.LevelWarn)
}
