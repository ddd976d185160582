package main

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/relayproject/relay/clientbridge"
)

// TestHandshakeListenerUserTimeout: TCP_USER_TIMEOUT reaches the socket
// below the connection limits' wrapper (grpc-go sets it only on a bare
// *net.TCPConn).
func TestHandshakeListenerUserTimeout(t *testing.T) {
	limited := clientbridge.LimitListener(loopbackListener(t), clientbridge.Limits{MaxClients: 10}, nil)
	l := newHandshakeListener(limited, handshakeConfig{userTimeout: 7 * time.Second})
	server, _ := acceptOne(t, l)
	var tc *net.TCPConn
	c := server.(*handshakeConn).Conn
	for tc == nil {
		switch v := c.(type) {
		case *net.TCPConn:
			tc = v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			t.Fatalf("no *net.TCPConn below %T", c)
		}
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	raw.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT) })
	if gerr != nil || got != 7000 {
		t.Errorf("TCP_USER_TIMEOUT = %d ms, %v; want 7000", got, gerr)
	}
}
