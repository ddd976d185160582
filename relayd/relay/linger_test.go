package relay_test

import (
	"fmt"
	"io"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/relayd/relay"
)

// warmSlot attaches a sequential slot, runs one session on it, and offers
// it again with idle_linger d.
func warmSlot(t *testing.T, tr *testRelay, host string, d time.Duration) *hostStream {
	t.Helper()
	h := tr.attach(t)
	w := h.hello(&relayv1.Hello{HostId: host, SequentialSessions: true})
	s := &session{host: h, client: dialClient(t, tr.clientAddr), welcome: w}
	s.open = h.expectOpen()
	s.roundTrip(t, "first")
	cleanEnd(t, s)
	h.expectSessionEnd(s.open)
	h.hello(&relayv1.Hello{IdleLinger: durationpb.New(d)})
	return h
}

// TestIdleLingerWithdrawsWithOK: the relay withdraws a slot offered again
// with Hello.idle_linger that no client took within it, and ends its
// stream with OK; the host is detached.
func TestIdleLingerWithdrawsWithOK(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{})
	h := warmSlot(t, tr, "warm", 20*time.Millisecond)
	h.expectEnd(0)
	if st := tr.getStatus(t); st.GetIdleSlots() != 0 || st.GetHosts() != 0 {
		t.Fatalf("status after the linger: %v", st)
	}
}

// TestIdleLingerRaceKeepsClient: a client that arrives as a slot's
// idle_linger passes is either served by that slot or, the slot
// withdrawn, given to the next slot with its bytes (lingers of 50 to 500
// µs, so that both happen; a review saw 25-43 of 150 served).
func TestIdleLingerRaceKeepsClient(t *testing.T) {
	t.Parallel()
	tr := newTestRelay(t, relay.Config{})
	served, requeued := 0, 0
	for i := range 150 {
		h := warmSlot(t, tr, "warm", time.Duration(i%10+1)*50*time.Microsecond)
		c := dialClient(t, tr.clientAddr)
		msg := fmt.Sprintf("c%d", i)
		c.Write([]byte(msg))
		resp, err := h.stream.Recv()
		if err == nil && resp.GetOpen() != nil {
			served++
			if got := string(h.recvData(len(msg), 0)); got != msg {
				t.Fatalf("warm slot got %q, want %q", got, msg)
			}
			h.cancel()
			c.Close()
			continue
		}
		if err != io.EOF {
			t.Fatalf("iteration %d: frame %v, err %v; want Open or OK", i, resp, err)
		}
		requeued++
		other := tr.attach(t)
		other.hello(&relayv1.Hello{HostId: "other"})
		other.expectOpen()
		if got := string(other.recvData(len(msg), 0)); got != msg {
			t.Fatalf("iteration %d: the next slot got %q, want %q", i, got, msg)
		}
		other.cancel()
		c.Close()
	}
	t.Logf("served by the warm slot %d, withdrawn and given on %d", served, requeued)
}
