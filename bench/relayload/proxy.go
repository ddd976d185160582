package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// proxyServer is the least a relay could do: for each connection it dials
// the target and copies both ways, one goroutine per direction, with
// io.Copy (splice(2) between two TCP sockets on Linux, so the bytes never
// enter the process). Two of them chained, client → proxy → proxy → echo,
// are the floor that `relayload run` measures beside the relay: the same
// two hops and four processes, with no framing, no gRPC, no scheduler, no
// flow control of its own. The one thing it does that a reverse tunnel
// does not is dial its second hop per session.
type proxyServer struct {
	lis    net.Listener
	target string
	log    io.Writer // JSON lines (a failed dial of the target); safe for concurrent writes
	// dialCtx ends when Close begins, so that no dial outlives the proxy.
	dialCtx    context.Context
	cancelDial context.CancelFunc
	conns      sync.WaitGroup
	mu         sync.Mutex
	open       map[*net.TCPConn]struct{}
	closed     bool
}

// proxyDialTimeout bounds a dial of the target: long enough for the SYN
// retries (at 1 s and 3 s) of a target whose accept queue is full.
const proxyDialTimeout = 10 * time.Second

func newProxyServer(addr, target string, log io.Writer) (*proxyServer, error) {
	if err := checkLoopback(addr); err != nil {
		return nil, err
	}
	if err := checkTarget(target); err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &proxyServer{lis: lis, target: target, log: log, dialCtx: ctx, cancelDial: cancel,
		open: map[*net.TCPConn]struct{}{}}, nil
}

func (s *proxyServer) Addr() string { return s.lis.Addr().String() }

// Serve accepts until the listener is closed.
func (s *proxyServer) Serve() error {
	for {
		c, err := s.lis.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("proxy accept: %w", err)
		}
		client := c.(*net.TCPConn)
		if !s.trackSession(client) {
			client.SetLinger(0)
			client.Close()
			return nil
		}
		go func() {
			defer s.conns.Done()
			defer s.untrack(client)
			s.serve(client)
		}()
	}
}

// trackSession registers a client connection for Close and counts its
// session for Close to wait on, under the lock Close takes, so that no
// session starts after Close began waiting; false once Close has begun.
func (s *proxyServer) trackSession(client *net.TCPConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.open[client] = struct{}{}
	s.conns.Add(1)
	return true
}

// track registers c for Close; false once Close has begun.
func (s *proxyServer) track(c *net.TCPConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.open[c] = struct{}{}
	return true
}

func (s *proxyServer) untrack(c *net.TCPConn) {
	s.mu.Lock()
	delete(s.open, c)
	s.mu.Unlock()
}

// serve relays one connection. A clean end on one side (EOF) is passed on
// as a half-close; an error on either side resets both, so that a reset is
// never turned into a clean end.
func (s *proxyServer) serve(client *net.TCPConn) {
	defer client.Close()
	d := net.Dialer{Timeout: proxyDialTimeout}
	c, err := d.DialContext(s.dialCtx, "tcp", s.target)
	if err != nil {
		client.SetLinger(0)
		if s.dialCtx.Err() == nil {
			line, _ := json.Marshal(map[string]string{"msg": "proxy dial failed", "target": s.target, "error": err.Error()})
			fmt.Fprintf(s.log, "%s\n", line)
		}
		return
	}
	server := c.(*net.TCPConn)
	defer server.Close()
	if !s.track(server) {
		client.SetLinger(0)
		server.SetLinger(0)
		return
	}
	defer s.untrack(server)

	failed := make(chan struct{})
	var once sync.Once
	fail := func() {
		once.Do(func() {
			client.SetLinger(0)
			server.SetLinger(0)
			close(failed)
			client.Close()
			server.Close()
		})
	}
	copyOneWay := func(dst, src *net.TCPConn) {
		if _, err := io.Copy(dst, src); err != nil {
			fail()
			return
		}
		if err := dst.CloseWrite(); err != nil {
			fail()
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		copyOneWay(server, client)
	}()
	copyOneWay(client, server)
	<-done
}

// Close stops accepting, resets every open connection and waits for its
// sessions. A reset, not a FIN: a session cut short must not look to
// either end like one that finished.
func (s *proxyServer) Close() {
	s.lis.Close()
	s.cancelDial()
	s.mu.Lock()
	s.closed = true
	for c := range s.open {
		c.SetLinger(0)
		c.Close()
	}
	s.mu.Unlock()
	s.conns.Wait()
}

func cmdProxy(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlags("proxy", stderr)
	addr := fs.String("addr", "127.0.0.1:0", "loopback `address` to listen on")
	target := fs.String("target", "", "loopback `address` to dial for each connection (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *target == "" {
		return usageError{errors.New("proxy: --target is required")}
	}
	s, err := newProxyServer(*addr, *target, stderr)
	if err != nil {
		return err
	}
	line, _ := json.Marshal(map[string]string{"msg": "proxy ready", "addr": s.Addr()})
	fmt.Fprintf(stderr, "%s\n", line)
	errc := make(chan error, 1)
	go func() { errc <- s.Serve() }()
	select {
	case <-ctx.Done():
		s.Close()
		return <-errc
	case err := <-errc:
		s.Close()
		return err
	}
}
