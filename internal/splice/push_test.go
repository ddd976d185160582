package splice

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/internal/attachconn"
)

// frameSink is an attachconn.Sender that records what a Join sends to the
// stream: the bytes of every Data frame, then how the direction ended.
type frameSink struct {
	mu         sync.Mutex
	data       bytes.Buffer
	closeWrite bool
	closed     bool
	ended      chan struct{} // closed by the first CloseWrite or Close frame
	sent       chan struct{} // signalled (if made, capacity 1) after each Data frame
}

func (s *frameSink) SendData(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data.Write(p)
	select {
	case s.sent <- struct{}{}:
	default:
	}
	return nil
}

func (s *frameSink) end(f func()) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
	select {
	case <-s.ended:
	default:
		close(s.ended)
	}
	return nil
}

func (s *frameSink) SendCloseWrite() error { return s.end(func() { s.closeWrite = true }) }
func (s *frameSink) SendClose(relayv1.CloseReason, string) error {
	return s.end(func() { s.closed = true })
}

// pushJoined is peer ⇄ sock ⇄ Join ⇄ stream, where stream is an
// attachconn.Conn fed by the test as a receive loop would feed it.
type pushJoined struct {
	peer   *net.TCPConn
	stream *attachconn.Conn
	sink   *frameSink
	done   chan struct{}
	res    Result
}

// joinModes are the two ways to join: Join on a goroutine, and Start.
var joinModes = []struct {
	name  string
	async bool
}{{"join", false}, {"start", true}}

func newPushJoined(tb testing.TB, streamFirst, async bool) *pushJoined {
	tb.Helper()
	peer, sock := tcpPair(tb)
	j := &pushJoined{peer: peer, sink: &frameSink{ended: make(chan struct{})}, done: make(chan struct{})}
	j.stream = attachconn.New(attachconn.Config{Sender: j.sink, MaxData: 1000})
	a, b := Conn(sock), Conn(j.stream)
	if streamFirst {
		a, b = b, a
	}
	report := func(res Result) {
		if streamFirst {
			res.AToB, res.BToA = res.BToA, res.AToB // report as sock→stream, stream→sock
		}
		j.res = res
		close(j.done)
	}
	if async {
		Start(a, b, report)
	} else {
		go func() { report(Join(a, b)) }()
	}
	tb.Cleanup(func() {
		j.peer.Close()
		j.stream.Abort(errors.New("test cleanup"))
		<-j.done
	})
	return j
}

