package splice

import (
	"errors"
	"net"
	"sync"
	"testing"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/internal/attachconn"
)

// Linux reports a peer's reset once, to whichever call meets it first: when
// a write to the socket takes it, the next read returns 0 as at a FIN.
// closedState tells the two apart by the TCP state.
func TestClosedStateTellsResetFromFIN(t *testing.T) {
	t.Parallel()
	buf := make([]byte, 16)

	sock, peer := tcpPair(t)
	peer.SetLinger(0)
	peer.Close() // a reset
	var werr error
	for werr == nil { // the first write may go out before the reset lands
		_, werr = sock.Write([]byte("x"))
	}
	if !isReset(werr) && !errors.Is(werr, net.ErrClosed) {
		t.Logf("the write met %v", werr)
	}
	if n, err := sock.Read(buf); n != 0 || err == nil || isReset(err) {
		// Read returns (0, io.EOF): the reset was the write's.
		t.Logf("read after the write met the reset: %d, %v", n, err)
	}
	if !closedState(sock) {
		t.Error("closedState = false after a reset, want true")
	}

	sock2, peer2 := tcpPair(t)
	peer2.CloseWrite() // a FIN
	if n, err := sock2.Read(buf); n != 0 || err == nil {
		t.Fatalf("read after the FIN: %d, %v; want EOF", n, err)
	}
	if closedState(sock2) {
		t.Error("closedState = true after a FIN, want false (CLOSE_WAIT)")
	}
	sock2.Close()
	peer2.Close()
}

// gatedSink is an attachconn.Sender whose first SendData waits until gate
// is closed; it records how the direction to the stream ended.
type gatedSink struct {
	gate    chan struct{}
	entered chan struct{} // closed when the first SendData starts waiting
	cw      chan struct{} // closed by SendCloseWrite
	once    sync.Once

	mu         sync.Mutex
	closeWrite bool
	closed     bool
}

func (s *gatedSink) SendData([]byte) error {
	s.once.Do(func() { close(s.entered); <-s.gate })
	return nil
}
func (s *gatedSink) SendCloseWrite() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closeWrite {
		close(s.cw)
	}
	s.closeWrite = true
	return nil
}
func (s *gatedSink) SendClose(relayv1.CloseReason, string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// heldWriteConn is a socket whose failed Write waits for resume before it
// returns: the window in which the reader has seen the "EOF" that follows a
// reset met by the write, and the write's error has not failed the join.
type heldWriteConn struct {
	*net.TCPConn
	failed chan struct{}
	resume chan struct{}
	once   sync.Once
}

func (c *heldWriteConn) Write(p []byte) (int, error) {
	n, err := c.TCPConn.Write(p)
	if err != nil {
		c.once.Do(func() { close(c.failed); <-c.resume })
	}
	return n, err
}

// A client's reset that a write to its socket meets first must reach the
// stream as Close, never as CloseWrite: the host would take a cut upload
// for a finished one (found by a chaos run: 5 % of resetting clients).
func TestResetMetByWriteIsNoFIN(t *testing.T) {
	t.Parallel()
	for _, mode := range joinModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			peer, accepted := tcpPair(t)
			sock := &heldWriteConn{TCPConn: accepted, failed: make(chan struct{}), resume: make(chan struct{})}
			sink := &gatedSink{gate: make(chan struct{}), entered: make(chan struct{}), cw: make(chan struct{})}
			stream := attachconn.New(attachconn.Config{Sender: sink, MaxData: 1000})
			done := make(chan Result, 1)
			if mode.async {
				Start(sock, stream, func(r Result) { done <- r })
			} else {
				go func() { done <- Join(sock, stream) }()
			}
			// The reader takes a byte and waits in SendData, not reading.
			if _, err := peer.Write([]byte("a")); err != nil {
				t.Fatal(err)
			}
			<-sink.entered
			peer.SetLinger(0)
			peer.Close() // the reset, met by the stream's next write
			deliverErr := make(chan error, 1)
			go func() {
				var err error
				for err == nil { // until a write meets the reset
					err = stream.Deliver([]byte("to the client"))
				}
				deliverErr <- err
			}()
			<-sock.failed
			close(sink.gate) // the reader reads again: 0 bytes, as at a FIN
			// What the reader makes of it, before the write's error can
			// fail the join: without the state check, a CloseWrite.
			select {
			case <-sink.cw:
				t.Error("the stream got CloseWrite for a client that reset")
			case <-stream.Aborted():
			}
			close(sock.resume)
			res := <-done
			<-deliverErr
			if res.Err == nil || !isReset(res.Err) {
				t.Errorf("join error %v, want the reset", res.Err)
			}
		})
	}
}
