package agent_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/relayproject/relay/clientbridge"
	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/hostagent/agent"
)

// waitStatus spins until cond holds for the relay's status; no event says
// when a client has joined the relay's queue.
func waitStatus(tb testing.TB, ir *inProcessRelay, what string, cond func(*relayv1.GetStatusResponse) bool) {
	tb.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		st, err := ir.Relay.StatusService().GetStatus(context.Background(), &relayv1.GetStatusRequest{})
		if err != nil {
			tb.Fatal(err)
		}
		if cond(st) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("relay status never showed %s: %v", what, st)
		}
		runtime.Gosched()
	}
}

// waitStats spins until cond holds for the agent's Stats and returns them:
// the agent's manager counts a session, and a slot offered again, a little
// after the client and the relay have seen them.
func waitStats(tb testing.TB, l *agent.Listener, what string, cond func(agent.Stats) bool) agent.Stats {
	tb.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		st := l.Stats()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			tb.Fatalf("agent stats never showed %s: %+v", what, st)
		}
		runtime.Gosched()
	}
}

// While nobody calls Accept, the agent stops replacing slots once Idle
// sessions wait for Accept: the clients behind them wait at the relay
// instead of piling up, each with a stream, inside the agent.
func TestAcceptBacklogBounded(t *testing.T) {
	t.Parallel()
	// Clients that get no slot are closed after a short wait, so "no more
	// sessions than that" shows as an event: their rejection.
	ir := newRelayWith(t, clientbridge.Config{AssignTimeout: time.Second})
	const idle, clients = 2, 6
	// One stream per session, so that a replacement is opened at each Open
	// (with sequential sessions, fewer: TestSequentialSessions).
	l := listen(t, agent.Config{Relays: []string{ir.GRPCAddr}, Idle: idle, StreamPerSession: true})
	waitStatus(t, ir, "the idle slots", func(st *relayv1.GetStatusResponse) bool { return st.GetIdleSlots() == idle })
	for range clients {
		dialClient(t, ir.ClientAddr)
	}
	// Sessions: the two idle slots, plus the one replacement opened while
	// only one session waited for Accept.
	const open = 2*idle - 1
	waitStatus(t, ir, "the clients beyond the backlog rejected", func(st *relayv1.GetStatusResponse) bool {
		return st.GetClientsRejected() == clients-open
	})
	if n := ir.Relay.ActiveSessions(); n != open {
		t.Fatalf("relay has %d sessions, want %d", n, open)
	}
	// Accepting lets the sessions through, and the pool refills.
	for range open {
		accept(t, l).Close()
	}
	waitStatus(t, ir, "the pool refilled", func(st *relayv1.GetStatusResponse) bool { return st.GetIdleSlots() == idle })
}
