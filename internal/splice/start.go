package splice

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// Start joins a and b as Join does, but returns at once: done runs once,
// in some goroutine, with the Result, after both directions have ended and
// both conns are closed. When one conn is a Pusher and the other a socket,
// a held, silent session then has no goroutine at all on Start's side: the
// socket waits in a shared epoll set (Linux), a goroutine copies only while
// it has bytes, and the Pusher's receive loop writes the other direction.
// Otherwise Start runs Join on a goroutine of its own.
//
// While the join runs, end it by aborting a conn (an Aborter's Abort, the
// Pusher's abort), never by closing the socket behind its back: a closed
// socket leaves the epoll set without an event, and its watch would wait
// forever.
func Start(a, b Conn, done func(Result)) {
	if pb, ok := b.(Pusher); ok {
		if sa, ok := a.(socket); ok && readinessAvailable() {
			startPush(a, sa, b, pb, false, done)
			return
		}
	}
	if pa, ok := a.(Pusher); ok {
		if sb, ok := b.(socket); ok && readinessAvailable() {
			startPush(b, sb, a, pa, true, done)
			return
		}
	}
	go func() { done(Join(a, b)) }()
}

// asyncJoin is Start's join of a socket s and a Pusher p. The s → p
// direction is driven by a watch: armed while s is silent, a pump goroutine
// while s has bytes, then, after s's clean EOF, armed for errors only until
// p's bytes have ended too (a reset after the FIN must still abort).
type asyncJoin struct {
	s, p    Conn
	sock    socket
	pp      Pusher
	swapped bool // s is Start's b: report the directions the other way
	done    func(Result)
	w       *watch

	mu       sync.Mutex
	failed   bool
	firstErr error
	left     int  // directions not yet ended
	sEOF     bool // s ended cleanly; the watch now looks for a reset
	sEnding  bool // s's CloseWrite has begun (see eofIsReset)
	pushEnd  bool // p's bytes have ended
	sReset   resetOnce
	sToP     int64
	pToS     int64
	stopHook func()

	// While a write to p is stuck (flow control: the host does not read),
	// nothing reads s, and a reset of s would go unseen until that write
	// returns. stall looks at s's pending error every stallCheck meanwhile.
	stall   *time.Timer
	writing bool // a pump is in p.Write; guarded by mu
}

// stallCheck is how often a socket whose bytes wait for p is checked for a
// reset: each check is one getsockopt, and only while a write is stuck.
const stallCheck = time.Second

func startPush(s Conn, sock socket, p Conn, pp Pusher, swapped bool, done func(Result)) {
	j := &asyncJoin{s: s, sock: sock, p: p, pp: pp, swapped: swapped, done: done, left: 2}
	w, err := newWatch(sock, j.onReady)
	if err != nil { // cannot watch: fall back to a goroutine (Join sets the linger)
		go func() {
			res := Join(s, p)
			if swapped {
				res.AToB, res.BToA = res.BToA, res.AToB
			}
			done(res)
		}()
		return
	}
	j.w = w
	abortiveWhileJoined(s)
	// An abort of p that comes while s is silent, or after p's bytes ended,
	// is seen by no read: it must end the join by itself. (Neither direction
	// can end before PushTo and the first pump, so stopHook is set before
	// finishOne reads it.)
	stop := pp.AfterAbort(func() {
		err := pp.Err()
		if err == nil {
			err = errAborted
		}
		j.fail(err)
	})
	j.mu.Lock()
	j.stopHook = stop
	j.mu.Unlock()
	pp.PushTo(s, j.pushEnded)
	// Bytes may already be waiting: start with a read, not a wait.
	j.startPump()
}

// fail keeps the first error and aborts both conns; it ends the watch, so
// an s → p direction waiting for s ends too. It may be called again from
// within those aborts.
func (j *asyncJoin) fail(err error) {
	j.mu.Lock()
	if j.failed {
		j.mu.Unlock()
		return
	}
	j.failed, j.firstErr = true, err
	j.mu.Unlock()
	abort(j.s, err)
	abort(j.p, err)
	j.w.end(err)
	startReset(j.s, &j.sReset) // out of the watch first: it closes s
}

