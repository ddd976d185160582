// Package attachconn presents one session of an Attach stream as a net.Conn,
// for both sides of the stream: relayd bridges it to a client socket, and the
// host agent hands it to host code. The owner of the stream keeps its single
// receive loop and feeds this Conn with Deliver, DeliverCloseWrite and
// DeliverAbort; Conn serializes every send through a Sender.
//
// Delivery is a hand-off, not a queue: Deliver blocks until the payload is
// consumed, so the receive loop stops calling Recv while the reader is slow,
// and HTTP/2 flow control pushes back on the peer. Nothing here buffers more
// than the frame in hand, and no payload is used once Deliver has returned:
// the receive loop may reuse its buffer.
//
// A payload is consumed by Read (copied), or, after PushTo, written to a
// destination by the receive loop itself: then no goroutine waits to read
// the session, and a silent session pins no buffer.
package attachconn

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
)

// Sender sends one side's frames. Conn never calls it from two goroutines at
// once, and never after Abort has returned, except for the Close frame an
// abort owes while a Write holds the sender (see CloseSettled), until
// AbandonClose.
type Sender interface {
	SendData(payload []byte) error
	SendCloseWrite() error
	SendClose(reason relayv1.CloseReason, detail string) error
}

// Config describes one session.
type Config struct {
	Sender Sender
	// MaxData is the largest payload of one Data frame; larger writes are split.
	MaxData int
	// LocalAddr and RemoteAddr are what LocalAddr and RemoteAddr return.
	LocalAddr, RemoteAddr net.Addr
	// AbortReason is sent in the Close frame when Abort is called: why this
	// side gives the session up (the client reset, the host aborted, ...).
	AbortReason relayv1.CloseReason
	// LostReason, if set, is the peer's abort when a send fails: the stream
	// is broken, and that is the peer's end, not something this side did.
	// Without it, the failed Write returns the send's error, and whoever
	// aborts on it (a splice) records its AbortReason.
	LostReason relayv1.CloseReason
	// OnAbort, if set, runs once after the session was aborted (locally or by
	// the peer) and the Close frame, if any, was sent. The stream's owner uses
	// it to end the stream, which unblocks a Write stuck on flow control.
	OnAbort func(closeSent bool)
	// AsyncClose sends a local abort's Close frame on a goroutine of its own
	// (OnAbort is then told false): the Send may block on flow control, and
	// the aborting caller (an operator's call, a timer, the receive loop)
	// must not. The owner bounds the wait with CloseSettled and AbandonClose.
	AsyncClose bool
}

// Errors returned by Conn.
var (
	// ErrWriteClosed is returned by Write after CloseWrite.
	ErrWriteClosed = errors.New("write after CloseWrite")
	// ErrDataAfterClose aborts a session when the peer sends data that
	// nobody will read, as TCP resets a closed socket that receives data.
	ErrDataAfterClose = errors.New("data arrived after Close")
)

// AbortError is the error a Conn returns once the session is aborted.
type AbortError struct {
	Remote bool                // the peer aborted (Close frame or broken stream)
	Reason relayv1.CloseReason // the reason in the Close frame, if any
	Cause  error               // what happened
}

func (e *AbortError) Error() string {
	who := "locally"
	if e.Remote {
		who = "by peer"
	}
	return fmt.Sprintf("session aborted %s: %v", who, e.Cause)
}

func (e *AbortError) Unwrap() error { return e.Cause }

// Conn is one session of an Attach stream. Read, Write and Close may be
// called from different goroutines; concurrent Writes are serialized.
type Conn struct {
	cfg Config

	// Read side, fed by the owner's receive loop.
	data    chan []byte   // a payload handed to Read
	ack     chan struct{} // Read consumed the payload (capacity 1)
	eof     chan struct{} // closed by DeliverCloseWrite
	eofOnce sync.Once
	readMu  sync.Mutex
	pending []byte // rest of the payload being read; guarded by readMu
	readDL  *deadline

	// Write side.
	writeMu     sync.Mutex
	writeClosed bool // guarded by writeMu
	writeDL     time.Time

	// closeState is where the Close frame of a local abort is: an abort
	// that finds a Write holding the sender (stuck on flow control) leaves
	// it owed, and whoever holds writeMu next sends it (unlockWrite).
	closeState   atomic.Int32
	closeSettled chan struct{} // closed once no Close is owed

	closed    chan struct{} // closed by Close
	closeOnce sync.Once
	aborted   chan struct{} // closed when aborted, after the Close frame went out
	abortMu   sync.Mutex
	abortErr  *AbortError // guarded by abortMu
	hooks     []*func()   // AfterAbort's; guarded by abortMu

	// Push mode (PushTo): the sink is set once, before sinkSet is closed,
	// and only the receive loop writes to it.
	sinkSet chan struct{}
	sink    io.Writer
	pushMu  sync.Mutex
	pushEnd func(int64, error) // nil until PushTo and once called; guarded by pushMu

	writeDLMu sync.Mutex

	bytesRead, bytesWritten atomic.Int64
	delivering              atomic.Int32 // Deliver calls under way
	readEOF, writeEOF       atomic.Bool
}

