// Package splice joins two byte streams with TCP half-close semantics: each
// direction is copied until its source ends; a clean end becomes CloseWrite
// on the destination (a FIN, or a CloseWrite frame), and an error in either
// direction aborts both ends (a TCP reset, or a Close frame). It is the one
// place where relayd and hostagent decide how a session ends.
package splice

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Conn is one end of a joined pair.
type Conn interface {
	io.ReadWriteCloser
	// CloseWrite ends the writing direction after everything written so far.
	CloseWrite() error
}

// Aborter is implemented by conns that can end abnormally, so the peer knows
// the stream did not end cleanly. Conns without it are aborted with Close,
// except *net.TCPConn, which is reset (see Reset).
type Aborter interface {
	Abort(cause error)
}

// BufferSize is the copy buffer size. It keeps one read from a socket within
// one Data frame whose encoding stays under 32 KiB: grpc-go decodes a message
// of more than 32 KiB into a 1 MiB pooled buffer that it zeroes every time.
const BufferSize = 32*1024 - 256

// ResetDrainTimeout bounds how long Reset waits for the peer to acknowledge
// more of the bytes already written before it resets the connection: a
// peer that keeps taking them, slowly, gets them all, within
// ResetDrainLimit.
const ResetDrainTimeout = 2 * time.Second

// ResetDrainLimit bounds Reset's wait in all.
const ResetDrainLimit = time.Minute

// hurry: see HurryResets.
var hurry atomic.Bool

// HurryResets makes every Reset, in this process, from now on and those
// waiting, wait at most its maxWait from its start, not from the peer's
// last progress: a process that is stopping (its drain over, or a second
// signal) must not wait a minute for a slow client.
func HurryResets() { hurry.Store(true) }

var bufPool = sync.Pool{New: func() any { b := make([]byte, BufferSize); return &b }}

// Result reports what one Join moved.
type Result struct {
	AToB, BToA int64 // bytes copied in each direction
	Err        error // the first error, nil when both directions ended cleanly
}

// Join copies a→b and b→a until both directions end, then closes both.
// The b→a direction runs on a goroutine that Join waits for, unless one of
// the conns is a Pusher: then its owner's receive loop writes its bytes,
// and Join needs no goroutine of its own.
func Join(a, b Conn) Result {
	abortiveWhileJoined(a)
	abortiveWhileJoined(b)
	if pb, ok := b.(Pusher); ok {
		return joinPush(a, b, pb)
	}
	if pa, ok := a.(Pusher); ok {
		res := joinPush(b, a, pa)
		res.AToB, res.BToA = res.BToA, res.AToB
		return res
	}
	var (
		res    Result
		wg     sync.WaitGroup
		ra, rb resetOnce
	)
	fail, firstErr := failer(a, b, &ra, &rb)
	var aEnding, bEnding atomic.Bool // CloseWrite begun on a, on b
	// Once a direction has ended cleanly, its source is read no more; a
	// reset that it sends later must still abort the session, so each
	// side watches its source until the other direction ends too.
	aToBDone, bToADone := make(chan struct{}), make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		var clean bool
		res.BToA, clean = half(a, b, &aEnding, &bEnding, fail)
		close(bToADone)
		if clean {
			watchReset(b, aToBDone, fail)
		}
	}()
	var clean bool
	res.AToB, clean = half(b, a, &bEnding, &aEnding, fail)
	close(aToBDone)
	if clean {
		watchReset(a, bToADone, fail)
	}
	wg.Wait()
	res.Err = firstErr()
	closeJoined(a, res.Err != nil, &ra)
	closeJoined(b, res.Err != nil, &rb)
	return res
}

// closeJoined closes c at the end of its join. After a clean end it gets
// its normal close back first (see abortiveWhileJoined). After a failure a
// *net.TCPConn is reset (r, started by the failure) once the bytes written
// to it are acknowledged (up to ResetDrainTimeout): a plain close would
// send a FIN (the peer would take the cut stream for a finished one) or,
// with the abortive linger, a reset that drops those bytes.
func closeJoined(c Conn, failed bool, r *resetOnce) {
	if !failed {
		gracefulAgain(c)
		c.Close()
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		r.start(tc)
		<-r.done
		return
	}
	c.Close()
}

// resetOnce resets a failed join's socket once, on a goroutine of its own:
// started by the failure, so that the peer is reset as soon as it has
// acknowledged what it was sent, not when the join ends (a side stuck in a
// Send to a host that does not read ends only when its owner ends it), and
// waited for by the join's end (closeJoined), so that it has an owner.
type resetOnce struct {
	once sync.Once
	done chan struct{}
}

func (r *resetOnce) start(c *net.TCPConn) {
	r.once.Do(func() {
		r.done = make(chan struct{})
		go func() {
			defer close(r.done)
			Reset(c, ResetDrainTimeout)
		}()
	})
}

