package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// Echo buffers: a connection starts with a small buffer, so thousands of
// held, silent connections cost little, and moves to a large one as soon as
// a read fills the small one.
const (
	echoSmallBuf = 1 << 10
	echoLargeBuf = 128 << 10
)

var echoBufPool = sync.Pool{New: func() any { b := make([]byte, echoLargeBuf); return &b }}

// echoServer echoes every connection until the client half-closes, then
// half-closes back.
type echoServer struct {
	lis   net.Listener
	conns sync.WaitGroup
	mu    sync.Mutex
	open  map[*net.TCPConn]struct{}
}

func newEchoServer(addr string) (*echoServer, error) {
	if err := checkLoopback(addr); err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("echo-server: %w", err)
	}
	return &echoServer{lis: lis, open: map[*net.TCPConn]struct{}{}}, nil
}

func (s *echoServer) Addr() string { return s.lis.Addr().String() }

// Serve accepts until the listener is closed.
func (s *echoServer) Serve() error {
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
			return fmt.Errorf("echo-server accept: %w", err)
		}
		tc := c.(*net.TCPConn)
		s.mu.Lock()
		s.open[tc] = struct{}{}
		s.mu.Unlock()
		s.conns.Add(1)
		go func() {
			defer s.conns.Done()
			echo(tc)
			s.mu.Lock()
			delete(s.open, tc)
			s.mu.Unlock()
		}()
	}
}

// Close stops accepting, closes every open connection and waits for them.
func (s *echoServer) Close() {
	s.lis.Close()
	s.mu.Lock()
	for c := range s.open {
		c.Close()
	}
	s.mu.Unlock()
	s.conns.Wait()
}

func echo(c *net.TCPConn) {
	defer c.Close()
	small := make([]byte, echoSmallBuf)
	buf := small
	var large *[]byte
	defer func() {
		if large != nil {
			echoBufPool.Put(large)
		}
	}()
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
			if n == len(buf) && large == nil {
				large = echoBufPool.Get().(*[]byte)
				buf = *large
			}
		}
		if err == io.EOF {
			c.CloseWrite()
			// Wait for the client to close, so the client side takes
			// TIME_WAIT, as with any server.
			io.Copy(io.Discard, c)
			return
		}
		if err != nil {
			return
		}
	}
}

func cmdEchoServer(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlags("echo-server", stderr)
	addr := fs.String("addr", "127.0.0.1:0", "loopback `address` to listen on")
	if err := parse(fs, args); err != nil {
		return err
	}
	s, err := newEchoServer(*addr)
	if err != nil {
		return err
	}
	// The same shape as relayd's ready line, so the runner waits for both
	// the same way.
	line, _ := json.Marshal(map[string]string{"msg": "echo-server ready", "addr": s.Addr()})
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
