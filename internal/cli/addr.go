package cli

import (
	"fmt"
	"net"
	"strconv"
)

// ListenAddr checks addr, the value of a flag naming an address to listen
// on (relayd's --grpc-addr, --listen, --metrics-addr, --pprof-addr, ...),
// so that a mistake in it is a bad command line, reported before anything
// starts (exit status 2), not a failed listen later (exit status 1). It
// wants HOST:PORT, or :PORT for every address, the port a number from 0 to
// 65535: 0 lets the kernel pick a free port, as tests do. The host is left
// to the listen: whether a name resolves depends on the machine, not on the
// command line.
//
// A service name as the port (":http"), which net.Listen would look up, is
// refused: it resolves only where /etc/services lists it (minimal
// containers have none), and relayd's check that no two listeners share a
// port compares numbers. An empty port ("127.0.0.1:", as from an unset
// $PORT) is refused too: net.Listen would take it as 0 and serve on a port
// nobody asked for.
//
// The error names neither the flag nor addr; the caller puts them first:
// `--grpc-addr "127.0.0.1:99999": port "99999" is not a number from 0 to 65535`.
func ListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%v (want HOST:PORT or :PORT)", err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}