// deliver feeds p to the stream in frames of up to 777 bytes from one
// reused buffer, as a receive loop with a pooled buffer does: a payload
// used after Deliver returned would show up as corrupted bytes.
func (j *pushJoined) deliver(p []byte) error {
	buf := make([]byte, 777)
	for len(p) > 0 {
		n := copy(buf, p)
		err := j.stream.Deliver(buf[:n])
		for i := range buf {
			buf[i] = 0xee
		}
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

func TestJoinPushBothWaysExact(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name              string
		streamFirst       bool // the Pusher is Join's first argument
		toStream, toPeer  int
		streamClosesFirst bool
	}{
		{"nothing", false, 0, 0, false},
		{"both_large_peer_closes_first", false, 3<<20 + 17, 2<<20 + 5, false},
		{"both_large_stream_closes_first", false, 2<<20 + 3, 3<<20 + 1, true},
		{"pusher_as_a", true, 1<<20 + 9, 1<<20 + 11, true},
	} {
		for _, mode := range joinModes {
			t.Run(tc.name+"/"+mode.name, func(t *testing.T) {
				t.Parallel()
				testJoinPushExact(t, newPushJoined(t, tc.streamFirst, mode.async), tc.toStream, tc.toPeer, tc.streamClosesFirst)
			})
		}
	}
}

// testJoinPushExact sends nToStream bytes from the socket peer and nToPeer
// from the stream, each followed by its end; with streamClosesFirst the
// stream's end has reached the peer before the peer sends anything.
func testJoinPushExact(t *testing.T, j *pushJoined, nToStream, nToPeer int, streamClosesFirst bool) {
	toStream, toPeer := pattern(nToStream, 5), pattern(nToPeer, 6)
	var gotPeer []byte
	var readErr error
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		gotPeer, readErr = io.ReadAll(j.peer)
	}()
	deliverDone := make(chan error, 1)
	go func() {
		err := j.deliver(toPeer)
		if err == nil {
			j.stream.DeliverCloseWrite()
		}
		deliverDone <- err
	}()
	if streamClosesFirst {
		<-readDone // the peer's EOF: the stream's CloseWrite went through
	}
	if _, err := j.peer.Write(toStream); err != nil {
		t.Fatal(err)
	}
	j.peer.CloseWrite()
	<-readDone
	if err := <-deliverDone; err != nil {
		t.Fatalf("deliver: %v", err)
	}
	<-j.done
	if readErr != nil || !bytes.Equal(gotPeer, toPeer) {
		t.Errorf("peer read %d bytes (%v), want %d exact", len(gotPeer), readErr, len(toPeer))
	}
	j.sink.mu.Lock()
	gotStream, cw, closed := j.sink.data.Bytes(), j.sink.closeWrite, j.sink.closed
	j.sink.mu.Unlock()
	if !bytes.Equal(gotStream, toStream) || !cw || closed {
		t.Errorf("stream got %d bytes, CloseWrite %v, Close %v; want %d exact, CloseWrite only", len(gotStream), cw, closed, len(toStream))
	}
	if j.res.Err != nil || j.res.AToB != int64(nToStream) || j.res.BToA != int64(nToPeer) {
		t.Errorf("Result = %+v, want %d/%d bytes and no error", j.res, nToStream, nToPeer)
	}
}

// An abort of the stream after its bytes ended cleanly (the peer's Close
// frame after its CloseWrite) still resets the socket peer, although
// nothing reads the stream any more.
func TestJoinPushAbortAfterCleanEnd(t *testing.T) {
	t.Parallel()
	for _, mode := range joinModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			testJoinPushAbortAfterCleanEnd(t, newPushJoined(t, false, mode.async))
		})
	}
}

func testJoinPushAbortAfterCleanEnd(t *testing.T, j *pushJoined) {
	if err := j.deliver([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	j.stream.DeliverCloseWrite()
	got, err := io.ReadAll(j.peer)
	if err != nil || string(got) != "last words" {
		t.Fatalf("peer read %q, %v; want the bytes, then EOF", got, err)
	}
	j.stream.DeliverAbort(relayv1.CloseReason_CLOSE_REASON_HOST_ABORT, errors.New("host aborted"))
	<-j.done
	var ae *attachconn.AbortError
	if !errors.As(j.res.Err, &ae) || !ae.Remote {
		t.Fatalf("Join error = %v, want the peer's abort", j.res.Err)
	}
	if _, err := j.peer.Write([]byte("x")); err == nil {
		// The reset may take one write to show.
		_, err = j.peer.Read(make([]byte, 1))
		if !isReset(err) {
			t.Fatalf("peer after the abort: %v, want a reset", err)
		}
	}
}

// A socket peer that resets while the stream pushes to it aborts the
// stream (a Close frame) and ends the Join.
func TestJoinPushPeerResets(t *testing.T) {
	t.Parallel()
	for _, mode := range joinModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			testJoinPushPeerResets(t, newPushJoined(t, false, mode.async))
		})
	}
}

