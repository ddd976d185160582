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
	outcomeLeft                 // the client reset its connection
	outcomeData                 // the client sent bytes or a FIN; they stay unread
)

// watchDeparture waits until conn is readable, without consuming anything,
// or until its read deadline passes. A waiting client that resets is
// noticed at once and leaves the queue. A FIN, with or without bytes
// before it, keeps its place: a half-closed client can still read, and
// the host must see its FIN (a client that closed both ways cannot be told
// from it without writing; its session ends with a reset when the host
// answers).
func watchDeparture(conn *net.TCPConn) outcome {
	raw, err := conn.SyscallConn()
	if err != nil {
		return outcomeWoken
	}
	res := outcomeWoken
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, rerr := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case rerr == unix.EAGAIN || rerr == unix.EINTR:
			return false // not readable yet: park in the poller
		case rerr != nil:
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
