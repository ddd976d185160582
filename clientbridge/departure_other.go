//go:build !linux

package clientbridge

import (
	"errors"
	"net"
	"os"
)

// watchReset waits for a client that is talking already until its read
// deadline passes (a slot came, or time ran out). Only Linux's poll(2) is
// relied on to tell a reset from a FIN after bytes (see the Linux file);
// elsewhere such a client keeps its place until then.
func watchReset(conn *net.TCPConn) outcome {
	raw, err := conn.SyscallConn()
	if err != nil {
		return outcomeWoken
	}
	err = raw.Read(func(uintptr) bool { return false })
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return outcomeLeft
	}
	return outcomeWoken
}
