// Package clientbridge owns the relay's client side: the TCP listeners, the
// idle slots offered by hosts, and the FIFO queue of clients waiting for one.
// Every accepted client is either handed to exactly one Slot, or closed and
// counted as rejected. It knows sockets and the small Slot interface, not gRPC.
//
// Matching happens under one lock per service: a client that arrives takes
// an idle slot chosen by the scheduler, or joins the queue; a slot that
// becomes idle goes to the oldest waiting client, or joins the idle set.
// A waiting client is watched for departure (FIN or reset) without reading
// its bytes, and leaves the queue without taking a slot.
package clientbridge

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/relayproject/relay/relayd/scheduler"
)

// Slot is one idle host stream that can carry one client session.
type Slot interface {
	// HostKey identifies the host process behind the slot; the scheduler
	// balances clients across hosts, not slots.
	HostKey() string
	// HostLoad returns the host's open sessions and its weight.
	HostLoad() (active, weight int)
	// Failing reports whether the latest session of the slot's agent (its
	// connection) failed at once for want of its backend: the slot is
	// passed over while another is not failing (scheduler.Candidate).
	Failing() bool
	// Reserve is called, under the bridge's lock, when the slot is taken
	// for a client: the host's load counts the session from this moment, so
	// the next pick sees it even before the session opens. Assign follows.
	Reserve()
	// Assign hands the slot a client; the slot owns it from then on. A nil
	// client cancels the reservation: the slot is no longer registered and
	// may offer itself again with AddIdle. Assign must not block; it is
	// called once per reservation.
	Assign(c *Client)
}

// Deferred is implemented by a Slot that cannot take a session at once: a
// slot credit, whose client waits one round trip for the host's claim.
// Among one host's idle slots, every ready one is taken before a deferred
// one.
type Deferred interface {
	Deferred() bool
}

func deferred(slot Slot) bool {
	d, ok := slot.(Deferred)
	return ok && d.Deferred()
}

// Client is one accepted client connection.
type Client struct {
	Conn         *net.TCPConn
	Service      string
	ListenerAddr net.Addr
	AcceptedAt   time.Time
	place        *releaser // the client's place under Limits
}

// Release gives the client's place under the bridge's Limits back. The
// owner of an assigned client calls it once the connection is closed;
// calling it again does nothing.
func (c *Client) Release() { c.place.release() }

// close closes the connection and releases its place.
func (c *Client) close() {
	c.Conn.Close()
	c.Release()
}

// closeLeft closes the connection of a client that reset it while it
// waited, without the reset a rejected client gets (it needs none).
func (c *Client) closeLeft() {
	c.Conn.SetLinger(-1)
	c.close()
}

// Config configures a Bridge. The zero value of each field is documented.
type Config struct {
	// AssignTimeout bounds how long a client waits for a slot; zero means 10s.
	AssignTimeout time.Duration
	// MaxPending bounds the waiting clients per service; a client beyond it
	// is closed at once. Zero means 1024; negative means no client may wait.
	MaxPending int
	// Scheduler picks the host for each client; nil means least-loaded.
	// Each service gets a Fork of it: its hosts take turns among themselves.
	Scheduler *scheduler.Scheduler
	// Logger receives one line per rejected client (for limits a stranger
	// can hit at will, at most one a second per reason); nil discards.
	Logger *slog.Logger
	// OnReject, if set, is called for every client closed without a
	// session, with one of the Reject* reasons (for events and metrics). It
	// must not block: it runs on the accept loop or a waiter.
	OnReject func(c *Client, reason string)
	// Limits bound the clients held; the zero value bounds nothing.
	Limits Limits

	// watched, in tests, learns what the first watch of a waiting client
	// saw: no event of the bridge tells a FIN kept from one taken for a
	// departure before a slot comes.
	watched func(outcome)
}