// startReset starts r's reset of c when c is a *net.TCPConn.
func startReset(c Conn, r *resetOnce) {
	if tc, ok := c.(*net.TCPConn); ok {
		r.start(tc)
	}
}

// lingerer is a conn whose close can be made abortive (*net.TCPConn).
type lingerer interface{ SetLinger(sec int) error }

// abortiveWhileJoined makes c's close abortive (SO_LINGER 0) while the join
// runs: if this process dies mid-session (SIGKILL, the OOM killer), the
// kernel then resets c's connection instead of closing it with a FIN, so
// that a cut stream never looks finished to the peer. gracefulAgain gives
// c its normal close back before a clean end; an abort resets c anyway.
func abortiveWhileJoined(c Conn) {
	if l, ok := c.(lingerer); ok {
		l.SetLinger(0)
	}
}

func gracefulAgain(c Conn) {
	if l, ok := c.(lingerer); ok {
		l.SetLinger(-1)
	}
}

// failer returns the fail function of a join of a and b: the first error
// is kept in *first and aborts both. It may be called again from within
// those aborts (a Pusher reports its end from Abort), so it guards itself
// with a flag, not a sync.Once, which would deadlock.
func failer(a, b Conn, ra, rb *resetOnce) (fail func(error), first func() error) {
	var mu sync.Mutex
	failed := false
	var firstErr error
	fail = func(err error) {
		mu.Lock()
		if failed {
			mu.Unlock()
			return
		}
		failed, firstErr = true, err
		mu.Unlock()
		abort(a, err)
		abort(b, err)
		startReset(a, ra)
		startReset(b, rb)
	}
	// Read under the lock: an abort hook may still be failing the join
	// (from the conn's own goroutine) after the join's directions ended.
	first = func() error {
		mu.Lock()
		defer mu.Unlock()
		return firstErr
	}
	return fail, first
}

// joinPush is Join of a socket-like conn s, copied to p by this goroutine,
// and a Pusher p, whose bytes its receive loop writes to s.
func joinPush(s, p Conn, pp Pusher) Result {
	var (
		res    Result
		pushed int64
		rs, rp resetOnce
	)
	fail, firstErr := failer(s, p, &rs, &rp)
	var sEnding, pEnding atomic.Bool // CloseWrite begun on s, on p
	pushDone := make(chan struct{})
	pp.PushTo(s, func(n int64, err error) {
		if err == nil {
			sEnding.Store(true)
			err = s.CloseWrite()
		}
		if err != nil {
			fail(err)
		}
		pushed = n
		close(pushDone)
	})
	// Once p's bytes have ended cleanly, nothing reads p any more: an abort
	// that comes later (the peer's Close) must still end the session.
	stop := pp.AfterAbort(func() {
		err := pp.Err()
		if err == nil {
			err = errAborted
		}
		fail(err)
	})
	var clean bool
	res.AToB, clean = half(p, s, &pEnding, &sEnding, fail)
	if clean {
		watchReset(s, pushDone, fail)
	}
	<-pushDone
	stop()
	res.BToA = pushed
	res.Err = firstErr()
	closeJoined(s, res.Err != nil, &rs)
	p.Close()
	return res
}

// half copies src to dst, then half-closes dst; on error it calls fail.
// It reports whether the direction ended cleanly. dstEnding is set as
// dst's CloseWrite begins; srcEnding is set by the other direction as src's
// does (see eofIsReset).
func half(dst, src Conn, dstEnding, srcEnding *atomic.Bool, fail func(error)) (int64, bool) {
	n, err := Copy(dst, src)
	if err == nil {
		err = eofIsReset(src, srcEnding.Load)
	}
	if err == nil {
		dstEnding.Store(true)
		err = dst.CloseWrite()
	}
	if err != nil {
		fail(err)
	}
	return n, err == nil
}

// errResetBehindEOF is a peer's reset that a write to its socket met
// first, so that the next read returned 0 as if at a FIN.
var errResetBehindEOF = fmt.Errorf("reset (met first by a write): %w", os.NewSyscallError("read", syscall.ECONNRESET))

// eofIsReset checks a clean EOF read from src: if src is a socket that
// the peer in fact reset (a write took the error: see closedState), it
// returns errResetBehindEOF, so the reset is passed on as an abort and
// never as a FIN. srcEnding tells whether src's own CloseWrite has begun;
// it is read after the state, so that a FIN of ours that closed the
// socket meanwhile is not taken for a reset.
func eofIsReset(src Conn, srcEnding func() bool) error {
	sc, ok := src.(socket)
	if !ok || !closedState(sc) || srcEnding() {
		return nil
	}
	return errResetBehindEOF
}