// New returns a Conn for one session.
func New(cfg Config) *Conn {
	if cfg.MaxData <= 0 {
		cfg.MaxData = 32 * 1024
	}
	return &Conn{
		cfg:     cfg,
		data:    make(chan []byte),
		ack:     make(chan struct{}, 1),
		eof:     make(chan struct{}),
		readDL:  newDeadline(),
		closed:  make(chan struct{}),
		aborted: make(chan struct{}),
		sinkSet: make(chan struct{}),

		closeSettled: make(chan struct{}),
	}
}

// The states of Conn.closeState.
const (
	closeNone    int32 = iota // no local abort yet
	closeOwed                 // aborted locally; the Close frame not yet sent
	closeSending              // being sent, by the holder of writeMu
	closeDone                 // sent, failed, or given up: closeSettled is closed
)

// unlockWrite releases writeMu, then sends the Close frame an abort left
// owed meanwhile, if no other Write has taken writeMu again (that one's
// unlockWrite sends it).
func (c *Conn) unlockWrite() {
	c.writeMu.Unlock()
	if c.closeState.Load() == closeOwed && c.writeMu.TryLock() {
		c.sendOwedClose()
		c.writeMu.Unlock()
	}
}

// sendOwedClose sends the owed Close frame; writeMu is held.
func (c *Conn) sendOwedClose() bool {
	if !c.closeState.CompareAndSwap(closeOwed, closeSending) {
		return false
	}
	c.abortMu.Lock()
	e := c.abortErr
	c.abortMu.Unlock()
	detail := ""
	if e.Cause != nil {
		detail = e.Cause.Error()
	}
	sent := c.cfg.Sender.SendClose(e.Reason, detail) == nil
	c.writeClosed = true
	c.closeState.Store(closeDone)
	close(c.closeSettled)
	return sent
}

// CloseSettled is closed once no Close frame is owed to the peer: none was
// (the peer aborted), it went out with the abort, it went out after the
// Write that held the sender at the abort returned, or AbandonClose gave it
// up. Until then the owner keeps the stream open and its receive loop
// reading: a peer that is itself stuck sending (an echo backend whose
// answers fill the stream) must be read for that Write to return.
func (c *Conn) CloseSettled() <-chan struct{} { return c.closeSettled }

// CloseOwed reports whether a local abort still owes the peer its Close
// frame: the abort found a Write holding the sender, and that Write has not
// returned yet.
func (c *Conn) CloseOwed() bool {
	st := c.closeState.Load()
	return st == closeOwed || st == closeSending
}

// AbandonClose gives up an owed Close frame: the owner is about to end the
// stream, and no send may start after that. A send already under way is
// released by the stream's end.
func (c *Conn) AbandonClose() {
	if c.closeState.CompareAndSwap(closeOwed, closeDone) {
		close(c.closeSettled)
	}
}

// Deliver hands a Data payload to Read, or writes it to the PushTo
// destination, and returns once it is consumed: payload is not used after
// Deliver has returned, so the caller may reuse it. It returns an error
// once the session is aborted or closed, or the push failed.
func (c *Conn) Deliver(payload []byte) error {
	if len(payload) == 0 {
		return nil
	}
	c.delivering.Add(1)
	defer c.delivering.Add(-1)
	select {
	case <-c.sinkSet:
		return c.push(payload)
	default:
	}
	select {
	case c.data <- payload:
	case <-c.sinkSet:
		return c.push(payload)
	case <-c.aborted:
		return c.Err()
	case <-c.closed:
		c.Abort(ErrDataAfterClose)
		return c.Err()
	}
	select {
	case <-c.ack:
		return nil
	case <-c.aborted:
	case <-c.closed:
	}
	// Read may have consumed the whole payload just before the abort or
	// Close: then the hand-off is complete. Otherwise take the rest back,
	// under readMu, so no Read touches payload once Deliver has returned.
	c.readMu.Lock()
	select {
	case <-c.ack:
		c.readMu.Unlock()
		return nil
	default:
	}
	unread := len(c.pending) > 0
	c.pending = nil
	c.readMu.Unlock()
	if unread {
		c.Abort(ErrDataAfterClose) // Closed with data pending: TCP's reset
	}
	return c.Err()
}