// Rejection reasons, also used as log values.
const (
	RejectQueueFull = "queue_full"
	RejectTimeout   = "no_slot_in_time"
	RejectShutdown  = "shutdown"
	// RejectAcceptError counts accept failures (out of file descriptors):
	// no client to reject, but a limit hit all the same.
	RejectAcceptError = "accept_error"
)

// ServiceStats is a snapshot of one service's client side.
type ServiceStats struct {
	IdleSlots   int
	Pending     int
	Rejected    uint64
	ListenAddrs []string
}

// Bridge matches clients with idle slots.
type Bridge struct {
	cfg    Config
	log    *slog.Logger
	mu     sync.Mutex
	svcs   map[string]*service
	adm    *admission
	logged map[string]time.Time // last rejection line per reason
	quiet  map[string]uint64    // rejections not logged since
	hits   map[string]uint64    // rejections by reason
	lis    map[net.Listener]struct{}
	closed bool
	done   chan struct{}
	wg     sync.WaitGroup // accept loops and waiting clients
}

type service struct {
	name     string
	idle     map[string]*hostIdle // by host key
	nIdle    int
	queue    waitQueue
	rejected uint64
	addrs    []string
	// sched is this service's own scheduler (Config.Scheduler's policy):
	// a cursor shared by services moved with every service's picks, and
	// the second host of each service got no client at all.
	sched *scheduler.Scheduler
}

// New returns a Bridge.
func New(cfg Config) *Bridge {
	if cfg.AssignTimeout <= 0 {
		cfg.AssignTimeout = 10 * time.Second
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = 1024
	}
	if cfg.Scheduler == nil {
		cfg.Scheduler = scheduler.New(scheduler.LeastLoaded, 1)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Bridge{
		cfg: cfg, log: log, svcs: map[string]*service{}, lis: map[net.Listener]struct{}{}, done: make(chan struct{}),
		adm: newAdmission(cfg.Limits), logged: map[string]time.Time{}, quiet: map[string]uint64{}, hits: map[string]uint64{},
	}
}

// ErrClosed is returned by Serve after Close.
var ErrClosed = errors.New("clientbridge: closed")

func (b *Bridge) svc(name string) *service {
	s := b.svcs[name]
	if s == nil {
		s = &service{name: name, idle: map[string]*hostIdle{}, sched: b.cfg.Scheduler.Fork()}
		b.svcs[name] = s
	}
	return s
}

// Serve accepts clients on lis for service until lis fails or the Bridge is
// closed; it returns ErrClosed after Close.
func (b *Bridge) Serve(lis net.Listener, service string) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		lis.Close()
		return ErrClosed
	}
	b.lis[lis] = struct{}{}
	s := b.svc(service)
	s.addrs = append(s.addrs, lis.Addr().String())
	b.wg.Add(1)
	b.mu.Unlock()
	defer b.wg.Done()
	var backoff time.Duration
	for {
		conn, err := lis.Accept()
		if err != nil {
			select {
			case <-b.done:
				return ErrClosed
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if !temporaryAcceptError(err) {
				return fmt.Errorf("accept on %s: %w", lis.Addr(), err)
			}
			// Out of file descriptors or kernel memory: a flood must not
			// end the relay. Back off (as net/http does) and try again.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			b.mu.Lock()
			b.hits[RejectAcceptError]++
			b.mu.Unlock()
			b.log.Warn("accept failed; retrying", "listener", lis.Addr().String(), "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-b.done:
				t.Stop()
				return ErrClosed
			}
			continue
		}
		backoff = 0
		tc, ok := conn.(*net.TCPConn)
		if !ok {
			conn.Close()
			continue
		}
		// An abortive close (SO_LINGER 0) from the start: a client is
		// reset if it is rejected, and if relayd dies (SIGKILL, the OOM
		// killer) while it waits, the kernel resets it rather than closing
		// it with a FIN, which would look like a session that ended cleanly.
		// A session's join gives the socket its normal close back before a
		// clean end.
		tc.SetLinger(0)
		now := time.Now()
		c := &Client{Conn: tc, Service: service, ListenerAddr: lis.Addr(), AcceptedAt: now}
		ip := clientIP(tc)
		if reason := b.adm.admit(ip, now); reason != "" {
			b.mu.Lock()
			b.svc(service).rejected++
			b.mu.Unlock()
			b.reject(c, reason)
			continue
		}
		c.place = &releaser{a: b.adm, ip: ip}
		if !b.dispatch(c, false) {
			return ErrClosed
		}
	}
}

