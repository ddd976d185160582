package agent

import (
	"slices"
	"sync"
	"time"
)

// RelayStats is the agent's view of one relay address.
type RelayStats struct {
	// Addr is the address dialled: a Config.Relays entry, or one address
	// of its DNS name.
	Addr string
	// Up: the relay has welcomed this agent's slots (or credits) since
	// its last failure, and is not draining it. False before the first
	// welcome, while it fails (unreachable, TLS, tokens) and while it
	// drains this agent; a relay whose slot cap holds the agent is up.
	Up bool
	// IdleSlots are the slots (or credits) attached there and waiting
	// for a client; ActiveSessions the sessions open there now.
	IdleSlots, ActiveSessions int
	// Failures counts the attempts that failed in a row since the last
	// welcome.
	Failures int
	// Capped: the relay's slot cap holds this agent's slots below what it
	// would open now. Drained: the relay asked for no slots for now.
	Capped, Drained bool
}

// relayView is what Relays returns: written by the manager after each
// event, read by anyone.
type relayView struct {
	mu      sync.Mutex
	stats   []RelayStats
	scratch []RelayStats // the manager's
}

// Relays returns the agent's view of each relay address, in the order the
// agent learnt them. It tells which relay of several is down, which the
// summed Stats cannot.
func (l *Listener) Relays() []RelayStats {
	l.relays.mu.Lock()
	defer l.relays.mu.Unlock()
	return slices.Clone(l.relays.stats)
}

// publishRelays updates what Relays returns; on the manager goroutine. It
// allocates only when something changed.
func (l *Listener) publishRelays(now time.Time) {
	v := &l.relays
	s := v.scratch[:0]
	for _, lk := range l.links {
		drained := now.Before(lk.drainedUntil)
		held := lk.idle + lk.active + lk.credits
		s = append(s, RelayStats{
			Addr:           lk.addr,
			Up:             !drained && (lk.ready || held > 0 && (lk.failures == 0 || lk.capped)),
			IdleSlots:      lk.idle + lk.credits,
			ActiveSessions: lk.active,
			Failures:       lk.failures,
			Capped:         lk.capped,
			Drained:        drained,
		})
	}
	v.scratch = s
	v.mu.Lock()
	if !slices.Equal(s, v.stats) {
		v.stats = slices.Clone(s)
	}
	v.mu.Unlock()
}