// push writes p to the sink in the caller's goroutine (the receive loop).
func (c *Conn) push(p []byte) error {
	if err := c.Err(); err != nil {
		return err
	}
	if isClosed(c.closed) {
		c.Abort(ErrDataAfterClose) // nobody will read it: TCP's reset
		return c.Err()
	}
	n, err := c.sink.Write(p)
	c.bytesRead.Add(int64(n))
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		c.endPush(err)
		return err
	}
	return nil
}

// PushTo makes the receive loop write each payload to w itself, from
// within Deliver, instead of handing it to Read; do not call Read after it.
// end runs once, when the peer's bytes end: with a nil error after the
// peer's CloseWrite (every earlier payload written), or with why they
// ended (a failed write, an abort, Close). It may run in any goroutine,
// before PushTo returns if the end came first; it must not block.
func (c *Conn) PushTo(w io.Writer, end func(n int64, err error)) {
	// What a Read left of the current payload goes first. Its Deliver is
	// still waiting for the ack, so no later payload can overtake it.
	c.readMu.Lock()
	var leftErr error
	if p := c.pending; len(p) > 0 {
		c.pending = nil
		n, err := w.Write(p)
		c.bytesRead.Add(int64(n))
		if err == nil && n < len(p) {
			err = io.ErrShortWrite
		}
		leftErr = err
		c.ack <- struct{}{} // capacity 1: the payload is consumed
	}
	c.readMu.Unlock()
	c.pushMu.Lock()
	c.sink, c.pushEnd = w, end
	close(c.sinkSet)
	c.pushMu.Unlock()
	if leftErr != nil {
		c.endPush(leftErr)
		return
	}
	// An end that came before PushTo is reported now. A payload delivered
	// before CloseWrite was consumed before it, so EOF here is complete.
	switch {
	case c.Err() != nil:
		c.endPush(c.Err())
	case isClosed(c.closed):
		c.endPush(net.ErrClosed)
	case isClosed(c.eof):
		c.endPush(nil)
	}
}

// endPush reports the end of the pushed bytes, once.
func (c *Conn) endPush(err error) {
	c.pushMu.Lock()
	end := c.pushEnd
	c.pushEnd = nil
	c.pushMu.Unlock()
	if end != nil {
		end(c.bytesRead.Load(), err)
	}
}

// AfterAbort runs f once the session is aborted (at once if it already
// is), unless stop was called first: a way to learn of an abort with no
// goroutine waiting for it. f must not block.
func (c *Conn) AfterAbort(f func()) (stop func()) {
	c.abortMu.Lock()
	if c.abortErr != nil {
		c.abortMu.Unlock()
		f()
		return func() {}
	}
	h := &f
	c.hooks = append(c.hooks, h)
	c.abortMu.Unlock()
	return func() {
		c.abortMu.Lock()
		defer c.abortMu.Unlock()
		for i, x := range c.hooks {
			if x == h {
				c.hooks = append(c.hooks[:i], c.hooks[i+1:]...)
				return
			}
		}
	}
}

// DeliverCloseWrite marks the end of the peer's data: Read returns io.EOF
// once the payloads delivered before have been read.
func (c *Conn) DeliverCloseWrite() {
	c.eofOnce.Do(func() {
		c.readEOF.Store(true)
		close(c.eof)
	})
	if isClosed(c.sinkSet) {
		c.endPush(nil)
	}
}

// DeliverAbort records that the peer aborted the session (a Close frame,
// a broken stream). No frame is sent back.
func (c *Conn) DeliverAbort(reason relayv1.CloseReason, cause error) {
	c.abort(&AbortError{Remote: true, Reason: reason, Cause: cause}, false)
}