// pushEnded is p's end callback: its bytes have all been written to s.
func (j *asyncJoin) pushEnded(n int64, err error) {
	if err == nil {
		j.mu.Lock()
		j.sEnding = true
		j.mu.Unlock()
		err = j.s.CloseWrite()
	}
	if err != nil {
		j.fail(err)
	}
	j.mu.Lock()
	j.pToS = n
	j.pushEnd = true
	watching := j.sEOF
	j.mu.Unlock()
	if watching {
		// s had ended cleanly and was watched for a reset: nothing is left
		// to watch for. end runs onReady, which ends the s → p direction.
		j.w.end(nil)
	}
	j.finishOne()
}

// onReady is the watch's callback: s is readable, or (in the watch for
// errors) reset or closed, or the watch ended with err. It runs in the
// watcher's goroutine, which serves every session: the work goes to a
// goroutine of its own (a reset may wait for unacknowledged bytes, a
// CloseWrite for flow control).
func (j *asyncJoin) onReady(err error) { go j.ready(err) }

func (j *asyncJoin) ready(err error) {
	j.mu.Lock()
	sEOF := j.sEOF
	j.mu.Unlock()
	switch {
	case sEOF:
		// After s's clean EOF only a reset matters; a clean hang-up or the
		// end of the watch closes the direction.
		if err == nil {
			if serr := socketError(j.sock); serr != nil {
				j.fail(readError(serr))
			}
			j.w.end(nil)
		}
		j.finishOne()
	case err != nil:
		j.fail(err) // usually already failed: the watch ended because of it
		j.finishOne()
	default:
		j.pump()
	}
}

func (j *asyncJoin) startPump() { go j.pump() }

// readError is the error of a read that found a socket's pending error
// (SO_ERROR). Linux gives EPIPE for a reset in CLOSE_WAIT, i.e. after the
// peer's FIN: it is said as the reset it is, not as "broken pipe".
func readError(soerr error) error {
	if errors.Is(soerr, syscall.EPIPE) {
		return fmt.Errorf("reset after FIN: %w", os.NewSyscallError("read", syscall.ECONNRESET))
	}
	return os.NewSyscallError("read", soerr)
}

// pollLinger is how long a pump waits for more bytes in Go's poller, after
// it last moved some, before it gives its socket to the epoll watch and
// exits. The watch costs no goroutine, but each wake-up through it costs a
// blocking epoll_wait returning, a new goroutine and an epoll_ctl to
// re-arm: on an echo round trip that was about a fifth of the relay's
// latency. A busy session (the next bytes within pollLinger) keeps its
// pump and its pooled buffer; a silent one is back in the watch, with
// neither, after at most twice pollLinger. Short, because lingering pumps
// are memory: opening 2000 sessions in 0.7 s (relayload's hold phase), a
// 20 ms linger added 2.8 KiB of RSS per held session (relayd + hostagent),
// 5 ms 1.2 KiB; an echo round trip gains the same from either. It must be
// above zero: a deadline already passed fails the read before it is tried.
const pollLinger = 5 * time.Millisecond