// temporaryAcceptError reports whether an accept error is a shortage that
// passes (file descriptors, memory, a connection reset before accept).
func temporaryAcceptError(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// dispatch gives c a slot now, or queues it and starts its waiter. It
// returns false (closing c) when the bridge is closed.
func (b *Bridge) dispatch(c *Client, front bool) bool {
	b.mu.Lock()
	if b.closed {
		b.svc(c.Service).rejected++
		b.mu.Unlock()
		b.reject(c, RejectShutdown)
		return false
	}
	s := b.svc(c.Service)
	if slot := b.takeIdleLocked(s, c); slot != nil {
		b.mu.Unlock()
		slot.Assign(c)
		return true
	}
	if !front && s.queue.len() >= max(b.cfg.MaxPending, 0) {
		s.rejected++
		b.mu.Unlock()
		b.reject(c, RejectQueueFull)
		return true
	}
	w := &waiter{client: c, matched: make(chan Slot, 1), deadline: c.AcceptedAt.Add(b.cfg.AssignTimeout)}
	if grace := time.Now().Add(min(requeueGrace, b.cfg.AssignTimeout)); front && w.deadline.Before(grace) {
		// Handed back through no fault of its own (its host went away, or
		// did not claim it in time): a moment more to find another slot.
		w.deadline = grace
	}
	// Arm the timeout before the waiter is visible: AddIdle and Close wake
	// a waiter by moving this deadline to now, and the waiter's goroutine
	// may not have started yet (it must not overwrite that wake-up).
	c.Conn.SetReadDeadline(w.deadline)
	if front {
		s.queue.pushFront(w)
	} else {
		s.queue.pushBack(w)
	}
	b.wg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.wg.Done()
		b.wait(s, w)
	}()
	return true
}

// takeIdleLocked removes and returns the idle slot the scheduler picks for
// c, or nil.
func (b *Bridge) takeIdleLocked(s *service, c *Client) Slot {
	if s.nIdle == 0 {
		return nil
	}
	cands := make([]scheduler.Candidate, 0, len(s.idle))
	for key, hi := range s.idle {
		active, weight := hi.any().HostLoad()
		cands = append(cands, scheduler.Candidate{Host: key, Active: active, Weight: weight, Failing: hi.allFailing()})
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].Host < cands[j].Host })
	clientKey := ""
	if ap, ok := c.Conn.RemoteAddr().(*net.TCPAddr); ok {
		clientKey = ap.IP.String()
	}
	key := cands[s.sched.Pick(cands, clientKey)].Host
	hi := s.idle[key]
	slot := hi.take()
	if hi.len() == 0 {
		delete(s.idle, key)
	}
	s.nIdle--
	slot.Reserve()
	return slot
}

// hostIdle is one host's idle slots in a service: those ready for a
// session, and the deferred ones (slot credits, see Deferred), each oldest
// first. Never empty while in service.idle. Apart, so that a credit given
// back is an append, not a move of every entry of the host (2 µs an offer
// at 10,000 credits, under the bridge's lock, when they shared a slice).
type hostIdle struct {
	ready, deferred []Slot
}

func (hi *hostIdle) len() int { return len(hi.ready) + len(hi.deferred) }

// any returns one of the host's slots (for the host's load, which they
// share).
func (hi *hostIdle) any() Slot {
	if len(hi.ready) > 0 {
		return hi.ready[0]
	}
	return hi.deferred[0]
}