// Abort ends the session abnormally: it sends a Close frame with the
// configured reason when no Write is in progress, and releases every
// blocked Read, Write and Deliver. Safe to call more than once.
func (c *Conn) Abort(cause error) {
	c.abort(&AbortError{Reason: c.cfg.AbortReason, Cause: cause}, true)
}

// AbortWith is Abort with an explicit reason.
func (c *Conn) AbortWith(reason relayv1.CloseReason, cause error) {
	c.abort(&AbortError{Reason: reason, Cause: cause}, true)
}

func (c *Conn) abort(e *AbortError, sendClose bool) {
	c.abortMu.Lock()
	if c.abortErr != nil {
		c.abortMu.Unlock()
		return
	}
	c.abortErr = e
	c.abortMu.Unlock()

	closeSent := false
	if !sendClose {
		c.closeState.Store(closeDone)
		close(c.closeSettled)
	} else {
		// A Write blocked on flow control holds writeMu: the Close is owed
		// until it returns (unlockWrite), unless the owner ends the stream
		// first (AbandonClose), which the peer also reads as an abort.
		c.closeState.Store(closeOwed)
		if c.writeMu.TryLock() {
			if c.cfg.AsyncClose {
				go func() {
					c.sendOwedClose()
					c.writeMu.Unlock()
				}()
			} else {
				closeSent = c.sendOwedClose()
				c.writeMu.Unlock()
			}
		}
	}
	close(c.aborted)
	if c.cfg.OnAbort != nil {
		c.cfg.OnAbort(closeSent)
	}
	c.abortMu.Lock()
	hooks := c.hooks
	c.hooks = nil
	c.abortMu.Unlock()
	for _, h := range hooks {
		(*h)()
	}
	c.endPush(e)
}

// Err returns the abort error, or nil while the session is not aborted.
func (c *Conn) Err() error {
	c.abortMu.Lock()
	defer c.abortMu.Unlock()
	if c.abortErr == nil {
		return nil
	}
	return c.abortErr
}

// AbortCause returns the abort error, or nil.
func (c *Conn) AbortCause() *AbortError {
	c.abortMu.Lock()
	defer c.abortMu.Unlock()
	return c.abortErr
}

// Aborted is closed once the session is aborted.
func (c *Conn) Aborted() <-chan struct{} { return c.aborted }

