package agent_test

import (
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
)

// reservePort binds a loopback port without listening: connections to it
// are refused, yet no other socket (a parallel test's listener, or an
// outgoing connection) can take the port. listen starts listening on it.
func reservePort(tb testing.TB) (addr string, listen func() (net.Listener, error)) {
	tb.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		tb.Fatal(err)
	}
	syscall.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), "reserved port")
	tb.Cleanup(func() { f.Close() })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		tb.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		tb.Fatal(err)
	}
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	return addr, func() (net.Listener, error) {
		if err := syscall.Listen(fd, syscall.SOMAXCONN); err != nil {
			return nil, err
		}
		return net.FileListener(f) // a dup: f is closed at cleanup
	}
}
