package clientbridge

import (
	"errors"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

type outcome int

const (
	outcomeWoken outcome = iota // the read deadline passed (a slot came, or time ran out)
	outcomeLeft                 // the client closed or reset its connection
	outcomeData                 // the client sent bytes; they stay unread
)

// watchDeparture waits until conn is readable, without consuming anything,
// or until its read deadline passes. A waiting client that sends FIN or RST
// is noticed at once and leaves the queue.
func watchDeparture(conn *net.TCPConn) outcome {
	raw, err := conn.SyscallConn()
	if err != nil {
		return outcomeWoken
	}
	res := outcomeWoken
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, rerr := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case rerr == unix.EAGAIN || rerr == unix.EINTR:
			return false // not readable yet: park in the poller
		case rerr != nil || n == 0:
			res = outcomeLeft
		default:
			res = outcomeData
		}
		return true
	})
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return outcomeLeft
	}
	return res
}

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
