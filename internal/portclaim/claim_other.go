//go:build !unix

package portclaim

import "net"

// New picks a free loopback port, unclaimed: without flock, another socket
// may take it once nothing listens there.
func New() (*Claim, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer l.Close()
	return &Claim{Addr: l.Addr().String()}, nil
}
