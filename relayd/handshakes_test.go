package main

import (
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// acceptOne dials l and returns the accepted side (and the dialer's).
func acceptOne(t *testing.T, l net.Listener) (server, client net.Conn) {
	t.Helper()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return server, client
}

func loopbackListener(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestHandshakeListenerTimeouts: a connection closed in its handshake
// after a read hit the handshake's deadline is reported, once; one whose
// peer hung up, or whose handshake finished, is not; abortHandshakes closes
// only the connections still in their handshakes, and any accepted later.
func TestHandshakeListenerTimeouts(t *testing.T) {
	var timeouts atomic.Int32
	l := newHandshakeListener(loopbackListener(t), handshakeConfig{onTimeout: func(net.Addr) { timeouts.Add(1) }})

	// As grpc-go does: a deadline, a read that times out, Close, and then
	// the deadline cleared.
	slow, _ := acceptOne(t, l)
	slow.SetDeadline(time.Now().Add(time.Millisecond))
	if _, err := slow.Read(make([]byte, 1)); err == nil {
		t.Fatal("read past the deadline succeeded")
	}
	slow.Close()
	slow.SetDeadline(time.Time{})
	slow.Close()
	if n := timeouts.Load(); n != 1 {
		t.Fatalf("%d timeouts reported after a handshake that timed out, want 1", n)
	}
	// The peer hangs up in the handshake.
	gone, goneClient := acceptOne(t, l)
	gone.SetDeadline(time.Now().Add(time.Minute))
	goneClient.Close()
	gone.Read(make([]byte, 1))
	gone.Close()
	gone.SetDeadline(time.Time{})
	if n := timeouts.Load(); n != 1 {
		t.Fatalf("%d timeouts reported, want still 1: the peer hung up", n)
	}

	// One connection past its handshake, one in it: the abort closes only
	// the second.
	up, upClient := acceptOne(t, l)
	up.SetDeadline(time.Now().Add(time.Minute))
	up.SetDeadline(time.Time{})
	stuck, stuckClient := acceptOne(t, l)
	stuck.SetDeadline(time.Now().Add(time.Minute))
	l.abortHandshakes()
	stuckClient.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := stuckClient.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("the connection in its handshake after abortHandshakes: read %d, %v; want it closed", n, err)
	}
	if _, err := up.Write([]byte("x")); err != nil {
		t.Fatalf("the connection past its handshake after abortHandshakes: %v", err)
	}
	upClient.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := upClient.Read(make([]byte, 1)); err != nil {
		t.Errorf("the connection past its handshake after abortHandshakes: %v; want it open", err)
	}
	// And one accepted after the abort is closed at once.
	late, lateClient := acceptOne(t, l)
	_ = late
	lateClient.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := lateClient.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("a connection accepted after abortHandshakes: read %d, %v; want it closed", n, err)
	}
	if n := timeouts.Load(); n != 1 {
		t.Errorf("%d timeouts reported, want still 1: the abort is not a timeout", n)
	}
}
