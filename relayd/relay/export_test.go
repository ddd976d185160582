package relay

import "time"

// TestHooks are called where a race is decided (see testHooks); nil ones
// are skipped.
type TestHooks = testHooks

// SetTestHooks makes r call h's hooks. Set them before the first host
// attaches.
func SetTestHooks(r *Relay, h TestHooks) { r.hooks.Store(&h) }

// SetLimitClock makes r's limit lines read their time from now.
func SetLimitClock(r *Relay, now func() time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.now = now
}
