package main

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relayproject/relay/relayd/relay"
)

// agentListener hands the gRPC port's connections to grpc-go and keeps
// track of those still in their TLS and HTTP/2 handshakes, which grpc-go
// bounds with --hello-timeout but neither lists nor lets a Stop cut short:
// its GracefulStop and Stop both wait for them first, so one silent TCP
// connection held relayd's exit for the whole timeout, and the agents'
// GOAWAY with it. abortHandshakes closes them.
//
// grpc-go marks the handshake on the raw connection itself: it sets a
// deadline before and clears it after (server.go, handleRawConn). That is
// the only signal it gives a listener; the tests would catch a grpc-go
// that stopped giving it (TestShutdownWithHandshakingConn).
//
// On the way it says what grpc-go does not log: a connection that timed
// out in its handshake counts as a hello_timeout limit hit, and on a
// plaintext port a peer that opens with a TLS record is an agent with TLS
// flags (the agent gets a hint of its own).
type agentListener struct {
	net.Listener
	relay       *relay.Relay
	log         *slog.Logger
	plaintext   bool
	tlsMismatch logEvery

	mu          sync.Mutex
	handshaking map[*agentConn]struct{}
	aborted     bool // abortHandshakes ran: connections are closed as they come
}

func newAgentListener(l net.Listener, r *relay.Relay, log *slog.Logger, plaintext bool) *agentListener {
	return &agentListener{Listener: l, relay: r, log: log, plaintext: plaintext, handshaking: make(map[*agentConn]struct{})}
}

func (l *agentListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	ac := &agentConn{Conn: c, l: l}
	ac.sniff.Store(l.plaintext)
	l.mu.Lock()
	aborted := l.aborted
	if !aborted {
		l.handshaking[ac] = struct{}{}
	}
	l.mu.Unlock()
	if aborted {
		c.Close() // grpc-go's handshake then fails at once
	}
	return ac, nil
}

// abortHandshakes closes every connection still in its handshake, and
// from now on every new one: relayd is stopping, and a peer that has not
// finished its handshake has no stream to drain.
func (l *agentListener) abortHandshakes() {
	l.mu.Lock()
	l.aborted = true
	conns := make([]*agentConn, 0, len(l.handshaking))
	for c := range l.handshaking {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// done takes c off the handshaking list; it reports whether c was on it.
func (l *agentListener) done(c *agentConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.handshaking[c]
	delete(l.handshaking, c)
	return ok
}

// agentConn is one gRPC port connection (see agentListener).
type agentConn struct {
	net.Conn
	l *agentListener
	// deadline is the handshake's, as grpc-go set it (Unix nanoseconds).
	deadline atomic.Int64
	// sniff: the first read is still to be looked at (plaintext port).
	sniff     atomic.Bool
	closeOnce sync.Once
}

func (c *agentConn) SetDeadline(t time.Time) error {
	if t.IsZero() {
		c.l.done(c) // the handshake is over
	} else {
		c.deadline.Store(t.UnixNano())
	}
	return c.Conn.SetDeadline(t)
}

func (c *agentConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.sniff.Load() {
		c.sniff.Store(false)
		// A TLS handshake record: type 22, version 3.x.
		if n >= 2 && p[0] == 0x16 && p[1] == 0x03 {
			c.l.tlsMismatch.do(func(skipped int) {
				c.l.log.Warn("an agent speaks TLS to this plaintext gRPC port: give relayd --tls-cert and --tls-key, or run that agent without TLS flags (--insecure if the relay is not on loopback)",
					"peer_addr", c.RemoteAddr().String(), "not_logged_since_last_line", skipped)
			})
		}
	}
	return n, err
}

func (c *agentConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		if !c.l.done(c) {
			return
		}
		// Closed in its handshake: by grpc-go when the deadline passed
		// (or the handshake failed, which the TLS layer logs), or by
		// abortHandshakes.
		if d := c.deadline.Load(); d != 0 && time.Now().UnixNano() >= d {
			c.l.relay.LimitHit(relay.LimitHelloTimeout, "peer_addr", c.RemoteAddr().String(), "during", "the connection's TLS and HTTP/2 handshakes")
		}
	})
	return err
}

// logEvery runs a log call at most once a second, with the count of the
// calls it skipped since.
type logEvery struct {
	mu      sync.Mutex
	last    time.Time
	skipped int
}

func (e *logEvery) do(log func(skipped int)) {
	e.mu.Lock()
	now := time.Now()
	if now.Sub(e.last) < time.Second {
		e.skipped++
		e.mu.Unlock()
		return
	}
	skipped := e.skipped
	e.last, e.skipped = now, 0
	e.mu.Unlock()
	log(skipped)
}