// pump copies what s has to p, until s has been silent for pollLinger
// (then it arms the watch and returns), its EOF, or an error.
func (j *asyncJoin) pump() {
	bp := bufPool.Get().(*[]byte)
	defer func() { bufPool.Put(bp) }()
	buf := *bp
	rd, err := newSockReader(j.sock)
	if err != nil {
		j.failEnd(err)
		return
	}
	// One deadline per pollLinger, not per wait: a timer reset for every
	// read would cost more than the wake-ups saved.
	j.sock.SetReadDeadline(time.Now().Add(pollLinger))
	moved := false // since the deadline was set
	for {
		n, err := rd.read(buf)
		if n > 0 {
			j.writeStarting()
			w, werr := j.p.Write(buf[:n])
			j.mu.Lock()
			j.writing = false
			j.stall.Stop()
			j.sToP += int64(w)
			j.mu.Unlock()
			if werr == nil && w != n {
				werr = errShortWrite
			}
			if werr != nil {
				j.sock.SetReadDeadline(time.Time{})
				j.fail(werr)
				j.w.end(werr)
				j.finishOne()
				return
			}
			moved = true
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && moved {
			moved = false
			j.sock.SetReadDeadline(time.Now().Add(pollLinger))
			continue
		}
		j.sock.SetReadDeadline(time.Time{})
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			// Silent for pollLinger: the watch waits for the next bytes.
			if aerr := j.w.arm(false); aerr != nil {
				j.failEnd(aerr)
			}
			return
		case err == nil: // EOF, or a reset a write met first
			// A failure under way (its abort of p may not have come yet)
			// or a reset behind this EOF: no CloseWrite may go first.
			if rerr := eofIsReset(j.s, j.sEndingNow); rerr != nil || j.hasFailed() {
				j.failEnd(cmp.Or(rerr, errAborted))
				return
			}
			j.writeStarting() // a CloseWrite frame waits on flow control too
			cerr := j.p.CloseWrite()
			j.mu.Lock()
			j.writing = false
			j.stall.Stop()
			j.mu.Unlock()
			if cerr != nil {
				j.failEnd(cerr)
				return
			}
			j.mu.Lock()
			j.sEOF = true
			pushEnd := j.pushEnd
			j.mu.Unlock()
			if pushEnd {
				j.w.end(nil)
				j.finishOne()
				return
			}
			if aerr := j.w.arm(true); aerr != nil {
				// The watch ended meanwhile (p's end, a failure): then
				// onReady is not coming, and the direction ends here.
				if errors.Is(aerr, errWatchEnded) {
					j.finishOne()
					return
				}
				j.failEnd(aerr)
			}
			return
		default:
			j.failEnd(os.NewSyscallError("read", err))
			return
		}
	}
}

// writeStarting marks a write to p under way, and has stall look at s if
// it is still under way after stallCheck.
func (j *asyncJoin) writeStarting() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.writing = true
	if j.stall == nil {
		j.stall = time.AfterFunc(stallCheck, j.checkStalled)
		return
	}
	j.stall.Reset(stallCheck)
}

// checkStalled fails the join if s was reset while a write to p is stuck.
// Under mu, so that the pump cannot end the join, and close s, meanwhile:
// it takes mu as its write returns.
func (j *asyncJoin) checkStalled() {
	j.mu.Lock()
	if !j.writing || j.failed {
		j.mu.Unlock()
		return
	}
	err := socketError(j.sock)
	if err == nil {
		j.stall.Reset(stallCheck)
	}
	j.mu.Unlock()
	if err != nil {
		j.fail(readError(err))
	}
}

func (j *asyncJoin) hasFailed() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.failed
}

func (j *asyncJoin) sEndingNow() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.sEnding
}

// failEnd fails the join from the pump and ends the s → p direction.
func (j *asyncJoin) failEnd(err error) {
	j.fail(err)
	j.w.end(err)
	j.finishOne()
}

// finishOne marks one direction ended; the second one closes both conns
// and reports.
func (j *asyncJoin) finishOne() {
	j.mu.Lock()
	j.left--
	last := j.left == 0
	stop := j.stopHook
	j.mu.Unlock()
	if !last {
		return
	}
	if stop != nil {
		stop()
	}
	j.w.end(nil)
	j.mu.Lock()
	failed := j.failed
	res := Result{AToB: j.sToP, BToA: j.pToS, Err: j.firstErr}
	if j.stall != nil {
		j.stall.Stop()
	}
	j.mu.Unlock()
	if j.swapped {
		res.AToB, res.BToA = res.BToA, res.AToB
	}
	finish := func() {
		closeJoined(j.s, failed, &j.sReset)
		j.p.Close()
		j.done(res)
	}
	if failed {
		// The reset waits for s's peer to acknowledge what it was sent, up
		// to ResetDrainTimeout: not in the goroutine that ended the join,
		// which may be the one that aborted it (an operator's CloseSession,
		// or the receive loop that read the host's Close). done tells the
		// join's owner when it is over.
		go finish()
		return
	}
	finish()
}

var (
	errShortWrite = errors.New("short write")
	errWatchEnded = errors.New("splice: socket watch ended")
)
