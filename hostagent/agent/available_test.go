package agent_test

import (
	"io"
	"testing"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/hostagent/agent"
)

// An agent that is not available offers no slots: it starts with none
// (Config.Unavailable), withdraws its idle ones on SetAvailable(false), and
// does not offer again a stream whose session ended. A client meanwhile
// waits in the relay's queue, and is served, with its bytes, once the
// agent is available again.
func TestSetAvailable(t *testing.T) {
	t.Parallel()
	ir := newRelay(t)
	const idle = 3
	l := listen(t, agent.Config{Relays: []string{ir.GRPCAddr}, Idle: idle, Unavailable: true})

	// servedAfterWait dials a client that must wait with no idle slot on
	// the relay, makes the agent available, and checks the session.
	servedAfterWait := func(msg string) {
		t.Helper()
		client := dialClient(t, ir.ClientAddr)
		if _, err := client.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		client.CloseWrite()
		waitStatus(t, ir, "the client waiting", func(st *relayv1.GetStatusResponse) bool { return st.GetPendingClients() == 1 })
		if st, err := ir.Relay.StatusService().GetStatus(t.Context(), &relayv1.GetStatusRequest{}); err != nil || st.GetIdleSlots() != 0 || st.GetActiveSessions() != 0 {
			t.Fatalf("while unavailable: status %v, %v; want no idle slot and no session", st, err)
		}
		l.SetAvailable(true)
		echo(accept(t, l))
		if got, err := io.ReadAll(client); err != nil || string(got) != msg {
			t.Fatalf("client read %q, %v; want %q", got, err, msg)
		}
	}
	servedAfterWait("first")

	// Idle slots are withdrawn.
	waitStatus(t, ir, "the idle slots", func(st *relayv1.GetStatusResponse) bool { return st.GetIdleSlots() == idle })
	l.SetAvailable(false)
	waitStatus(t, ir, "the idle slots withdrawn", func(st *relayv1.GetStatusResponse) bool { return st.GetIdleSlots() == 0 })
	servedAfterWait("second")

	// A session open when the agent became unavailable goes on; its stream
	// is not offered again when it ends.
	waitStatus(t, ir, "the idle slots", func(st *relayv1.GetStatusResponse) bool { return st.GetIdleSlots() == idle })
	client := dialClient(t, ir.ClientAddr)
	conn := accept(t, l)
	l.SetAvailable(false)
	waitStatus(t, ir, "the idle slots withdrawn", func(st *relayv1.GetStatusResponse) bool { return st.GetIdleSlots() == 0 })
	client.Write([]byte("open"))
	client.CloseWrite()
	echo(conn)
	if got, err := io.ReadAll(client); err != nil || string(got) != "open" {
		t.Fatalf("session open across SetAvailable(false): client read %q, %v", got, err)
	}
	waitStatus(t, ir, "the session ended", func(st *relayv1.GetStatusResponse) bool { return st.GetActiveSessions() == 0 })
	servedAfterWait("third")
	waitStats(t, l, "4 sessions counted", func(s agent.Stats) bool { return s.SessionsTotal == 4 })
}
