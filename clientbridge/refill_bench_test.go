package clientbridge

import (
	"fmt"
	"testing"
)

// BenchmarkCreditGivenBack: a host's idle entry taken and added again, one
// at a time, with n held: the steady state of a busy --slot-credits host
// (deferred) and of idle streams (ready). Each credit given back moved
// every entry of its host while ready and deferred entries shared one
// slice: 1.6 µs at 10,000 credits against 63 ns for ready slots.
func BenchmarkCreditGivenBack(b *testing.B) {
	for _, n := range []int{100, 10000} {
		for _, isDeferred := range []bool{true, false} {
			b.Run(fmt.Sprintf("n=%d/deferred=%v", n, isDeferred), func(b *testing.B) {
				br := newBridge(b, Config{})
				var slot Slot = newSlot(b, newHost("h1", 1))
				if isDeferred {
					slot = deferredSlot{slot.(*fakeSlot)}
				}
				br.AddIdleN("default", slot, n)
				b.ReportAllocs()
				for b.Loop() {
					br.mu.Lock()
					s := br.svc("default")
					s.idle["h1"].take() // as takeIdleLocked does
					s.nIdle--
					br.mu.Unlock()
					br.AddIdle("default", slot) // given back
				}
			})
		}
	}
}
