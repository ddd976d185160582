//go:build !linux

package splice

import (
	"net"
	"time"
)

// waitUnacked is a no-op where the send queue cannot be inspected: the reset
// may then discard bytes still in flight.
func waitUnacked(*net.TCPConn, time.Duration) {}

// closedState cannot tell a reset taken by a write from a FIN here.
func closedState(socket) bool { return false }

// waitReset does not watch where the socket's error cannot be polled alone.
func waitReset(socket) error { return nil }

// waitReadable returns at once: Read itself waits, holding its buffer.
func waitReadable(socket) error { return nil }

// KernelProgress cannot read the kernel's counters here.
func KernelProgress(net.Conn) (uint64, bool) { return 0, false }
