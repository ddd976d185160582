package relay

import (
	"sync"
	"testing"
	"time"
)

// window returns how long b's window has left (0 if none is open).
func window(b *backendHealth) time.Duration {
	_, until := b.state()
	if until.IsZero() {
		return 0
	}
	return time.Until(until)
}

// TestBackendHealthWindows: failures of one burst (inside an open window,
// even at once from many goroutines) do not lengthen it; a failed probe
// after the window doubles it, up to the maximum; a session opened before
// the outage does not end it, one opened since does, and the next outage
// is logged at Warn again.
func TestBackendHealthWindows(t *testing.T) {
	var b backendHealth
	before := time.Now() // a session opened before the outage
	if b.failingNow() {
		t.Fatal("a new agent is failing")
	}
	var wg sync.WaitGroup
	for range 20 { // a burst: every client sent before the first failure
		wg.Go(b.backendFailed)
	}
	wg.Wait()
	if n, _ := b.state(); n != 1 {
		t.Fatalf("fails = %d after one burst, want 1", n)
	}
	if left := window(&b); !b.failingNow() || left > backendFailBase || left < backendFailBase/2 {
		t.Fatalf("window %v after one burst, want about %v", left, backendFailBase)
	}
	if warn, _ := b.warnOnce(); !warn {
		t.Fatal("the outage's first warnOnce = false, want true")
	}
	if warn, _ := b.warnOnce(); warn {
		t.Fatal("the outage's second warnOnce = true, want false")
	}
	for i, want := range []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 16 * time.Second} {
		b.until.Store(time.Now().Add(-time.Millisecond).UnixNano()) // the window has passed: the next failure is a probe's
		b.backendFailed()
		if left := window(&b); left > want || left < want-time.Second {
			t.Fatalf("failed probe %d: window %v, want %v", i+1, left, want)
		}
	}
	b.sessionSucceeded(before)
	if n, _ := b.state(); n == 0 || !b.failingNow() {
		t.Fatal("a session opened before the outage ended it")
	}
	b.sessionSucceeded(time.Now())
	if n, _ := b.state(); n != 0 || b.failingNow() {
		t.Fatalf("after a session opened during the outage ended well: fails %d, failing %v; want healthy", n, b.failingNow())
	}
	b.backendFailed()
	if warn, _ := b.warnOnce(); !warn {
		t.Fatal("a new outage's warnOnce = false, want true")
	}
}