func testJoinPushPeerResets(t *testing.T, j *pushJoined) {
	if err := j.deliver([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(j.peer, got); err != nil {
		t.Fatal(err)
	}
	j.peer.SetLinger(0)
	j.peer.Close()
	<-j.sink.ended
	<-j.done
	j.sink.mu.Lock()
	closed := j.sink.closed
	j.sink.mu.Unlock()
	if !closed || j.res.Err == nil {
		t.Fatalf("after the peer's reset: Close frame %v, Join error %v; want both", closed, j.res.Err)
	}
	if err := j.deliver([]byte("too late")); err == nil {
		t.Fatal("Deliver after the abort succeeded")
	}
}

// A socket peer that half-closes and then resets, while the stream still
// sends, aborts the join: after the FIN nothing reads the socket, and Start
// watches it for the reset without a goroutine.
func TestJoinPushResetAfterFIN(t *testing.T) {
	t.Parallel()
	for _, mode := range joinModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			j := newPushJoined(t, false, mode.async)
			if _, err := j.peer.Write([]byte("request")); err != nil {
				t.Fatal(err)
			}
			j.peer.CloseWrite()
			<-j.sink.ended // the stream has the CloseWrite
			j.peer.SetLinger(0)
			j.peer.Close()
			<-j.done
			j.sink.mu.Lock()
			got, closed := j.sink.data.String(), j.sink.closed
			j.sink.mu.Unlock()
			if got != "request" || !closed || j.res.Err == nil {
				t.Fatalf("stream got %q, Close frame %v, Join error %v; want the request, Close, an error", got, closed, j.res.Err)
			}
		})
	}
}

// A silent session that the stream's peer aborts ends at once, although
// nothing is reading either side.
func TestJoinPushAbortWhileSilent(t *testing.T) {
	t.Parallel()
	for _, mode := range joinModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			j := newPushJoined(t, false, mode.async)
			j.stream.DeliverAbort(relayv1.CloseReason_CLOSE_REASON_HOST_ABORT, errors.New("host gone"))
			<-j.done
			if _, err := io.ReadAll(j.peer); !isReset(err) {
				t.Fatalf("peer read %v, want a reset", err)
			}
		})
	}
}

// A session aborted right after its socket sent bytes ends at once too: the
// pump that moved them then waits in Go's poller for more (pollLinger), not
// in the epoll watch, and the abort must reach it there.
func TestJoinPushAbortAfterBytes(t *testing.T) {
	t.Parallel()
	for _, mode := range joinModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			j := newPushJoined(t, false, mode.async)
			j.sink.mu.Lock()
			j.sink.sent = make(chan struct{}, 1)
			j.sink.mu.Unlock()
			if _, err := j.peer.Write([]byte("request")); err != nil {
				t.Fatal(err)
			}
			for {
				<-j.sink.sent
				j.sink.mu.Lock()
				got := j.sink.data.String()
				j.sink.mu.Unlock()
				if got == "request" {
					break
				}
			}
			j.stream.DeliverAbort(relayv1.CloseReason_CLOSE_REASON_HOST_ABORT, errors.New("host gone"))
			<-j.done
			if _, err := io.ReadAll(j.peer); !isReset(err) {
				t.Fatalf("peer read %v, want a reset", err)
			}
			if j.res.Err == nil {
				t.Fatal("Join ended without an error after an abort")
			}
		})
	}
}

// Round trips with the socket silent in between, each waiting for the
// other side: the pump lingers in Go's poller between them, or has gone
// back to the epoll watch; either way every byte crosses, in order.
func TestJoinPushRoundTrips(t *testing.T) {
	t.Parallel()
	for _, mode := range joinModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			j := newPushJoined(t, false, mode.async)
			j.sink.mu.Lock()
			j.sink.sent = make(chan struct{}, 1)
			j.sink.mu.Unlock()
			var want bytes.Buffer
			for i := range 200 {
				msg := []byte{byte(i), byte(i >> 8), 'x'}
				want.Write(msg)
				if _, err := j.peer.Write(msg); err != nil {
					t.Fatal(err)
				}
				for {
					<-j.sink.sent
					j.sink.mu.Lock()
					n := j.sink.data.Len()
					j.sink.mu.Unlock()
					if n == want.Len() {
						break
					}
				}
				if err := j.deliver(msg); err != nil {
					t.Fatal(err)
				}
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(j.peer, got); err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("round trip %d: peer read %q, %v; want %q", i, got, err, msg)
				}
			}
			j.sink.mu.Lock()
			got := j.sink.data.Bytes()
			j.sink.mu.Unlock()
			if !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("stream got %d bytes, not the %d sent in order", len(got), want.Len())
			}
		})
	}
}

