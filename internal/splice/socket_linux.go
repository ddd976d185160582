package splice

import (
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// tcpClose is TCP_CLOSE from linux/tcp_states.h.
const tcpClose = 7

// closedState reports whether c is in TCP state CLOSE. Read right after a
// read returned 0, and while this side has not begun to shut down its
// writing half, CLOSE means the peer reset the connection, not that it sent
// a FIN (which leaves CLOSE_WAIT): Linux reports a reset once, to whichever
// call meets it first, and when a write has taken it a read returns 0 as if
// at a FIN. (Once this side has sent its own FIN, CLOSE is also where a
// clean close ends, so the caller checks that after reading the state.)
// A socket already closed counts as CLOSE: while a direction still reads
// it, only an abort (a Reset) closes it.
func closedState(c socket) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return true
	}
	closed := true
	if err := raw.Control(func(fd uintptr) {
		info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		closed = err != nil || info.State == tcpClose
	}); err != nil {
		return true
	}
	return closed
}

// waitUnacked polls the socket's send queue (bytes written but not yet
// acknowledged by the peer) until it is empty or maxWait passes. The kernel
// offers no event for "all acknowledged", so this is the one bounded poll in
// the project: it only runs while a session is being aborted.
func waitUnacked(c *net.TCPConn, maxWait time.Duration) {
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	start := time.Now()
	deadline := start.Add(maxWait)
	limit := start.Add(ResetDrainLimit)
	last := -1
	step := 100 * time.Microsecond
	for {
		var queued int
		closed := false
		cerr := raw.Control(func(fd uintptr) {
			// Once the peer has reset the connection (state CLOSE), the
			// send queue count stays where the RST froze it: nothing more
			// will be acknowledged, so there is nothing to wait for.
			var info *unix.TCPInfo
			if info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil && info.State == tcpClose {
				closed = true
				return
			}
			queued, err = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
		})
		now := time.Now()
		if hurried := start.Add(maxWait); hurry.Load() && hurried.Before(deadline) {
			deadline = hurried
		}
		if cerr != nil || err != nil || closed || queued == 0 {
			return
		}
		if last >= 0 && queued < last && !hurry.Load() {
			// The peer takes them, if slowly (a client on a slow link):
			// maxWait counts from its last progress. Looks a few
			// milliseconds apart then, not 100 µs: a client acknowledging
			// at each look would keep two system calls per 100 µs going.
			// Progress is looked at before the deadline: a look that comes
			// late (this goroutine starved of CPU) must not reset a peer
			// that took bytes meanwhile.
			deadline, step = now.Add(maxWait), 2*time.Millisecond
		}
		if now.After(deadline) || now.After(limit) {
			return
		}
		last = queued
		time.Sleep(step)
		step = min(2*step, 20*time.Millisecond)
	}
}

// waitReset blocks until c, whose peer has already sent its FIN, is reset,
// and returns that error; it returns nil when c's read deadline passes or
// c is closed. After a FIN, recv reports EOF and never the reset, so the
// socket's pending error (SO_ERROR) is what is checked, each time the
// poller says the socket's state changed.
func waitReset(c socket) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	var reset error
	err = raw.Read(func(fd uintptr) bool {
		soerr, gerr := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		switch {
		case gerr != nil:
			return true
		case soerr == 0:
			return false // nothing yet: park in the poller
		default:
			reset = readError(syscall.Errno(soerr))
		}
		return true
	})
	if err != nil {
		return nil // deadline or closed: stop watching
	}
	return reset
}

// waitReadable parks until c has bytes (or an EOF or error) to read, without
// reading them, or until c's read deadline passes or c is closed. A pending
// socket error (a reset) is returned: the peek has consumed it, and a later
// Read would only see EOF.
func waitReadable(c socket) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil // let Read report it
	}
	var sockErr error
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, rerr := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch rerr {
		case unix.EAGAIN, unix.EINTR:
			return false
		case nil:
		default:
			sockErr = os.NewSyscallError("read", rerr)
		}
		return true
	})
	if err != nil {
		return err
	}
	return sockErr
}

// KernelProgress returns a count that moves whenever c's peer takes bytes
// (its acknowledgements) or sends some (as the kernel receives them),
// whether or not a read or write of c's owner has returned: a write to a
// peer that reads slowly blocks until much of the send buffer is free,
// which may take longer than an idle timeout while bytes flow all along.
// ok is false where TCP_INFO cannot be read (not a TCP socket, closed).
func KernelProgress(c net.Conn) (n uint64, ok bool) {
	sc, isSock := c.(syscall.Conn)
	if !isSock {
		return 0, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	if err := raw.Control(func(fd uintptr) {
		info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		if err == nil {
			n, ok = info.Bytes_acked+info.Bytes_received, true
		}
	}); err != nil {
		return 0, false
	}
	return n, ok
}
