package splice

import (
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// The readiness watcher tells when a socket has something to read, with no
// goroutine per socket: a silent session is an entry in one epoll set, not
// a goroutine parked in Go's poller (whose stack, about 8 KiB once a copy
// has run, is most of what a held session costs).
//
// One goroutine waits on the set while any watch exists, and exits when
// the last one is released (so tests see no leftover goroutine). A watch
// is armed once per wait (EPOLLONESHOT): the goroutine disarms it, and its
// owner reads until EAGAIN before arming it again. Entries are keyed by a
// token, never by fd number, and every epoll_ctl on a socket runs inside
// its RawConn.Control, so a closed and reused fd number is never touched;
// the kernel drops a closed socket from the set by itself.

var watcher = &readiness{epfd: -1, watches: map[uint32]*watch{}}

type readiness struct {
	mu      sync.Mutex
	epfd    int // created on first use, kept for the process's life
	wakefd  int // an eventfd in the set: wakes the goroutine to let it exit
	running bool
	next    uint32
	watches map[uint32]*watch // live watches; guarded by mu
}

// wakeToken is the eventfd's token; watches get tokens from 1 on.
const wakeToken = 0

// watch is one socket's registration.
type watch struct {
	sock    socket
	token   uint32
	onReady func(err error) // runs once per arming: nil, or why the watch ended
	armed   bool            // guarded by readiness.mu
	added   bool            // in the epoll set; guarded by readiness.mu
	dead    bool            // guarded by readiness.mu
}

// readinessAvailable reports whether sockets can be watched without a
// goroutine each.
func readinessAvailable() bool {
	watcher.mu.Lock()
	defer watcher.mu.Unlock()
	return watcher.initLocked() == nil
}

func (r *readiness) initLocked() error {
	if r.epfd >= 0 {
		return nil
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeToken}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return err
	}
	r.epfd, r.wakefd = epfd, wakefd
	return nil
}

// newWatch registers sock, not yet armed. onReady must not block: it
// starts whatever reads the socket.
func newWatch(sock socket, onReady func(err error)) (*watch, error) {
	r := watcher
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.initLocked(); err != nil {
		return nil, err
	}
	r.next++
	if r.next == wakeToken {
		r.next++
	}
	w := &watch{sock: sock, token: r.next, onReady: onReady}
	r.watches[w.token] = w
	if !r.running {
		r.running = true
		go r.loop()
	}
	return w, nil
}

// arm asks for one onReady call once sock is readable (data, EOF or an
// error); with errorsOnly, once it is reset or fully closed. It fails if
// the watch ended or the socket is closed.
func (w *watch) arm(errorsOnly bool) error {
	r := watcher
	r.mu.Lock()
	defer r.mu.Unlock()
	if w.dead {
		return errWatchEnded
	}
	events := uint32(unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT)
	if errorsOnly {
		events = unix.EPOLLONESHOT // EPOLLERR and EPOLLHUP are always reported
	}
	raw, err := w.sock.SyscallConn()
	if err != nil {
		return err
	}
	w.armed = true
	var ctlErr error
	err = raw.Control(func(fd uintptr) {
		op := unix.EPOLL_CTL_MOD
		if !w.added {
			op = unix.EPOLL_CTL_ADD
		}
		ev := unix.EpollEvent{Events: events, Fd: int32(w.token)}
		ctlErr = unix.EpollCtl(r.epfd, op, int(fd), &ev)
	})
	if err == nil {
		err = ctlErr
	}
	if err != nil {
		w.armed = false
		return err
	}
	w.added = true
	return nil
}

// end releases the watch. If it was armed, onReady runs now with cause,
// in the caller's goroutine. Safe to call more than once.
func (w *watch) end(cause error) {
	r := watcher
	r.mu.Lock()
	if w.dead {
		r.mu.Unlock()
		return
	}
	w.dead = true
	wasArmed := w.armed
	w.armed = false
	delete(r.watches, w.token)
	if w.added {
		// Best effort: a closed socket has already left the set.
		if raw, err := w.sock.SyscallConn(); err == nil {
			raw.Control(func(fd uintptr) { unix.EpollCtl(r.epfd, unix.EPOLL_CTL_DEL, int(fd), nil) })
		}
	}
	if len(r.watches) == 0 && r.running {
		var one = [8]byte{1}
		unix.Write(r.wakefd, one[:]) // the goroutine exits
	}
	r.mu.Unlock()
	if wasArmed {
		w.onReady(cause)
	}
}

// loop waits on the epoll set and fires armed watches, until no watch is
// left.
func (r *readiness) loop() {
	var events [128]unix.EpollEvent
	for {
		n, err := unix.EpollWait(r.epfd, events[:], -1)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			// Not expected; fail every armed watch rather than hang them.
			r.failAll(err)
			return
		}
		for _, ev := range events[:n] {
			tok := uint32(ev.Fd)
			if tok == wakeToken {
				var b [8]byte
				unix.Read(r.wakefd, b[:])
				r.mu.Lock()
				if len(r.watches) == 0 {
					r.running = false
					r.mu.Unlock()
					return
				}
				r.mu.Unlock()
				continue
			}
			r.mu.Lock()
			w := r.watches[tok]
			fire := w != nil && w.armed
			if fire {
				w.armed = false
			}
			r.mu.Unlock()
			if fire {
				w.onReady(nil)
			}
		}
	}
}

func (r *readiness) failAll(err error) {
	r.mu.Lock()
	ws := make([]*watch, 0, len(r.watches))
	for _, w := range r.watches {
		ws = append(ws, w)
	}
	r.running = false
	r.mu.Unlock()
	for _, w := range ws {
		w.end(err)
	}
}

// sockReader reads a socket in Go's poller (not holding an OS thread)
// with no allocation per read: the RawConn and the callback are made once,
// by newSockReader, for a pump's whole run, instead of once per read (a
// closure and the two results it sets escaped to the heap: four
// allocations for every frame a busy session read).
type sockReader struct {
	raw syscall.RawConn
	buf []byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

func newSockReader(sock socket) (*sockReader, error) {
	raw, err := sock.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &sockReader{raw: raw}
	r.fn = r.readFD
	return r, nil
}

func (r *sockReader) readFD(fd uintptr) bool {
	for {
		r.n, r.err = unix.Read(int(fd), r.buf)
		if r.err != unix.EINTR {
			return r.err != unix.EAGAIN // nothing yet: park in the poller
		}
	}
}

// read reads what the socket has into buf, waiting until it has bytes, an
// EOF or an error: n > 0 bytes, or n == 0 with a nil error at EOF, or the
// socket's error, or the poller's (the read deadline passed, the socket was
// closed).
func (r *sockReader) read(buf []byte) (int, error) {
	r.buf = buf
	err := r.raw.Read(r.fn)
	r.buf = nil
	if err != nil {
		return 0, err
	}
	return max(r.n, 0), r.err
}

// socketError returns sock's pending error (SO_ERROR), if any.
func socketError(sock socket) error {
	raw, err := sock.SyscallConn()
	if err != nil {
		return err
	}
	var soerr int
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		soerr, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
	}); err != nil {
		return err
	}
	if gerr != nil {
		return gerr
	}
	if soerr != 0 {
		return unix.Errno(soerr)
	}
	return nil
}
