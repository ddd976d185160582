package agent_test

import (
	"context"
	"fmt"
	"testing"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/hostagent/agent"
)

// TestLongSessionNoSlotPingPong: with MaxSessions reached and a long
// session on one relay, short sessions on both relays ride their streams
// again. The stream of a session that ended was given to the other relay
// by one count of slots, and rebalance moved a slot back by another: a
// withdraw and a new stream every few sessions, for as long as clients came.
func TestLongSessionNoSlotPingPong(t *testing.T) {
	t.Parallel()
	a, b := newRelay(t), newRelay(t)
	l := listen(t, agent.Config{Relays: []string{a.GRPCAddr, b.GRPCAddr}, Idle: 2, MaxSessions: 4})
	waitStatus(t, b, "two slots on each relay", func(*relayv1.GetStatusResponse) bool {
		return idleOf(t, a) == 2 && idleOf(t, b) == 2
	})
	dialClient(t, a.ClientAddr) // the long session
	accept(t, l)
	before := l.Stats().StreamsOpened
	const sessions = 40
	for i := range sessions {
		ir := a
		if i%2 == 1 {
			ir = b
		}
		echoOnce(t, ir, l, fmt.Sprintf("short %d", i))
	}
	if n := l.Stats().StreamsOpened - before; n > 4 {
		t.Errorf("%d streams opened for %d short sessions beside a long one, want the streams used again (at most 4)", n, sessions)
	}
}

// idleOf returns the idle slots (or credits) relay ir holds.
func idleOf(tb testing.TB, ir *inProcessRelay) uint32 {
	tb.Helper()
	st, err := ir.Relay.StatusService().GetStatus(context.Background(), &relayv1.GetStatusRequest{})
	if err != nil {
		tb.Fatal(err)
	}
	return st.GetIdleSlots()
}
