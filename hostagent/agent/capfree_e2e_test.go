package agent_test

import (
	"context"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/hostagent/agent"
	"github.com/relayproject/relay/relayd/relay"
)

// TestCreditStreamEndAtCapGrantsNoMore: a --slot-credits agent capped by
// relayd's --max-slots-per-host (1) holds one credit, the room the cap
// showed. Its credit stream ends (the relay refuses its token at an Offer,
// which the agent answers with a new stream at once); the new stream asks
// for that credit again and the waiting client claims it. The agent must
// then hold no credit: the cap is full. It held one more (capFreed counted
// again once the new stream had its credits), whose claim the cap refuses.
func TestCreditStreamEndAtCapGrantsNoMore(t *testing.T) {
	t.Parallel()
	var refuseOnce atomic.Bool
	r := newRelayConfig(t, relay.Config{MaxSlotsPerHost: 1, Authorize: func(context.Context, string, string) error {
		if refuseOnce.CompareAndSwap(true, false) {
			return status.Error(codes.Unauthenticated, "token rotated")
		}
		return nil
	}})
	l := listen(t, agent.Config{Relays: []string{r.GRPCAddr}, Idle: 2, SlotCredits: true, WarmLinger: 20 * time.Millisecond,
		BackoffBase: time.Minute, BackoffMax: time.Minute}) // no credit past the room during the test
	waitStatus(t, r, "the credits", idleSlots(2))
	// A session fills the cap; B's claims are refused: capped, no credit left.
	a := dialClient(t, r.ClientAddr)
	aConn := accept(t, l)
	b := dialClient(t, r.ClientAddr)
	deadline := time.Now().Add(hangGuard)
	for r.Relay.LimitHits()[relay.LimitSlotsPerHost] == 0 || l.Stats().CappedRelays != 1 || l.Stats().IdleSlots != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not capped with no credit left: %+v, %d refused", l.Stats(), r.Relay.LimitHits()[relay.LimitSlotsPerHost])
		}
		runtime.Gosched()
	}
	for _, c := range []net.Conn{a, b} { // B once A's session has ended
		conn := aConn
		if c == b {
			conn = accept(t, l)
		}
		c.(*net.TCPConn).CloseWrite()
		echo(conn)
		io.ReadAll(c)
	}
	// The stream, warm, is withdrawn: its room comes back as one credit.
	deadline = time.Now().Add(hangGuard)
	for {
		hosts, err := r.Relay.StatusService().ListHosts(context.Background(), &relayv1.ListHostsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(hosts.GetHosts()) == 1 && hosts.GetHosts()[0].GetIdleSlots() == 1 && hosts.GetHosts()[0].GetIdleCredits() == 1 &&
			hosts.GetHosts()[0].GetActiveSessions() == 0 && l.Stats().IdleSlots == 1 && l.Stats().CappedRelays == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the room never came back as one credit: %v, %+v", hosts, l.Stats())
		}
		runtime.Gosched()
	}
	refuseOnce.Store(true) // the next Authorize is the Offer's for C
	c := dialClient(t, r.ClientAddr)
	defer c.Close()
	cConn := accept(t, l) // claimed on the new credit stream
	defer cConn.Close()
	deadline = time.Now().Add(hangGuard)
	for l.Stats().ActiveSessions != 1 { // the manager has seen C's claim welcomed and opened
		if time.Now().After(deadline) {
			t.Fatalf("C's session never counted: %+v", l.Stats())
		}
		runtime.Gosched()
	}
	if refuseOnce.Load() {
		t.Fatal("the relay never refused the credit stream's token")
	}
	if st := l.Stats(); st.IdleSlots != 0 {
		t.Errorf("with the cap (1) full, the agent holds %d credits, want 0: each is a claim the cap refuses", st.IdleSlots)
	}
}
