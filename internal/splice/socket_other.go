//go:build !linux

package splice

import (
	"net"
	"time"
)

// waitUnacked is a no-op where the send queue cannot be inspected: the reset
// may then discard bytes still in flight.
func waitUnacked(*net.TCPConn, time.Duration) {}

// waitReset does not watch where the socket's error cannot be polled alone.
func waitReset(socket) error { return nil }

// waitReadable returns at once: Read itself waits, holding its buffer.
func waitReadable(socket) error { return nil }