// Pusher is implemented by conns whose received bytes are delivered by
// their owner's receive loop (attachconn's Conn): Copy and Join let that
// loop write each payload to the destination itself, with no buffer in
// between and no goroutine waiting to read a silent session.
type Pusher interface {
	AbortNotifier
	// PushTo makes the receive loop write every received payload to w. end
	// runs once, in any goroutine, when the bytes end: a nil error after
	// the peer's clean end, or why they ended (a failed write, an abort,
	// Close). end must not wait for the receive loop.
	PushTo(w io.Writer, end func(n int64, err error))
	// AfterAbort runs f once the conn is aborted (at once if it already
	// is), unless stop was called first. f must not wait for the receive
	// loop.
	AfterAbort(f func()) (stop func())
}

// socket is a conn whose reset can be watched for (a *net.TCPConn, or a
// type that embeds one).
type socket interface {
	SyscallConn() (syscall.RawConn, error)
	SetReadDeadline(time.Time) error
}

// AbortNotifier is implemented by conns that announce their own abnormal
// end (a Close frame from the peer, a broken stream), such as attachconn's
// Conn: Join watches it once that conn's data has ended.
type AbortNotifier interface {
	Aborted() <-chan struct{} // closed once the conn is aborted
	Err() error               // why, once Aborted is closed
}

// watchReset waits, after src has ended cleanly, until src is reset or
// aborted (then it calls fail) or until stop is closed. Other conns are not
// watched: their owner reports an abort by other means.
func watchReset(src Conn, stop <-chan struct{}, fail func(error)) {
	if an, ok := src.(AbortNotifier); ok {
		select {
		case <-an.Aborted():
			err := an.Err()
			if err == nil {
				err = errAborted
			}
			fail(err)
		case <-stop:
		}
		return
	}
	sc, ok := src.(socket)
	if !ok {
		return
	}
	select {
	case <-stop:
		return
	default:
	}
	watched := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-stop:
			sc.SetReadDeadline(time.Now()) // ends waitReset
		case <-watched:
		}
	})
	err := waitReset(sc)
	close(watched)
	wg.Wait()
	if err != nil {
		fail(err)
	}
}

// Copy copies src to dst until src reports io.EOF, with a pooled buffer of
// BufferSize bytes, so one read becomes at most one write (one frame). Unlike
// io.Copy it never uses ReaderFrom/WriterTo, whose buffers are larger; a
// Pusher source has its receive loop write its frames, while Copy waits.
func Copy(dst io.Writer, src io.Reader) (int64, error) {
	if p, ok := src.(Pusher); ok {
		type result struct {
			n   int64
			err error
		}
		done := make(chan result, 1)
		p.PushTo(dst, func(n int64, err error) { done <- result{n, err} })
		r := <-done
		return r.n, r.err
	}
	// A socket source is read only once it is readable, and its buffer goes
	// back to the pool whenever a read drains it: a silent session holds no
	// buffer, only a goroutine parked in the poller.
	sock, isSock := src.(socket)
	var bp *[]byte
	defer func() {
		if bp != nil {
			bufPool.Put(bp)
		}
	}()
	var total int64
	for {
		if bp == nil {
			if isSock {
				if err := waitReadable(sock); err != nil {
					return total, err
				}
			}
			bp = bufPool.Get().(*[]byte)
		}
		buf := *bp
		n, rerr := src.Read(buf)
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			total += int64(w)
			if werr != nil {
				return total, werr
			}
			if w != n {
				return total, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
		if isSock && n < len(buf) {
			bufPool.Put(bp)
			bp = nil
		}
	}
}

// abort ends c's part in a failed join. A *net.TCPConn only has its
// blocked Read and Write released here; its reset (resetOnce) waits for its
// peer to acknowledge the bytes written, up to ResetDrainTimeout for a peer
// that does not read: not in the aborting caller (an operator's
// CloseSession, or the receive loop that read the peer's Close).
func abort(c Conn, cause error) {
	switch c := c.(type) {
	case Aborter:
		c.Abort(cause)
	case *net.TCPConn:
		c.SetDeadline(aLongTimeAgo)
	default:
		c.Close()
	}
}

// aLongTimeAgo is a deadline that has passed: set, it releases a blocked
// Read or Write at once.
var aLongTimeAgo = time.Unix(1, 0)

// Reset ends c abnormally: the peer reads every byte already written, then
// gets a connection reset. It waits for the peer to acknowledge the bytes
// in flight, because a reset discards unsent data: up to maxWait without
// progress, and ResetDrainLimit in all.
func Reset(c *net.TCPConn, maxWait time.Duration) {
	waitUnacked(c, maxWait)
	c.SetLinger(0) // close now sends RST instead of FIN
	c.Close()
}

var errAborted = errors.New("conn aborted")

// IsClosed reports whether err means the conn was closed locally.
func IsClosed(err error) bool { return errors.Is(err, net.ErrClosed) }
