package clientbridge

import (
	"errors"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// watchReset waits, for a client that is talking already (its bytes stay
// unread for the session), until the connection is reset or its read
// deadline passes. A FIN after bytes is not leaving: the client sent a
// request and half-closed, and the bytes are delivered. A reset is: nothing
// can be answered, and it must not hold a place in the queue, nor take a
// slot whose host would see the session aborted.
//
// The poller wakes it on every event of the socket (new bytes, FIN, RST);
// poll(2) tells a reset (POLLHUP or POLLERR: the connection is closed both
// ways) from the rest without consuming the error.
func watchReset(conn *net.TCPConn) outcome {
	raw, err := conn.SyscallConn()
	if err != nil {
		return outcomeWoken
	}
	res := outcomeWoken
	err = raw.Read(func(fd uintptr) bool {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if n, perr := unix.Poll(pfd, 0); perr == nil && n > 0 && pfd[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0 {
			res = outcomeLeft
			return true
		}
		return false // park in the poller until the next event
	})
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return outcomeLeft
	}
	return res
}