// allFailing reports whether every slot of the host is failing.
func (hi *hostIdle) allFailing() bool {
	return newestHealthy(hi.ready) < 0 && newestHealthy(hi.deferred) < 0
}

// take removes and returns the slot a client of the host gets: the newest
// ready one (its stream is the warmest), else the oldest deferred one (so
// that credits of several streams, granted in turn, are claimed in turn),
// but not one of an agent whose backend is failing while the host has
// another (two agents may share a host id).
func (hi *hostIdle) take() Slot {
	if i := newestHealthy(hi.ready); i >= 0 {
		return hi.takeAt(&hi.ready, i)
	}
	if i := slices.IndexFunc(hi.deferred, func(s Slot) bool { return !s.Failing() }); i >= 0 {
		return hi.takeAt(&hi.deferred, i)
	}
	if len(hi.ready) > 0 {
		return hi.takeAt(&hi.ready, len(hi.ready)-1)
	}
	return hi.takeAt(&hi.deferred, 0)
}

// takeAt removes and returns (*list)[i]. The first entry goes by
// reslicing: deferred entries are taken from the front and appended at
// the back, a queue whose appends reallocate (and drop the taken front)
// as a slice's do.
func (hi *hostIdle) takeAt(list *[]Slot, i int) Slot {
	slot := (*list)[i]
	if i == 0 {
		(*list)[0] = nil
		*list = (*list)[1:]
		return slot
	}
	*list = slices.Delete(*list, i, i+1)
	return slot
}

// remove removes one entry of slot, and reports whether there was one.
func (hi *hostIdle) remove(slot Slot) bool {
	for _, list := range []*[]Slot{&hi.ready, &hi.deferred} {
		if i := slices.Index(*list, slot); i >= 0 {
			*list = slices.Delete(*list, i, i+1)
			return true
		}
	}
	return false
}

// removeAll removes every entry of slot and returns how many there were.
func (hi *hostIdle) removeAll(slot Slot) int {
	n := hi.len()
	del := func(x Slot) bool { return x == slot }
	hi.ready = slices.DeleteFunc(hi.ready, del)
	hi.deferred = slices.DeleteFunc(hi.deferred, del)
	return n - hi.len()
}

// newestHealthy returns the index of the newest slot that is not failing,
// or -1. In the usual case (none failing) it looks at one slot.
func newestHealthy(slots []Slot) int {
	for i := len(slots) - 1; i >= 0; i-- {
		if !slots[i].Failing() {
			return i
		}
	}
	return -1
}

// AddIdle offers slot to service: it goes to the oldest waiting client, or
// waits in the idle set. It returns false if the bridge is closed.
func (b *Bridge) AddIdle(service string, slot Slot) bool { return b.AddIdleN(service, slot, 1) }

// AddIdleN offers slot to service n times, as AddIdle does once (a credit
// stream, whose every credit is an entry): the waiting clients first, the
// rest into the idle set. It returns false, having added none, if the
// bridge is closed.
func (b *Bridge) AddIdleN(service string, slot Slot, n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	s := b.svc(service)
	for ; n > 0; n-- {
		w := s.queue.popFront()
		if w == nil {
			break
		}
		slot.Reserve()
		w.matched <- slot
		w.client.Conn.SetReadDeadline(time.Now()) // wake the waiter's watch
	}
	if n == 0 {
		return true
	}
	key := slot.HostKey()
	hi := s.idle[key]
	if hi == nil {
		hi = &hostIdle{}
		s.idle[key] = hi
	}
	list := &hi.ready
	if deferred(slot) {
		list = &hi.deferred
	}
	*list = slices.Grow(*list, n)
	for range n {
		*list = append(*list, slot)
	}
	s.nIdle += n
	return true
}

