package main

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// handshakeListener hands a gRPC port's connections to grpc-go and keeps
// track of those still in their TLS and HTTP/2 handshakes, which grpc-go
// bounds (grpc.ConnectionTimeout) but neither lists nor lets a Stop cut
// short: its GracefulStop and Stop both wait for them first, so one silent
// TCP connection held relayd's exit for the whole timeout, and the agents'
// GOAWAY with it. abortHandshakes closes them.
//
// grpc-go marks the handshake on the raw connection itself: it sets a
// deadline before and clears it after (server.go, handleRawConn). That is
// the only signal it gives a listener; TestShutdownWithHandshakingConn
// would catch a grpc-go that stopped giving it.
//
// On the way it says what grpc-go does not: onTimeout hears of a
// connection that timed out in its handshake, and on a plaintext port
// onTLS of a peer that opened with a TLS record (an agent with TLS flags).
type handshakeListener struct {
	net.Listener
	cfg handshakeConfig

	mu          sync.Mutex
	handshaking map[*handshakeConn]struct{}
	aborted     bool // abortHandshakes ran: connections are closed as they come
}

type handshakeConfig struct {
	onTimeout func(peer net.Addr) // nil: not reported
	onTLS     func(peer net.Addr) // nil: the first bytes are not looked at
	// userTimeout is set as TCP_USER_TIMEOUT, as grpc-go sets it from the
	// keepalive timeout only on a bare *net.TCPConn, which it no longer
	// sees behind the wrappers (this one, the connection limits).
	userTimeout time.Duration
}

func newHandshakeListener(l net.Listener, cfg handshakeConfig) *handshakeListener {
	return &handshakeListener{Listener: l, cfg: cfg, handshaking: make(map[*handshakeConn]struct{})}
}

func (l *handshakeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if l.cfg.userTimeout > 0 {
		setUserTimeout(c, l.cfg.userTimeout)
	}
	hc := &handshakeConn{Conn: c, l: l}
	hc.sniff.Store(l.cfg.onTLS != nil)
	l.mu.Lock()
	aborted := l.aborted
	if !aborted {
		l.handshaking[hc] = struct{}{}
	}
	l.mu.Unlock()
	if aborted {
		c.Close() // grpc-go's handshake then fails at once
	}
	return hc, nil
}

// abortHandshakes closes every connection still in its handshake, and
// from now on every new one: relayd is stopping, and a peer that has not
// finished its handshake has no stream to drain.
func (l *handshakeListener) abortHandshakes() {
	l.mu.Lock()
	l.aborted = true
	conns := make([]*handshakeConn, 0, len(l.handshaking))
	for c := range l.handshaking {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// done takes c off the handshaking list; it reports whether c was on it.
func (l *handshakeListener) done(c *handshakeConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.handshaking[c]
	delete(l.handshaking, c)
	return ok
}

// handshakeConn is one connection of a handshakeListener.
type handshakeConn struct {
	net.Conn
	l *handshakeListener
	// timedOut: a read or write hit the handshake's deadline.
	timedOut atomic.Bool
	// sniff: the first read is still to be looked at.
	sniff     atomic.Bool
	closeOnce sync.Once
}

func (c *handshakeConn) SetDeadline(t time.Time) error {
	if t.IsZero() {
		c.l.done(c) // the handshake is over
	}
	return c.Conn.SetDeadline(t)
}

func (c *handshakeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.timedOut.Store(true) // only the handshake sets a deadline
	}
	if n > 0 && c.sniff.Load() {
		c.sniff.Store(false)
		// A TLS handshake record: type 22, version 3.x.
		if n >= 2 && p[0] == 0x16 && p[1] == 0x03 {
			c.l.cfg.onTLS(c.RemoteAddr())
		}
	}
	return n, err
}

func (c *handshakeConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.timedOut.Store(true)
	}
	return n, err
}

func (c *handshakeConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		// Closed in its handshake because the deadline passed (not by the
		// peer, a failed TLS handshake, which the TLS layer logs, or
		// abortHandshakes).
		if c.l.done(c) && c.timedOut.Load() && c.l.cfg.onTimeout != nil {
			c.l.cfg.onTimeout(c.RemoteAddr())
		}
	})
	return err
}
