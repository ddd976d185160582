package splice

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// waitUnacked polls the socket's send queue (bytes written but not yet
// acknowledged by the peer) until it is empty or maxWait passes. The kernel
// offers no event for "all acknowledged", so this is the one bounded poll in
// the project: it only runs while a session is being aborted.
func waitUnacked(c *net.TCPConn, maxWait time.Duration) {
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	deadline := time.Now().Add(maxWait)
	step := 100 * time.Microsecond
	for {
		var queued int
		cerr := raw.Control(func(fd uintptr) {
			queued, err = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
		})
		if cerr != nil || err != nil || queued == 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(step)
		step = min(2*step, 20*time.Millisecond)
	}
}
