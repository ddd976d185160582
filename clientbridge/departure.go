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
