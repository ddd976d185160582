// Package splice joins two byte streams with TCP half-close semantics: each
// direction is copied until its source ends; a clean end becomes CloseWrite
// on the destination (a FIN, or a CloseWrite frame), and an error in either
// direction aborts both ends (a TCP reset, or a Close frame). It is the one
// place where relayd and hostagent decide how a session ends.
package splice

import (
	"errors"
	"io"
	"net"
	"sync"
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
// bytes already written before it resets the connection.
const ResetDrainTimeout = 2 * time.Second

var bufPool = sync.Pool{New: func() any { b := make([]byte, BufferSize); return &b }}

// Result reports what one Join moved.
type Result struct {
	AToB, BToA int64 // bytes copied in each direction
	Err        error // the first error, nil when both directions ended cleanly
}

// Join copies a→b and b→a until both directions end, then closes both.
// The b→a direction runs on a goroutine that Join waits for.
func Join(a, b Conn) Result {
	var (
		once     sync.Once
		firstErr error
		res      Result
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		once.Do(func() {
			firstErr = err
			abort(a, err)
			abort(b, err)
		})
	}
	// Once a direction has ended cleanly, its source is read no more; a
	// reset that it sends later must still abort the session, so each
	// side watches its source until the other direction ends too.
	aToBDone, bToADone := make(chan struct{}), make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		var clean bool
		res.BToA, clean = half(a, b, fail)
		close(bToADone)
		if clean {
			watchReset(b, aToBDone, fail)
		}
	}()
	var clean bool
	res.AToB, clean = half(b, a, fail)
	close(aToBDone)
	if clean {
		watchReset(a, bToADone, fail)
	}
	wg.Wait()
	a.Close()
	b.Close()
	res.Err = firstErr
	return res
}

// half copies src to dst, then half-closes dst; on error it calls fail.
// It reports whether the direction ended cleanly.
func half(dst, src Conn, fail func(error)) (int64, bool) {
	n, err := Copy(dst, src)
	if err == nil {
		err = dst.CloseWrite()
	}
	if err != nil {
		fail(err)
	}
	return n, err == nil
}

// PayloadWriter is implemented by conns that hand over received frames
// themselves (attachconn's Conn): Copy lets them write each payload to the
// destination directly, with no buffer in between.
type PayloadWriter interface {
	WritePayloadsTo(w io.Writer) (int64, error)
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
// PayloadWriter source writes its frames itself.
func Copy(dst io.Writer, src io.Reader) (int64, error) {
	if pw, ok := src.(PayloadWriter); ok {
		return pw.WritePayloadsTo(dst)
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

func abort(c Conn, cause error) {
	switch c := c.(type) {
	case Aborter:
		c.Abort(cause)
	case *net.TCPConn:
		Reset(c, ResetDrainTimeout)
	default:
		c.Close()
	}
}

// Reset ends c abnormally: the peer reads every byte already written, then
// gets a connection reset. It waits (up to maxWait) for the peer to
// acknowledge the bytes in flight, because a reset discards unsent data.
func Reset(c *net.TCPConn, maxWait time.Duration) {
	waitUnacked(c, maxWait)
	c.SetLinger(0) // close now sends RST instead of FIN
	c.Close()
}

var errAborted = errors.New("conn aborted")

// IsClosed reports whether err means the conn was closed locally.
func IsClosed(err error) bool { return errors.Is(err, net.ErrClosed) }
