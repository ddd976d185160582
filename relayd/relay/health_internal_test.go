package relay

import (
	"testing"
	"time"
)

// TestBackendHealthWindows: failures of one burst (inside an open window)
// do not lengthen it; a failed probe after the window doubles it, up to
// the maximum; a session that ends otherwise makes the connection healthy
// and lets the next outage be logged at Warn again.
func TestBackendHealthWindows(t *testing.T) {
	var b backendHealth
	if b.failing() {
		t.Fatal("a new connection is failing")
	}
	for range 20 { // a burst: every client sent before the first failure
		b.sessionEnded(true)
	}
	if n := b.fails.Load(); n != 1 {
		t.Fatalf("fails = %d after one burst, want 1", n)
	}
	if left := time.Until(time.Unix(0, b.until.Load())); !b.failing() || left > backendFailBase || left < backendFailBase/2 {
		t.Fatalf("window %v after one burst, want about %v", left, backendFailBase)
	}
	b.warned.Store(true)
	for i, want := range []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 16 * time.Second} {
		b.until.Store(time.Now().Add(-time.Millisecond).UnixNano()) // the window has passed: the next failure is a probe's
		b.sessionEnded(true)
		if left := time.Until(time.Unix(0, b.until.Load())); left > want || left < want-time.Second {
			t.Fatalf("failed probe %d: window %v, want %v", i+1, left, want)
		}
	}
	b.sessionEnded(false)
	if b.failing() || b.fails.Load() != 0 || b.warned.Load() {
		t.Fatalf("after a session that ended otherwise: failing %v, fails %d, warned %v; want healthy", b.failing(), b.fails.Load(), b.warned.Load())
	}
}
