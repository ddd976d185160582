package relay

// TestHooks are called where a race is decided (see testHooks); nil ones
// are skipped.
type TestHooks = testHooks

// SetTestHooks makes r call h's hooks. Set them before the first host
// attaches.
func SetTestHooks(r *Relay, h TestHooks) { r.hooks.Store(&h) }
