//go:build linux

package main

import (
	"net"
	"syscall"
	"unsafe"
)

// tcpState returns the kernel TCP state (tcpi_state) of c, or -1.
// 1 ESTABLISHED, 6 TIME_WAIT, 7 CLOSE, 8 CLOSE_WAIT, ...
func tcpState(c *net.TCPConn) int {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1
	}
	st := -1
	raw.Control(func(fd uintptr) {
		var info [256]byte
		l := uint32(len(info))
		_, _, e := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_TCP, syscall.TCP_INFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&l)), 0)
		if e == 0 {
			st = int(info[0])
		}
	})
	return st
}

var tcpStateNames = map[int]string{1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING"}