// Read reads the peer's bytes; io.EOF after the peer's CloseWrite.
func (c *Conn) Read(b []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if len(c.pending) > 0 {
		return c.consume(b, c.pending), nil
	}
	select { // an abort or Close wins over buffered state
	case <-c.aborted:
		return 0, c.Err()
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	select {
	case p := <-c.data:
		return c.consume(b, p), nil
	case <-c.eof:
		return 0, io.EOF
	case <-c.aborted:
		return 0, c.Err()
	case <-c.closed:
		return 0, net.ErrClosed
	case <-c.readDL.wait():
		return 0, os.ErrDeadlineExceeded
	}
}

// consume copies p into b, keeps the rest pending, and acknowledges p once
// it is used up. Called with readMu held.
func (c *Conn) consume(b, p []byte) int {
	n := copy(b, p)
	c.bytesRead.Add(int64(n))
	c.pending = p[n:]
	if len(c.pending) == 0 {
		c.pending = nil
		c.ack <- struct{}{} // capacity 1, and one payload is in flight at a time
	}
	return n
}

// Write sends b as Data frames of at most MaxData bytes.
func (c *Conn) Write(b []byte) (int, error) {
	c.writeMu.Lock()
	defer c.unlockWrite()
	if err := c.Err(); err != nil {
		return 0, err
	}
	if c.writeClosed {
		if isClosed(c.closed) {
			return 0, net.ErrClosed
		}
		return 0, ErrWriteClosed
	}
	c.writeDLMu.Lock()
	dl := c.writeDL
	c.writeDLMu.Unlock()
	if !dl.IsZero() {
		if !time.Now().Before(dl) {
			return 0, os.ErrDeadlineExceeded
		}
		// A send stuck on flow control past the deadline can only be
		// released by ending the stream: the session is aborted.
		t := time.AfterFunc(time.Until(dl), func() { c.Abort(os.ErrDeadlineExceeded) })
		defer t.Stop()
	}
	n := 0
	for n < len(b) {
		if err := c.Err(); err != nil {
			return n, err // aborted between two frames: send no more
		}
		chunk := b[n:min(len(b), n+c.cfg.MaxData)]
		if err := c.cfg.Sender.SendData(chunk); err != nil {
			return n, c.sendFailed(err)
		}
		n += len(chunk)
		c.bytesWritten.Add(int64(len(chunk)))
	}
	return n, nil
}

// CloseWrite sends CloseWrite after everything written so far; the peer
// reads EOF and may keep sending.
func (c *Conn) CloseWrite() error {
	c.writeMu.Lock()
	defer c.unlockWrite()
	return c.closeWriteLocked()
}

func (c *Conn) closeWriteLocked() error {
	if c.writeClosed {
		return c.Err()
	}
	if err := c.Err(); err != nil {
		return err
	}
	c.writeClosed = true
	c.writeEOF.Store(true)
	if err := c.cfg.Sender.SendCloseWrite(); err != nil {
		return c.sendFailed(err)
	}
	return nil
}

// sendFailed returns what a Write or CloseWrite whose send failed with err
// returns: the abort error if the session is aborted (the abort may be
// what failed the send), or, with LostReason, the peer's abort it records
// now; err itself otherwise.
func (c *Conn) sendFailed(err error) error {
	if aerr := c.Err(); aerr != nil {
		return aerr
	}
	if c.cfg.LostReason != relayv1.CloseReason_CLOSE_REASON_UNSPECIFIED {
		c.DeliverAbort(c.cfg.LostReason, fmt.Errorf("send failed: %w", err))
		return c.Err()
	}
	return err
}

// Close ends the session the way closing a TCP socket does: written bytes
// are delivered and followed by CloseWrite; if unread peer data is pending,
// or more data arrives later, the session is aborted instead (TCP's reset).
func (c *Conn) Close() error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		close(c.closed)
	})
	if !first {
		return nil
	}
	c.endPush(net.ErrClosed)
	c.readMu.Lock() // Read has returned: closed is closed
	unread := len(c.pending) > 0
	c.pending = nil
	c.readMu.Unlock()
	if unread {
		c.Abort(ErrDataAfterClose)
		return nil
	}
	if !c.writeMu.TryLock() {
		// A Write is in progress; TCP would keep sending it, but a send
		// stuck on flow control must not block Close.
		c.Abort(net.ErrClosed)
		return nil
	}
	err := c.closeWriteLocked()
	c.unlockWrite()
	var ae *AbortError
	if errors.As(err, &ae) {
		return nil // already aborted: nothing left to close
	}
	return err
}

// Closed is closed once Close has been called.
func (c *Conn) Closed() <-chan struct{} { return c.closed }

// LocalAddr returns the configured local address.
func (c *Conn) LocalAddr() net.Addr { return c.cfg.LocalAddr }

// RemoteAddr returns the configured remote address (for the host agent: the
// real client).
func (c *Conn) RemoteAddr() net.Addr { return c.cfg.RemoteAddr }

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline makes a blocked or future Read return
// os.ErrDeadlineExceeded once t passes.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.readDL.set(t)
	return nil
}

// SetWriteDeadline bounds future Writes; a Write still blocked on flow
// control when t passes aborts the session.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.writeDLMu.Lock()
	c.writeDL = t
	c.writeDLMu.Unlock()
	return nil
}

// Stats is a snapshot of a session's progress.
type Stats struct {
	BytesRead, BytesWritten int64 // payload bytes read by the local side, and sent
	ReadClosed, WriteClosed bool  // the peer sent CloseWrite; we sent CloseWrite
}

// Delivering reports whether a Deliver is under way: the receive loop is
// waiting for the local side to take a payload (a backend that reads
// slowly, or not at all), and reads no frame meanwhile.
func (c *Conn) Delivering() bool { return c.delivering.Load() > 0 }

// Sink returns the writer PushTo gave the payloads to, or nil before
// PushTo: a watch of a stuck Deliver can ask a socket's kernel whether its
// reader still takes bytes, which a whole Write returning shows only in
// steps of about a third of the send buffer.
func (c *Conn) Sink() io.Writer {
	if !isClosed(c.sinkSet) {
		return nil
	}
	return c.sink // set once, before sinkSet was closed
}

// Stats returns the session's counters; safe to call at any time.
func (c *Conn) Stats() Stats {
	return Stats{
		BytesRead:    c.bytesRead.Load(),
		BytesWritten: c.bytesWritten.Load(),
		ReadClosed:   c.readEOF.Load(),
		WriteClosed:  c.writeEOF.Load(),
	}
}
