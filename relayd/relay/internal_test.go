package relay

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestStaleLingerWakesLeaveRoomForDrain: linger timers that fire as their
// waits end (a client came) leave stale wake-ups in the slot's woken
// channel; however many do, an operator's drain still gets in.
func TestStaleLingerWakesLeaveRoomForDrain(t *testing.T) {
	a := &attachment{woken: make(chan idleOutcome, 2)}
	for range 3 { // three waits, each one's timer firing as a client came
		gen := a.lingerGen.Add(1)
		a.lingerFired(gen)
	}
	a.lingerFired(a.lingerGen.Load() - 1) // an earlier wait's timer: quiet
	wake(a.woken, idleDrained)
	var got []idleOutcome
	for len(a.woken) > 0 {
		how := <-a.woken
		if how == idleLingered {
			a.lingerTaken()
		}
		got = append(got, how)
	}
	if len(got) != 2 || got[0] != idleLingered || got[1] != idleDrained {
		t.Fatalf("woken held %v, want [lingered drained] (%v, %v)", got, idleLingered, idleDrained)
	}
	// Taken, a linger wake-up can be queued again.
	a.lingerFired(a.lingerGen.Load())
	if len(a.woken) != 1 {
		t.Fatalf("woken holds %d after a fresh linger, want 1", len(a.woken))
	}
}

// TestDefaultRelayIDs: hostname-pid and a random part, so that two relays
// with one hostname and pid (containers of one pod) are told apart.
func TestDefaultRelayIDs(t *testing.T) {
	h, _ := os.Hostname()
	prefix := fmt.Sprintf("%s-%d-", h, os.Getpid())
	seen := map[string]bool{}
	for range 3 {
		id := defaultRelayID()
		if !strings.HasPrefix(id, prefix) || len(id) != len(prefix)+8 {
			t.Fatalf("default relay id %q, want %sxxxxxxxx", id, prefix)
		}
		seen[id] = true
	}
	if len(seen) == 1 { // 1 in 2^64 by chance
		t.Fatalf("three default relay ids were all %v", seen)
	}
}