// RemoveIdle withdraws an idle slot. It returns false when the slot is not
// idle any more: then it has been reserved, and exactly one Assign call is
// coming (or came) for it.
func (b *Bridge) RemoveIdle(service string, slot Slot) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.svc(service)
	key := slot.HostKey()
	hi := s.idle[key]
	if hi == nil || !hi.remove(slot) {
		return false
	}
	if hi.len() == 0 {
		delete(s.idle, key)
	}
	s.nIdle--
	return true
}

// RemoveIdleAll withdraws every idle entry of slot (a slot may stand in the
// idle set more than once, as a credit stream does for each credit) and
// returns how many there were. Entries already reserved get their Assign
// as RemoveIdle says.
func (b *Bridge) RemoveIdleAll(service string, slot Slot) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.svc(service)
	key := slot.HostKey()
	hi := s.idle[key]
	if hi == nil {
		return 0
	}
	n := hi.removeAll(slot)
	if hi.len() == 0 {
		delete(s.idle, key)
	}
	s.nIdle -= n
	return n
}

// Requeue puts back, at the head of the queue, a client whose slot failed
// before the session opened (the host went away at that moment).
func (b *Bridge) Requeue(c *Client) { b.dispatch(c, true) }

// Stats returns a snapshot per service.
func (b *Bridge) Stats() map[string]ServiceStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]ServiceStats, len(b.svcs))
	for name, s := range b.svcs {
		out[name] = ServiceStats{IdleSlots: s.nIdle, Pending: s.queue.len(), Rejected: s.rejected, ListenAddrs: append([]string(nil), s.addrs...)}
	}
	return out
}

// CloseListeners stops accepting clients; queued clients keep waiting and
// idle slots stay usable. Used to start a drain.
func (b *Bridge) CloseListeners() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closeListenersLocked()
}

func (b *Bridge) closeListenersLocked() {
	select {
	case <-b.done:
	default:
		close(b.done)
	}
	for l := range b.lis {
		l.Close()
		delete(b.lis, l)
	}
}

// Close stops the listeners, closes every waiting client, and waits for the
// bridge's goroutines. Slots already assigned are not affected.
func (b *Bridge) Close() {
	b.mu.Lock()
	first := !b.closed
	if first {
		b.closed = true
		b.closeListenersLocked()
		for _, s := range b.svcs {
			for w := s.queue.popFront(); w != nil; w = s.queue.popFront() {
				s.rejected++ // closed by wait with RejectShutdown
				w.shutdown = true
				w.matched <- nil
				w.client.Conn.SetReadDeadline(time.Now())
			}
		}
	}
	b.mu.Unlock()
	b.wg.Wait()
	if first {
		b.flushRejectLines()
	}
}

// flushRejectLines logs, per reason, the rejections no line has told of
// yet: at a shutdown every waiting client is rejected at once, and the
// process exits before a next line would have given their count.
func (b *Bridge) flushRejectLines() {
	b.mu.Lock()
	quiet := map[string]uint64{}
	for reason, n := range b.quiet {
		if n > 0 {
			quiet[reason] = n
			b.quiet[reason] = 0
		}
	}
	b.mu.Unlock()
	for _, reason := range slices.Sorted(maps.Keys(quiet)) {
		b.log.Info("clients rejected since the last line", "reason", reason, "not_logged_since_last_line", quiet[reason])
	}
}

func (b *Bridge) reject(c *Client, reason string) {
	b.mu.Lock()
	b.hits[reason]++
	now := time.Now()
	var quiet uint64
	log := now.Sub(b.logged[reason]) >= time.Second
	if log {
		b.logged[reason] = now
		quiet = b.quiet[reason]
		b.quiet[reason] = 0
	} else {
		b.quiet[reason]++
	}
	b.mu.Unlock()
	if log {
		attrs := []any{"client_addr", c.Conn.RemoteAddr().String(), "service", c.Service, "reason", reason}
		if quiet > 0 {
			attrs = append(attrs, "not_logged_since_last_line", quiet)
		}
		b.log.Info("client rejected", attrs...)
	}
	// A reset, not a FIN: the client was never served, and any bytes it
	// sent were not delivered, so the connection must end abnormally (a
	// FIN would look like a session that ended cleanly).
	c.Conn.SetLinger(0)
	c.close()
	if b.cfg.OnReject != nil {
		b.cfg.OnReject(c, reason)
	}
}