// stuckSink is a frameSink whose SendData waits for release: a stream the
// host does not read, stuck on flow control.
type stuckSink struct {
	frameSink
	stuck   chan struct{} // closed when a SendData is waiting
	release chan struct{}
	once    sync.Once
}

func (s *stuckSink) SendData(p []byte) error {
	s.once.Do(func() { close(s.stuck) })
	<-s.release
	return s.frameSink.SendData(p)
}

// TestStartResetWhileWriteStuck: a client that resets while its bytes wait
// for the host (the stream stuck on flow control, so nothing reads the
// socket) ends the session with its reset, found within stallCheck, not
// when the host reads again, or at the relay's idle timeout.
func TestStartResetWhileWriteStuck(t *testing.T) {
	t.Parallel()
	peer, sock := tcpPair(t)
	sink := &stuckSink{frameSink: frameSink{ended: make(chan struct{})}, stuck: make(chan struct{}), release: make(chan struct{})}
	stream := attachconn.New(attachconn.Config{Sender: sink, MaxData: 1000})
	done := make(chan Result, 1)
	Start(sock, stream, func(res Result) { done <- res })
	defer func() {
		close(sink.release) // the owner ends the stream, as relayd does after its grace
		res := <-done
		if res.Err == nil {
			t.Errorf("join ended cleanly after the client's reset")
		}
	}()
	if _, err := peer.Write([]byte("request the host will not read")); err != nil {
		t.Fatal(err)
	}
	<-sink.stuck
	peer.SetLinger(0)
	peer.Close()
	select {
	case <-stream.Aborted():
		if cause := stream.AbortCause(); cause == nil || !strings.Contains(cause.Error(), "reset") {
			t.Errorf("stream aborted with %v, want the client's reset", cause)
		}
	case <-time.After(20 * time.Second): // watchdog: stallCheck is 1 s
		t.Fatal("the client's reset was not seen while the write to the stream was stuck")
	}
}

// stuckCloseWriteSink is a frameSink whose SendCloseWrite waits for
// release: the data before it filled the stream's window, and the host
// stopped reading.
type stuckCloseWriteSink struct {
	frameSink
	stuck   chan struct{} // closed when a SendCloseWrite is waiting
	release chan struct{}
	once    sync.Once
}

func (s *stuckCloseWriteSink) SendCloseWrite() error {
	s.once.Do(func() { close(s.stuck) })
	<-s.release
	return s.frameSink.SendCloseWrite()
}

// TestStartResetWhileCloseWriteStuck: as TestStartResetWhileWriteStuck,
// for a client that half-closes and then resets while its FIN waits for
// the host (a review found the CloseWrite unwatched).
func TestStartResetWhileCloseWriteStuck(t *testing.T) {
	t.Parallel()
	peer, sock := tcpPair(t)
	sink := &stuckCloseWriteSink{frameSink: frameSink{ended: make(chan struct{})}, stuck: make(chan struct{}), release: make(chan struct{})}
	stream := attachconn.New(attachconn.Config{Sender: sink, MaxData: 1000})
	done := make(chan Result, 1)
	Start(sock, stream, func(res Result) { done <- res })
	defer func() {
		close(sink.release)
		<-done
	}()
	if _, err := peer.Write([]byte("request, then FIN")); err != nil {
		t.Fatal(err)
	}
	peer.CloseWrite()
	<-sink.stuck
	peer.SetLinger(0)
	peer.Close() // a reset after the FIN
	select {
	case <-stream.Aborted():
		if cause := stream.AbortCause(); cause == nil || !strings.Contains(cause.Error(), "reset") {
			t.Errorf("stream aborted with %v, want the client's reset", cause)
		}
	case <-time.After(20 * time.Second): // watchdog: stallCheck is 1 s
		t.Fatal("the client's reset was not seen while the CloseWrite to the stream was stuck")
	}
}
