package agent

import (
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
)

// RelayStats is the agent's view of one relay address.
type RelayStats struct {
	// Addr is the address dialled: a Config.Relays entry, or one address
	// of its DNS name.
	Addr string
	// Up: the relay serves this agent as far as it knows: it welcomed a
	// slot and nothing failed there since, or only its slot cap refused
	// more; or, not tried yet or lost (unreachable, its connection
	// broken), a connection to it is up now (a relay the agent has no slot
	// to try on while MaxSessions is reached). False while it fails
	// (unreachable, TLS, tokens, a refused Hello), while it drains this
	// agent, and for an address not reached yet.
	Up bool
	// IdleSlots are the slots (or credits) attached there and waiting
	// for a client; ActiveSessions the sessions open there now.
	IdleSlots, ActiveSessions int
	// Failures counts the attempts that failed in a row since the last
	// welcome; not the refusals at a slot cap (Capped).
	Failures int
	// Capped: the relay's slot cap holds this agent's slots below what it
	// would open now. Drained: the relay asked for no slots for now.
	Capped, Drained bool
}

// relayEntry is a RelayStats as the manager last saw it, and what Relays
// needs to see whether a lost relay is back.
type relayEntry struct {
	RelayStats
	lost bool               // not tried yet, or failing with Unavailable: up once one of ccs is
	ccs  []*grpc.ClientConn // its links' connections (safe to ask from any goroutine)
}

// relayView is what Relays reads: written by the manager after each event.
type relayView struct {
	mu      sync.Mutex
	entries []relayEntry
	scratch []relayEntry // the manager's
}

// Relays returns the agent's view of each relay address, in the order the
// agent learnt them; an address reached by two links (a --relay name and
// the address it resolves to, or an address back in DNS while its retired
// link still has sessions) is listed once. It tells which relay of several
// is down, which the summed Stats cannot.
func (l *Listener) Relays() []RelayStats {
	l.relays.mu.Lock()
	defer l.relays.mu.Unlock()
	out := make([]RelayStats, len(l.relays.entries))
	for i, e := range l.relays.entries {
		out[i] = e.RelayStats
		// Whether a lost relay is back is asked now: the manager may
		// have no reason to look (no slot to open there at MaxSessions),
		// and gRPC reconnects an idle connection only when asked to.
		if e.lost && !e.Drained && readyOrConnect(e.ccs) {
			out[i].Up = true
		}
	}
	return out
}

// readyOrConnect reports whether one of ccs is connected, and has the idle
// ones connect.
func readyOrConnect(ccs []*grpc.ClientConn) bool {
	up := false
	for _, cc := range ccs {
		switch cc.GetState() {
		case connectivity.Ready:
			up = true
		case connectivity.Idle:
			cc.Connect()
		}
	}
	return up
}

// publishRelays updates what Relays reads; on the manager goroutine,
// without allocating once the lists have grown (but for an address reached
// by two links).
func (l *Listener) publishRelays(now time.Time) {
	v := &l.relays
	s := v.scratch[:0]
	for _, lk := range l.links {
		drained := now.Before(lk.drainedUntil)
		up := !drained && !lk.denied && (lk.failures == 0 && lk.welcomed || lk.capped)
		failures := lk.failures
		if lk.capped {
			failures = 0 // every failure while capped is a refusal at the cap
		}
		e := relayEntry{
			RelayStats: RelayStats{Addr: lk.addr, Up: up, IdleSlots: lk.idle + lk.credits, ActiveSessions: lk.active,
				Failures: failures, Capped: lk.capped, Drained: drained},
			lost: !up && !lk.denied && (lk.failures > 0 && lk.lostConn || lk.failures == 0 && !lk.welcomed),
		}
		if e.lost {
			e.ccs = lk.ccs // only a lost link's connections say it is back
		}
		if i := slices.IndexFunc(s, func(o relayEntry) bool { return o.Addr == e.Addr }); i >= 0 {
			// One address, two links: one series (two would fail the
			// whole scrape, a review).
			o := &s[i]
			o.Up = o.Up || e.Up
			o.IdleSlots += e.IdleSlots
			o.ActiveSessions += e.ActiveSessions
			o.Failures = min(o.Failures, e.Failures)
			o.Capped, o.Drained = o.Capped || e.Capped, o.Drained && e.Drained
			o.lost = o.lost || e.lost
			o.ccs = append(slices.Clip(o.ccs), e.ccs...)
			continue
		}
		s = append(s, e)
	}
	v.scratch = s
	v.mu.Lock()
	v.entries = append(v.entries[:0], s...) // Relays hands out copies
	v.mu.Unlock()
}
