package agent

import (
	"sync"
	"testing"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
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
		t.Error("done after a withdraw = false, want true (the stream is to be given up)")
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