// Rejections returns the clients rejected since the start, by reason.
func (b *Bridge) Rejections() map[string]uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.hits)
}

// wait runs one queued client until it gets a slot, leaves, or times out.
func (b *Bridge) wait(s *service, w *waiter) {
	c := w.client
	// Both watches end at the read deadline, which dispatch armed (the
	// assign timeout) and a match moves to now.
	left := watchDeparture(c.Conn) // returns when woken, timed out, the client left, or sent data
	if b.cfg.watched != nil {
		b.cfg.watched(left)
	}
	if left == outcomeData {
		// The client is talking already: its bytes stay in the socket for the
		// session, and only a reset makes it leave.
		left = watchReset(c.Conn)
	}
	b.mu.Lock()
	var slot Slot
	select {
	case slot = <-w.matched:
	default:
		s.queue.remove(w) // no slot was given: leave the queue
		if left != outcomeLeft {
			s.rejected++
		} else {
			// Its place goes back as it leaves the queue: once Stats shows
			// it gone, a new client fits under Limits.
			c.Release()
		}
	}
	shutdown := w.shutdown
	b.mu.Unlock()
	c.Conn.SetReadDeadline(time.Time{})

	switch {
	case slot == nil && shutdown:
		b.reject(c, RejectShutdown)
	case slot == nil && left == outcomeLeft:
		c.closeLeft() // gone while waiting; nothing to deliver
	case slot == nil:
		b.reject(c, RejectTimeout)
	case left == outcomeLeft:
		c.closeLeft()
		slot.Assign(nil) // the slot goes back to its host unused
	default:
		slot.Assign(c)
	}
}

// requeueGrace is the least time a requeued client has left to wait for a
// slot (within AssignTimeout).
const requeueGrace = time.Second

// waiter is one queued client.
type waiter struct {
	deadline   time.Time // its AssignTimeout, or a requeued client's grace
	client     *Client
	matched    chan Slot // capacity 1: the slot, or nil on shutdown
	shutdown   bool      // guarded by Bridge.mu
	prev, next *waiter
}

// waitQueue is a FIFO of waiters with O(1) removal.
type waitQueue struct {
	head, tail *waiter
	n          int
}

func (q *waitQueue) len() int { return q.n }

func (q *waitQueue) pushBack(w *waiter) {
	w.prev, w.next = q.tail, nil
	if q.tail != nil {
		q.tail.next = w
	} else {
		q.head = w
	}
	q.tail = w
	q.n++
}

func (q *waitQueue) pushFront(w *waiter) {
	w.prev, w.next = nil, q.head
	if q.head != nil {
		q.head.prev = w
	} else {
		q.tail = w
	}
	q.head = w
	q.n++
}

func (q *waitQueue) popFront() *waiter {
	w := q.head
	if w != nil {
		q.remove(w)
	}
	return w
}

// remove unlinks w; removing a waiter not in the queue is a no-op.
func (q *waitQueue) remove(w *waiter) {
	if w.prev == nil && q.head != w {
		return
	}
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		q.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		q.tail = w.prev
	}
	w.prev, w.next = nil, nil
	q.n--
}

// IdleByHost returns the idle slot count per service and host key.
func (b *Bridge) IdleByHost() map[string]map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]map[string]int, len(b.svcs))
	for name, s := range b.svcs {
		m := make(map[string]int, len(s.idle))
		for key, hi := range s.idle {
			m[key] = hi.len()
		}
		out[name] = m
	}
	return out
}
