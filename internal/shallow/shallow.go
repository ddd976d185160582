// Package shallow keeps long-lived goroutines' stacks small. A goroutine
// keeps the largest stack it ever grew while it waits (Go halves a parked
// stack at a garbage collection only while it uses less than a quarter of
// it), and relay's goroutines wait for a long time: an Attach handler for a
// client, a slot for Open, a receive loop for the next frame. Run moves a
// deep one-time call (a send, decoding Hello, a token check, a log line)
// to another goroutine, so that the waiting one stays at its first 4 KiB.
//
// A new goroutine for each such call would pay for the depth instead: it
// starts small and its stack is copied each time it doubles (2 → 4 → 8
// KiB), which cost relayd and hostagent about a tenth of their CPU per
// session. A Pool keeps a few goroutines whose stacks have already grown
// and hands them the calls: a short-lived goroutine still carries each call
// to a worker, but it stays shallow, and is not copied.
package shallow

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
)

// Run calls f on a short-lived goroutine and waits for it to return. A
// panic in f is raised again in the caller, with f's stack in its value,
// so that a recovery interceptor around the caller still sees it.
func Run(f func()) { (*Pool)(nil).Run(f) }

// Pool runs calls on up to a fixed number of long-lived workers, and on a
// short-lived goroutine when all are busy: Run never waits for a worker.
// A worker is idle again before its caller resumes, so calls made one
// after another all run on the same warm goroutine. A nil *Pool runs
// every call on a short-lived goroutine.
type Pool struct {
	wg sync.WaitGroup

	mu      sync.Mutex
	idle    []*worker // guarded by mu
	workers int       // guarded by mu
	max     int
	closed  bool // guarded by mu
}

// worker is a long-lived goroutine of a Pool, waiting for its next call.
type worker struct {
	calls chan *call // capacity 1: handing a call over never blocks
}

// NewPool returns a Pool of at most max workers; max ≤ 0 means four per
// GOMAXPROCS, as a call may wait a little (a round trip, a dial). The
// owner must Close it. Calls that wait long (for a client) belong on a
// goroutine of their own (Run), not on the pool.
func NewPool(max int) *Pool {
	if max <= 0 {
		max = 4 * runtime.GOMAXPROCS(0)
	}
	return &Pool{max: max}
}

// call is one Run: f, and how it ended.
type call struct {
	f      func()
	done   chan struct{}
	panic  any
	goexit bool // f called runtime.Goexit (t.FailNow does)
}

// invoke calls f, and keeps a panic for the caller.
func (c *call) invoke() {
	defer func() {
		if v := recover(); v != nil {
			c.panic = fmt.Sprintf("%v\n\n(in shallow.Run:)\n%s", v, debug.Stack())
		}
	}()
	c.f()
}

// Run calls f on another goroutine and waits for it to return. A panic in
// f is raised again in the caller, with f's stack in its value, so that a
// recovery interceptor around the caller still sees it.
//
// The caller only starts a goroutine and waits: Run is called deep in a
// handler's stack, a few hundred bytes below the end of its first 4 KiB,
// and anything more there (taking a lock, a channel send) can grow it to
// 8 KiB. The new goroutine, still shallow, hands f to an idle worker, or
// runs it itself.
func (p *Pool) Run(f func()) {
	c := &call{f: f, done: make(chan struct{})}
	go p.dispatch(c)
	<-c.done
	if c.panic != nil {
		panic(c.panic)
	}
	if c.goexit {
		runtime.Goexit() // as if f had run here
	}
}

// runAlone runs c on the current goroutine, which ends with it.
func (c *call) runAlone() {
	returned := false
	defer func() {
		c.goexit = !returned
		close(c.done)
	}()
	c.invoke()
	returned = true
}

// dispatch, on a new goroutine, gives c to an idle worker, or becomes a
// worker and runs it if the pool has room for one, or runs it and ends.
func (p *Pool) dispatch(c *call) {
	if p == nil {
		c.runAlone()
		return
	}
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.calls <- c
		return
	}
	if p.closed || p.workers >= p.max {
		p.mu.Unlock()
		c.runAlone()
		return
	}
	p.workers++
	p.wg.Add(1)
	p.mu.Unlock()
	p.work(&worker{calls: make(chan *call, 1)}, c)
}

// work runs c and every call handed to w after it, until the pool closes.
func (p *Pool) work(w *worker, c *call) {
	defer p.wg.Done()
	running := true // c has not returned
	defer func() {
		if running { // c called runtime.Goexit: the worker ends with it
			p.mu.Lock()
			p.workers--
			p.mu.Unlock()
			c.goexit = true
			close(c.done)
		}
	}()
	for {
		c.invoke()
		running = false
		again := p.park(w)
		close(c.done) // after park: the caller's next call finds w idle
		if !again {
			return
		}
		if c = <-w.calls; c == nil {
			return // closed by Close
		}
		running = true
	}
}

// park lists w as idle, or reports false if the pool is closed.
func (p *Pool) park(w *worker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		p.workers--
		return false
	}
	p.idle = append(p.idle, w)
	return true
}

// Close ends the workers, after the calls they are running, and waits for
// them. Run still works after Close, on short-lived goroutines.
func (p *Pool) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		for _, w := range p.idle {
			close(w.calls)
		}
		p.workers -= len(p.idle)
		p.idle = nil
	}
	p.mu.Unlock()
	p.wg.Wait()
}
