// Package portclaim hands out loopback ports that no other socket on the
// machine takes while they are claimed, even when nothing listens on them:
// a test (or the conformance suite) that stops a relay and starts it again
// on the same addresses needs its ports to stay free in between.
//
// A port from a listen on port 0 does not: it comes from the kernel's
// ephemeral range (net.ipv4.ip_local_port_range), so once closed it can be
// given to another test's listener or outgoing connection, and the hosts
// redialling the stopped relay reach that socket instead. The ports handed
// out here lie below that range, which the kernel never picks on its own,
// and each is claimed with an flock on a file under the system's temporary
// directory, which every process of the same user using this package
// honours.
package portclaim

import "os"

// Claim is one claimed port.
type Claim struct {
	// Addr is "127.0.0.1:PORT". Nothing listens there: the claimant does.
	Addr string
	lock *os.File
}

// Release gives the port back. The claimant must have closed its listener
// (or stopped the process listening) first.
func (c *Claim) Release() {
	if c.lock != nil {
		c.lock.Close() // drops the flock
		c.lock = nil
	}
}

// TB is the part of testing.TB that MustAddr uses.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// MustAddr claims a port for the rest of the test (its cleanups run in
// reverse order, so one registered after this, such as stopping the process
// that listens there, runs before the release).
func MustAddr(tb TB) string {
	tb.Helper()
	c, err := New()
	if err != nil {
		tb.Fatalf("%v", err)
	}
	tb.Cleanup(c.Release)
	return c.Addr
}
