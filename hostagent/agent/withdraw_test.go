package agent

import (
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/internal/portclaim"
)

// sendCounter is an Attach stream that counts the Withdraw frames sent.
type sendCounter struct {
	relayv1.HostService_AttachClient // nil: only Send is called
	mu                               sync.Mutex
	withdraws                        int
}

func (s *sendCounter) Send(req *relayv1.AttachRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.GetWithdraw() != nil {
		s.withdraws++
	}
	return nil
}

// A Withdraw goes out only while the slot is idle, once; the slot learns
// whether one went out before its Open, and none goes out after it (the
// session's frames own the stream then).
func TestWithdrawerOrder(t *testing.T) {
	t.Parallel()
	s := &sendCounter{}
	w := newWithdrawer(s, true)
	w.withdraw()
	w.withdraw()
	if !w.done() {
		t.Error("done after a withdraw = false, want true")
	}
	w.withdraw()
	if s.withdraws != 1 {
		t.Errorf("%d Withdraw frames, want 1", s.withdraws)
	}

	s = &sendCounter{}
	w = newWithdrawer(s, true)
	if w.done() {
		t.Error("done without a withdraw = true")
	}
	w.withdraw() // late: Open came first
	if s.withdraws != 0 {
		t.Errorf("%d Withdraw frames after Open, want 0", s.withdraws)
	}

	if newWithdrawer(s, false) != nil {
		t.Error("a withdrawer for a relay that does not take Withdraw")
	}
	var none *withdrawer
	if none.done() {
		t.Error("nil withdrawer: done = true")
	}
}

// While the relay short of slots is failing and its connection is down,
// rebalance withdraws nothing (each withdrawn slot would become a probe
// that fails, and come back: a stream churned every backoff), and looks
// again later.
func TestRebalanceWaitsForConnection(t *testing.T) {
	t.Parallel()
	addr := portclaim.MustAddr(t) // nothing listens: connections are refused
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	now := time.Now()
	down := &link{addr: addr, ccs: []*grpc.ClientConn{cc}, failures: 3, retryAt: now.Add(-time.Second)}
	s := &sendCounter{}
	up := &link{addr: "up", idle: 2, withdrawable: []*withdrawer{newWithdrawer(s, true), newWithdrawer(s, true)}}
	l := &Listener{cfg: Config{Idle: 10, MaxSessions: 2}, log: slog.New(slog.DiscardHandler), links: []*link{down, up}, serving: []*link{down, up}}
	var next time.Time
	l.rebalance(now, &next)
	l.slots.Wait()
	if up.withdrawing != 0 || len(up.withdrawable) != 2 || s.withdraws != 0 {
		t.Fatalf("withdrew a slot toward a relay that is down (withdrawing %d, %d Withdraw sent)", up.withdrawing, s.withdraws)
	}
	if next.IsZero() || next.Before(now) {
		t.Fatalf("next look %v, want one scheduled after now", next)
	}

	// A relay that is reachable (here: no failures) gets its share.
	down.failures = 0
	l.rebalance(now, &next)
	l.slots.Wait()
	if up.withdrawing != 1 || s.withdraws != 1 {
		t.Fatalf("withdrawing %d, %d Withdraw sent; want 1 toward the relay short of slots", up.withdrawing, s.withdraws)
	}
}
