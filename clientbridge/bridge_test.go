package clientbridge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/relayproject/relay/internal/portclaim"
	"github.com/relayproject/relay/relayd/scheduler"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// watchdog bounds waits for events that must happen; it never decides a
// test that passes.
const watchdog = 20 * time.Second

// host is the shared load of one fake host process.
type host struct {
	key    string
	mu     sync.Mutex
	active int
	weight int
}

func newHost(key string, weight int) *host { return &host{key: key, weight: weight} }

func (h *host) load() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.active
}

// fakeSlot records its Assign call (at most one per reservation).
type fakeSlot struct {
	tb  testing.TB
	h   *host
	got chan *Client
}

func newSlot(tb testing.TB, h *host) *fakeSlot {
	return &fakeSlot{tb: tb, h: h, got: make(chan *Client, 1)}
}

func (s *fakeSlot) HostKey() string { return s.h.key }

func (s *fakeSlot) HostLoad() (int, int) {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	return s.h.active, s.h.weight
}

func (s *fakeSlot) Failing() bool { return false }

func (s *fakeSlot) Reserve() {
	s.h.mu.Lock()
	s.h.active++
	s.h.mu.Unlock()
}

func (s *fakeSlot) Assign(c *Client) {
	if c == nil { // the reservation was dropped
		s.h.mu.Lock()
		s.h.active--
		s.h.mu.Unlock()
	} else {
		s.tb.Cleanup(func() { c.Conn.Close() })
	}
	select {
	case s.got <- c:
	default:
		s.tb.Errorf("slot of %s assigned twice", s.h.key)
	}
}

// assigned waits for the slot's Assign call.
func (s *fakeSlot) assigned(tb testing.TB) *Client {
	tb.Helper()
	select {
	case c := <-s.got:
		return c
	case <-time.After(watchdog):
		tb.Fatalf("slot of %s never assigned", s.h.key)
		return nil
	}
}

// notAssigned reports an Assign call already made.
func (s *fakeSlot) notAssigned(tb testing.TB) {
	tb.Helper()
	select {
	case c := <-s.got:
		tb.Fatalf("slot of %s assigned %v", s.h.key, clientAddr(c))
	default:
	}
}

func clientAddr(c *Client) string {
	if c == nil {
		return "nil (reservation cancelled)"
	}
	return c.Conn.RemoteAddr().String()
}

func newBridge(tb testing.TB, cfg Config) *Bridge {
	b := New(cfg)
	tb.Cleanup(b.Close)
	return b
}

// serve runs b.Serve on a fresh loopback listener for service. Its port
// stays claimed after the listener closes, so a test can check that
// connections are refused there.
func serve(tb testing.TB, b *Bridge, service string) string {
	tb.Helper()
	lis, err := net.Listen("tcp", portclaim.MustAddr(tb))
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Serve(lis, service) }()
	tb.Cleanup(func() {
		b.Close()
		if err := <-done; !errors.Is(err, ErrClosed) {
			tb.Errorf("Serve = %v, want ErrClosed", err)
		}
	})
	return lis.Addr().String()
}

func dial(tb testing.TB, addr string) *net.TCPConn {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// newClient makes a Client as Serve would, without a Serve loop: the test
// decides exactly when it is dispatched. It returns the client's own end.
func newClient(tb testing.TB, service string) (*Client, *net.TCPConn) {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer lis.Close()
	peer := dial(tb, lis.Addr().String())
	conn, err := lis.Accept()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return &Client{Conn: conn.(*net.TCPConn), Service: service, ListenerAddr: lis.Addr(), AcceptedAt: time.Now()}, peer
}

// sameClient reports whether c is the bridge's end of peer.
func sameClient(c *Client, peer *net.TCPConn) bool {
	return c != nil && c.Conn.RemoteAddr().String() == peer.LocalAddr().String()
}

// expectClosed waits for the bridge to close the client: it reads EOF, or
// a reset when it had sent bytes that nobody read (TCP's rule on close).
func expectClosed(tb testing.TB, peer *net.TCPConn) {
	tb.Helper()
	peer.SetReadDeadline(time.Now().Add(watchdog))
	n, err := peer.Read(make([]byte, 1))
	if n != 0 || (err != io.EOF && !errors.Is(err, syscall.ECONNRESET)) {
		tb.Fatalf("client Read = %d, %v; want EOF (closed by the bridge)", n, err)
	}
}

// waitFor spins until cond holds; for state that has no event to wait on
// (a waiter leaving the queue). It yields rather than sleeps.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	end := time.Now().Add(watchdog)
	for !cond() {
		if time.Now().After(end) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

func stats(b *Bridge, service string) ServiceStats { return b.Stats()[service] }

func pendingIs(b *Bridge, service string, n int) func() bool {
	return func() bool { return stats(b, service).Pending == n }
}

func TestIdleSlotAssignedAtOnce(t *testing.T) {
	t.Parallel()
	b := newBridge(t, Config{})
	addr := serve(t, b, "default")
	slot := newSlot(t, newHost("h1", 1))
	if !b.AddIdle("default", slot) {
		t.Fatal("AddIdle = false")
	}
	if st := stats(b, "default"); st.IdleSlots != 1 || st.Pending != 0 {
		t.Fatalf("Stats = %+v, want one idle slot", st)
	}
	before := time.Now()
	peer := dial(t, addr)
	c := slot.assigned(t)
	if !sameClient(c, peer) {
		t.Fatalf("assigned %s, want %s", clientAddr(c), peer.LocalAddr())
	}
	if c.Service != "default" || c.ListenerAddr.String() != addr || c.AcceptedAt.Before(before.Add(-time.Second)) {
		t.Errorf("Client = %+v", c)
	}
	st := stats(b, "default")
	if st.IdleSlots != 0 || st.Pending != 0 || st.Rejected != 0 || !slices.Equal(st.ListenAddrs, []string{addr}) {
		t.Errorf("Stats = %+v", st)
	}
	// The connection is the client's, both ways.
	peer.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c.Conn, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q, %v", buf, err)
	}
	c.Conn.Write([]byte("pong"))
	if _, err := io.ReadFull(peer, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("read %q, %v", buf, err)
	}
}

// TestQueueFIFO: clients that find no slot wait, and get slots in arrival
// order as slots come.
func TestQueueFIFO(t *testing.T) {
	t.Parallel()
	b := newBridge(t, Config{})
	addr := serve(t, b, "default")
	var peers []*net.TCPConn
	for i := range 5 {
		peers = append(peers, dial(t, addr))
		waitFor(t, fmt.Sprintf("client %d queued", i), pendingIs(b, "default", i+1))
	}
	h := newHost("h1", 1)
	for i, peer := range peers {
		slot := newSlot(t, h)
		if !b.AddIdle("default", slot) {
			t.Fatal("AddIdle = false")
		}
		if c := slot.assigned(t); !sameClient(c, peer) {
			t.Fatalf("slot %d went to %s, want client %d (%s)", i, clientAddr(c), i, peer.LocalAddr())
		}
		if st := stats(b, "default"); st.Pending != len(peers)-i-1 || st.IdleSlots != 0 {
			t.Fatalf("after slot %d: Stats = %+v", i, st)
		}
	}
	// Queue empty: the next slot waits in the idle set.
	b.AddIdle("default", newSlot(t, h))
	if st := stats(b, "default"); st.IdleSlots != 1 || st.Pending != 0 || st.Rejected != 0 {
		t.Fatalf("Stats = %+v, want one idle slot", st)
	}
}

// TestSlotRightAfterQueueing: a slot that comes while a client's waiter is
// still starting must reach it at once, not when the client's wait times out.
func TestSlotRightAfterQueueing(t *testing.T) {
	t.Parallel()
	b := newBridge(t, Config{AssignTimeout: time.Hour})
	h := newHost("h1", 1)
	for i := range 100 {
		c, peer := newClient(t, "default")
		b.dispatch(c, false)
		slot := newSlot(t, h)
		b.AddIdle("default", slot)
		select {
		case got := <-slot.got:
			if !sameClient(got, peer) {
				t.Fatalf("round %d: assigned %s", i, clientAddr(got))
			}
		case <-time.After(watchdog):
			t.Fatalf("round %d: the slot did not reach the waiting client", i)
		}
	}
}

func TestMaxPending(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		max       int
		accepted  int // clients that may wait
		rejectsOf int // extra clients, all rejected
	}{
		{"two", 2, 2, 2},
		{"none_may_wait", -1, 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			var logMu sync.Mutex
			b := newBridge(t, Config{MaxPending: tc.max, Logger: slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))})
			addr := serve(t, b, "svc")
			var waiting []*net.TCPConn
			for i := range tc.accepted {
				waiting = append(waiting, dial(t, addr))
				waitFor(t, "client queued", pendingIs(b, "svc", i+1))
			}
			for i := range tc.rejectsOf {
				expectRefused(t, addr, fmt.Sprint("client ", i, " beyond the queue"))
				if st := stats(b, "svc"); st.Rejected != uint64(i+1) || st.Pending != tc.accepted {
					t.Fatalf("after rejection %d: Stats = %+v", i, st)
				}
			}
			logMu.Lock()
			if !bytes.Contains(logs.Bytes(), []byte("reason="+RejectQueueFull)) || !bytes.Contains(logs.Bytes(), []byte("service=svc")) {
				t.Errorf("log %q lacks the rejection", logs.String())
			}
			logMu.Unlock()
			// The waiting clients were not disturbed: they still get slots.
			for _, peer := range waiting {
				slot := newSlot(t, newHost("h", 1))
				b.AddIdle("svc", slot)
				if c := slot.assigned(t); !sameClient(c, peer) {
					t.Fatalf("slot went to %s", clientAddr(c))
				}
			}
		})
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func TestAssignTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		talks bool // the client sends bytes while it waits
	}{
		{"silent_client", false},
		{"talking_client", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Long enough that dial returns (and the talking client talks)
			// before the bridge gives up: with 50ms, a loaded machine saw
			// connect itself fail with the bridge's reset.
			b := newBridge(t, Config{AssignTimeout: time.Second})
			addr := serve(t, b, "default")
			peer := dial(t, addr)
			if tc.talks {
				peer.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
			}
			expectClosed(t, peer) // after AssignTimeout: an event, not a sleep
			waitFor(t, "rejection counted", func() bool { return stats(b, "default").Rejected == 1 })
			if st := stats(b, "default"); st.Pending != 0 {
				t.Fatalf("Stats = %+v, want the client out of the queue", st)
			}
			// A slot that comes later is not given to the timed-out client.
			slot := newSlot(t, newHost("h1", 1))
			b.AddIdle("default", slot)
			slot.notAssigned(t)
			if st := stats(b, "default"); st.IdleSlots != 1 {
				t.Fatalf("Stats = %+v, want the slot idle", st)
			}
		})
	}
}

// TestWaitingClientLeaves: a client that resets while it waits leaves the
// queue without taking a slot; it is not counted as rejected. (A FIN is
// not leaving: TestWaitingClientKeepsItsBytes/fin_only.)
func TestWaitingClientLeaves(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		leave    func(*net.TCPConn)
		observed func(testing.TB, *Bridge, *net.TCPConn) // waits until the bridge has seen it
	}{
		{
			"reset",
			func(c *net.TCPConn) { c.SetLinger(0); c.Close() },
			func(tb testing.TB, b *Bridge, _ *net.TCPConn) {
				waitFor(tb, "the reset client to leave", pendingIs(b, "default", 1))
			},
		},
		{
			// A client that has sent bytes is watched for a reset only: it
			// must not keep its place, nor take the next slot.
			"data_then_reset",
			func(c *net.TCPConn) {
				if _, err := c.Write([]byte("a request, then gone")); err != nil {
					panic(err)
				}
				c.SetLinger(0)
				c.Close()
			},
			func(tb testing.TB, b *Bridge, _ *net.TCPConn) {
				waitFor(tb, "the client that talked and reset to leave", pendingIs(b, "default", 1))
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBridge(t, Config{})
			addr := serve(t, b, "default")
			leaver := dial(t, addr)
			waitFor(t, "first client queued", pendingIs(b, "default", 1))
			stayer := dial(t, addr)
			waitFor(t, "second client queued", pendingIs(b, "default", 2))

			tc.leave(leaver)
			tc.observed(t, b, leaver)
			if st := stats(b, "default"); st.Pending != 1 || st.Rejected != 0 {
				t.Fatalf("Stats = %+v, want one waiting, none rejected", st)
			}
			// The next slot skips the one who left.
			slot := newSlot(t, newHost("h1", 1))
			b.AddIdle("default", slot)
			if c := slot.assigned(t); !sameClient(c, stayer) {
				t.Fatalf("slot went to %s, want the client still waiting", clientAddr(c))
			}
			// And with nobody waiting, a slot stays idle.
			b.AddIdle("default", newSlot(t, newHost("h1", 1)))
			if st := stats(b, "default"); st.IdleSlots != 1 || st.Pending != 0 || st.Rejected != 0 {
				t.Fatalf("Stats = %+v", st)
			}
		})
	}
}

// TestWaitingClientKeepsItsBytes: bytes a client sends while it waits are
// not consumed by the bridge; the session reads them first. A FIN stays
// too, even with no byte before it: the client half-closed and may be
// waiting for the server to speak first (`nc -N host port </dev/null`);
// dropping it gave it a clean EOF that the server never sent.
func TestWaitingClientKeepsItsBytes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		request []byte
		fin     bool // the client also half-closes (a whole request, then FIN)
	}{
		{"data", bytes.Repeat([]byte("GET / HTTP/1.1\r\n"), 100), false},
		{"data_then_fin", bytes.Repeat([]byte("GET / HTTP/1.1\r\n"), 100), true},
		{"fin_only", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			watched := make(chan outcome, 1)
			b := newBridge(t, Config{watched: func(o outcome) { watched <- o }})
			addr := serve(t, b, "default")
			peer := dial(t, addr)
			request := tc.request
			if _, err := peer.Write(request); err != nil {
				t.Fatal(err)
			}
			if tc.fin {
				peer.CloseWrite()
			}
			if o := <-watched; o != outcomeData {
				t.Fatalf("the bridge saw %v, want outcomeData (%d): the client stays", o, outcomeData)
			}
			waitFor(t, "client queued", pendingIs(b, "default", 1))
			slot := newSlot(t, newHost("h1", 1))
			b.AddIdle("default", slot)
			c := slot.assigned(t)
			if !sameClient(c, peer) {
				t.Fatalf("assigned %s", clientAddr(c))
			}
			c.Conn.SetReadDeadline(time.Now().Add(watchdog))
			got := make([]byte, len(request))
			if _, err := io.ReadFull(c.Conn, got); err != nil || !bytes.Equal(got, request) {
				t.Fatalf("session read %q, %v; want the bytes sent while waiting", got, err)
			}
			if tc.fin {
				if n, err := c.Conn.Read(make([]byte, 1)); n != 0 || err != io.EOF {
					t.Fatalf("after the bytes: %d, %v; want EOF", n, err)
				}
			}
		})
	}
}

// TestAssignedConnHasNoDeadline: the read deadline used to watch a waiting
// client is cleared before the session gets the connection.
func TestAssignedConnHasNoDeadline(t *testing.T) {
	t.Parallel()
	// The slot must come before AssignTimeout ends, or the client is
	// rejected: dial and the wait below need room on a loaded machine
	// (at 1 s a loaded CI runner's client was rejected at random).
	const assignTimeout = 3 * time.Second
	b := newBridge(t, Config{AssignTimeout: assignTimeout})
	addr := serve(t, b, "default")
	peer := dial(t, addr)
	waitFor(t, "client queued", pendingIs(b, "default", 1))
	slot := newSlot(t, newHost("h1", 1))
	b.AddIdle("default", slot)
	c := slot.assigned(t)
	// A read that outlives AssignTimeout must wait for data, not time out:
	// the data is sent only after the assign deadline has passed.
	readDone := make(chan error, 1)
	go func() {
		buf := make([]byte, 5)
		_, err := io.ReadFull(c.Conn, buf)
		readDone <- err
	}()
	deadlinePassed := time.NewTimer(time.Until(c.AcceptedAt.Add(assignTimeout + 50*time.Millisecond)))
	defer deadlinePassed.Stop()
	select {
	case err := <-readDone:
		t.Fatalf("session Read returned %v before any data", err)
	case <-deadlinePassed.C:
	}
	peer.Write([]byte("hello"))
	if err := <-readDone; err != nil {
		t.Fatalf("session Read = %v", err)
	}
}

func TestRemoveIdle(t *testing.T) {
	t.Parallel()
	b := newBridge(t, Config{})
	h1, h2 := newHost("h1", 1), newHost("h2", 1)
	s1, s2, s3 := newSlot(t, h1), newSlot(t, h1), newSlot(t, h2)
	if b.RemoveIdle("default", s1) {
		t.Fatal("RemoveIdle of a slot never added = true")
	}
	for _, s := range []*fakeSlot{s1, s2, s3} {
		b.AddIdle("default", s)
	}
	if !b.RemoveIdle("default", s1) {
		t.Fatal("RemoveIdle of an idle slot = false")
	}
	if b.RemoveIdle("default", s1) {
		t.Fatal("RemoveIdle twice = true")
	}
	if got := b.IdleByHost()["default"]; got["h1"] != 1 || got["h2"] != 1 {
		t.Fatalf("IdleByHost = %v", got)
	}
	if !b.RemoveIdle("default", s3) {
		t.Fatal("RemoveIdle of h2's slot = false")
	}
	if got := b.IdleByHost()["default"]; len(got) != 1 || got["h1"] != 1 {
		t.Fatalf("IdleByHost = %v, want h2 gone", got)
	}
	// s2 is reserved by a client: RemoveIdle says so, and Assign comes.
	c, peer := newClient(t, "default")
	b.dispatch(c, false)
	if b.RemoveIdle("default", s2) {
		t.Fatal("RemoveIdle of a reserved slot = true")
	}
	if got := s2.assigned(t); !sameClient(got, peer) {
		t.Fatalf("assigned %s", clientAddr(got))
	}
	if st := stats(b, "default"); st.IdleSlots != 0 {
		t.Fatalf("Stats = %+v", st)
	}
	// Another service's slots are separate.
	b.AddIdle("other", s1)
	if b.RemoveIdle("default", s1) || !b.RemoveIdle("other", s1) {
		t.Fatal("RemoveIdle crossed services")
	}
}

// deferredSlot is a fakeSlot that is Deferred, as a slot credit is.
type deferredSlot struct{ *fakeSlot }

func (deferredSlot) Deferred() bool { return true }

// A host's ready slots are taken before its deferred ones (slot credits,
// whose clients wait for a claim), whichever came first.
func TestReadySlotsBeforeDeferred(t *testing.T) {
	t.Parallel()
	b := newBridge(t, Config{})
	h := newHost("h1", 1)
	ready1, ready2 := newSlot(t, h), newSlot(t, h)
	credits := []*fakeSlot{newSlot(t, h), newSlot(t, h), newSlot(t, h)}
	all := append([]*fakeSlot{ready1, ready2}, credits...)
	next := func(want *fakeSlot, what string) {
		t.Helper()
		c, peer := newClient(t, "default")
		b.dispatch(c, false)
		if got := want.assigned(t); !sameClient(got, peer) {
			t.Fatalf("%s assigned %s", what, clientAddr(got))
		}
		for _, s := range all {
			s.notAssigned(t)
		}
	}
	b.AddIdle("default", ready1)
	b.AddIdle("default", deferredSlot{credits[0]})
	b.AddIdle("default", deferredSlot{credits[1]})
	next(ready1, "the ready slot added before the credits")
	b.AddIdle("default", ready2)
	b.AddIdle("default", deferredSlot{credits[2]})
	next(ready2, "the ready slot added before the last credit")
	for i, c := range credits {
		next(c, fmt.Sprintf("credit %d", i))
	}
	if st := stats(b, "default"); st.IdleSlots != 0 {
		t.Fatalf("Stats = %+v, want no idle slot", st)
	}
}

// AddIdleN adds a slot n times (a credit stream's credits): to the waiting
// clients first, in order, and the rest to the idle set.
func TestAddIdleN(t *testing.T) {
	t.Parallel()
	b := newBridge(t, Config{})
	h := newHost("h1", 1)
	credits := &fakeSlot{tb: t, h: h, got: make(chan *Client, 3)}
	c1, peer1 := newClient(t, "default")
	b.dispatch(c1, false)
	c2, peer2 := newClient(t, "default")
	b.dispatch(c2, false)
	if st := stats(b, "default"); st.Pending != 2 {
		t.Fatalf("Stats = %+v, want 2 clients waiting", st)
	}
	if !b.AddIdleN("default", deferredSlot{credits}, 3) {
		t.Fatal("AddIdleN = false")
	}
	// Both waiting clients, each waking in its own time.
	got1, got2 := credits.assigned(t), credits.assigned(t)
	if !(sameClient(got1, peer1) && sameClient(got2, peer2) || sameClient(got1, peer2) && sameClient(got2, peer1)) {
		t.Fatalf("assigned %s and %s, want the two waiting clients", clientAddr(got1), clientAddr(got2))
	}
	if st := stats(b, "default"); st.Pending != 0 || st.IdleSlots != 1 {
		t.Fatalf("Stats = %+v, want the third credit idle", st)
	}
	ready := newSlot(t, h)
	b.AddIdle("default", ready)
	for _, want := range []*fakeSlot{ready, credits} {
		c, peer := newClient(t, "default")
		b.dispatch(c, false)
		if got := want.assigned(t); !sameClient(got, peer) {
			t.Fatalf("assigned %s", clientAddr(got))
		}
	}
	if st := stats(b, "default"); st.IdleSlots != 0 {
		t.Fatalf("Stats = %+v, want no idle slot", st)
	}
	b.Close()
	if b.AddIdleN("default", deferredSlot{credits}, 2) {
		t.Fatal("AddIdleN after Close = true")
	}
}

func TestRequeue(t *testing.T) {
	t.Parallel()
	b := newBridge(t, Config{MaxPending: 1})
	h := newHost("h1", 1)
	first, firstPeer := newClient(t, "default")
	b.dispatch(first, false)
	// The queue is full, yet a requeued client goes in, at the front.
	again, againPeer := newClient(t, "default")
	b.Requeue(again)
	if st := stats(b, "default"); st.Pending != 2 || st.Rejected != 0 {
		t.Fatalf("Stats = %+v, want both waiting", st)
	}
	for _, want := range []*net.TCPConn{againPeer, firstPeer} {
		slot := newSlot(t, h)
		b.AddIdle("default", slot)
		if c := slot.assigned(t); !sameClient(c, want) {
			t.Fatalf("slot went to %s, want %s", clientAddr(c), want.LocalAddr())
		}
	}
	// With an idle slot, a requeued client takes it at once.
	slot := newSlot(t, h)
	b.AddIdle("default", slot)
	c, peer := newClient(t, "default")
	b.Requeue(c)
	if got := slot.assigned(t); !sameClient(got, peer) {
		t.Fatalf("assigned %s", clientAddr(got))
	}
}

// TestCloseRejectsWaiting: Close closes every waiting client, stops Serve,
// and returns only once its goroutines ended (goleak checks the rest).
func TestCloseRejectsWaiting(t *testing.T) {
	t.Parallel()
	b := New(Config{AssignTimeout: time.Hour})
	lis, err := net.Listen("tcp", portclaim.MustAddr(t)) // refused after Close, below
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- b.Serve(lis, "default") }()
	var peers []*net.TCPConn
	for i := range 3 {
		peers = append(peers, dial(t, lis.Addr().String()))
		waitFor(t, "client queued", pendingIs(b, "default", i+1))
	}
	talker := dial(t, lis.Addr().String()) // waits without watching
	talker.Write([]byte("early bytes"))
	waitFor(t, "client queued", pendingIs(b, "default", 4))
	peers = append(peers, talker)
	idle := newSlot(t, newHost("h2", 1))
	b.AddIdle("other", idle)

	b.Close()
	if err := <-served; !errors.Is(err, ErrClosed) {
		t.Fatalf("Serve = %v, want ErrClosed", err)
	}
	for _, p := range peers {
		expectClosed(t, p)
	}
	st := b.Stats()
	if st["default"].Pending != 0 || st["default"].Rejected != 4 {
		t.Errorf("Stats = %+v, want 4 clients rejected at shutdown", st["default"])
	}
	idle.notAssigned(t) // idle slots are left to their owners
	b.Close()           // twice is fine
	if b.AddIdle("default", newSlot(t, newHost("h1", 1))) {
		t.Error("AddIdle after Close = true")
	}
	if _, err := net.Dial("tcp", lis.Addr().String()); err == nil {
		t.Error("listener still accepts after Close")
	}
	lis2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Serve(lis2, "default"); !errors.Is(err, ErrClosed) {
		t.Errorf("Serve after Close = %v", err)
	}
	if _, err := lis2.Accept(); err == nil {
		t.Error("Serve after Close left its listener open")
	}
	c, peer := newClient(t, "default")
	b.Requeue(c)
	expectClosed(t, peer)
	if st := b.Stats()["default"]; st.Rejected != 5 {
		t.Errorf("Rejected = %d after a Requeue past Close, want 5", st.Rejected)
	}
}

// TestCloseListenersKeepsQueue: a drain stops new clients but serves the
// waiting ones.
func TestCloseListenersKeepsQueue(t *testing.T) {
	t.Parallel()
	b := newBridge(t, Config{})
	addr := serve(t, b, "default")
	peer := dial(t, addr)
	waitFor(t, "client queued", pendingIs(b, "default", 1))
	b.CloseListeners()
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("listener still accepts after CloseListeners")
	}
	slot := newSlot(t, newHost("h1", 1))
	if !b.AddIdle("default", slot) {
		t.Fatal("AddIdle after CloseListeners = false")
	}
	if c := slot.assigned(t); !sameClient(c, peer) {
		t.Fatalf("assigned %s", clientAddr(c))
	}
}

// TestSlotsBalancedAcrossHosts: the scheduler balances clients across
// hosts, not slots: a host with many idle slots gets no more clients.
func TestSlotsBalancedAcrossHosts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		policy  scheduler.Policy
		slots   []int // idle slots per host
		weights []int
		clients int
		want    []int // sessions per host
	}{
		{"least_loaded_even", scheduler.LeastLoaded, []int{10, 10}, []int{1, 1}, 10, []int{5, 5}},
		{"least_loaded_many_slots_one_host", scheduler.LeastLoaded, []int{18, 2}, []int{1, 1}, 4, []int{2, 2}},
		{"least_loaded_weighted", scheduler.LeastLoaded, []int{20, 20}, []int{1, 3}, 16, []int{4, 12}},
		{"round_robin", scheduler.RoundRobin, []int{10, 10}, []int{1, 1}, 10, []int{5, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBridge(t, Config{Scheduler: scheduler.New(tc.policy, 1)})
			addr := serve(t, b, "default")
			var hosts []*host
			var slots []*fakeSlot
			for i, n := range tc.slots {
				h := newHost(fmt.Sprintf("host-%d", i), tc.weights[i])
				hosts = append(hosts, h)
				for range n {
					s := newSlot(t, h)
					slots = append(slots, s)
					b.AddIdle("default", s)
				}
			}
			for i := range tc.clients {
				dial(t, addr)
				// Each client is assigned before the next arrives.
				waitFor(t, "assignment", func() bool {
					n := 0
					for _, h := range hosts {
						n += h.load()
					}
					return n == i+1
				})
			}
			if st := stats(b, "default"); st.IdleSlots != len(slots)-tc.clients {
				t.Fatalf("Stats = %+v, want %d idle slots", st, len(slots)-tc.clients)
			}
			for i, h := range hosts {
				if h.load() != tc.want[i] {
					t.Errorf("host %s has %d sessions, want %d", h.key, h.load(), tc.want[i])
				}
			}
			for _, s := range slots {
				select {
				case <-s.got:
				default:
				}
			}
		})
	}
}

// TestTurnsPerService: each service's hosts take turns among themselves.
// One scheduler for every service moved its cursor with every service's
// picks: clients of two services arriving by turns all went to the first
// host of each.
func TestTurnsPerService(t *testing.T) {
	t.Parallel()
	b := newBridge(t, Config{Scheduler: scheduler.New(scheduler.RoundRobin, 1)})
	addrs := map[string]string{"web": serve(t, b, "web"), "db": serve(t, b, "db")}
	hosts := map[string][]*host{}
	for svc, names := range map[string][]string{"web": {"hx1", "hx2"}, "db": {"hy1", "hy2"}} {
		for _, name := range names {
			h := newHost(name, 1)
			hosts[svc] = append(hosts[svc], h)
			for range 10 {
				b.AddIdle(svc, newSlot(t, h))
			}
		}
	}
	total := func() int {
		n := 0
		for _, hs := range hosts {
			for _, h := range hs {
				n += h.load()
			}
		}
		return n
	}
	for i := range 20 {
		svc := []string{"web", "db"}[i%2]
		dial(t, addrs[svc])
		waitFor(t, "assignment", func() bool { return total() == i+1 }) // each before the next
	}
	for svc, hs := range hosts {
		for _, h := range hs {
			if h.load() != 5 {
				t.Errorf("%s host %s has %d sessions, want 5 of its service's 10", svc, h.key, h.load())
			}
		}
	}
}

// TestServiceIsolation: a slot of one service never serves another's client.
func TestServiceIsolation(t *testing.T) {
	t.Parallel()
	b := newBridge(t, Config{})
	addrA := serve(t, b, "a")
	addrB := serve(t, b, "b")
	slotA := newSlot(t, newHost("h1", 1))
	b.AddIdle("a", slotA)
	peerB := dial(t, addrB)
	waitFor(t, "b's client queued", pendingIs(b, "b", 1))
	slotA.notAssigned(t)
	peerA := dial(t, addrA)
	if c := slotA.assigned(t); !sameClient(c, peerA) {
		t.Fatalf("a's slot went to %s", clientAddr(c))
	}
	slotB := newSlot(t, newHost("h1", 1))
	b.AddIdle("b", slotB)
	if c := slotB.assigned(t); !sameClient(c, peerB) {
		t.Fatalf("b's slot went to %s", clientAddr(c))
	}
}

// TestConcurrentMatching: clients and slots arriving at once are matched
// one to one: every client gets exactly one slot, no slot is used twice.
func TestConcurrentMatching(t *testing.T) {
	t.Parallel()
	const n = 40
	b := newBridge(t, Config{AssignTimeout: time.Hour})
	addr := serve(t, b, "default")
	hosts := []*host{newHost("h1", 1), newHost("h2", 1), newHost("h3", 1)}
	slots := make([]*fakeSlot, n)
	for i := range slots {
		slots[i] = newSlot(t, hosts[i%3])
	}
	peers := make([]*net.TCPConn, n)
	var wg sync.WaitGroup
	wg.Go(func() {
		for _, s := range slots {
			b.AddIdle("default", s)
		}
	})
	for i := range peers {
		peers[i] = dial(t, addr)
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, s := range slots {
		c := s.assigned(t)
		if c == nil {
			t.Fatal("reservation cancelled for a client that stayed")
		}
		if seen[clientAddr(c)] {
			t.Fatalf("client %s got two slots", clientAddr(c))
		}
		seen[clientAddr(c)] = true
	}
	for _, p := range peers {
		if !seen[p.LocalAddr().String()] {
			t.Errorf("client %s got no slot", p.LocalAddr())
		}
	}
	if st := stats(b, "default"); st.Pending != 0 || st.IdleSlots != 0 || st.Rejected != 0 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestWaitQueue(t *testing.T) {
	t.Parallel()
	var q waitQueue
	ws := make([]*waiter, 5)
	for i := range ws {
		ws[i] = &waiter{}
	}
	q.pushBack(ws[1])
	q.pushBack(ws[2])
	q.pushFront(ws[0])
	q.pushBack(ws[3])
	q.remove(ws[2])
	q.remove(ws[2]) // not queued: no-op
	q.remove(ws[4]) // never queued: no-op
	if q.len() != 3 {
		t.Fatalf("len = %d, want 3", q.len())
	}
	for _, want := range []*waiter{ws[0], ws[1], ws[3]} {
		if got := q.popFront(); got != want {
			t.Fatal("wrong order")
		}
	}
	if q.popFront() != nil || q.len() != 0 {
		t.Fatal("queue not empty")
	}
	// A lone waiter removed, then the queue reused.
	q.pushBack(ws[4])
	q.remove(ws[4])
	q.pushBack(ws[0])
	if q.popFront() != ws[0] || q.len() != 0 {
		t.Fatal("queue broken after removing its only waiter")
	}
}

// A client requeued after its AssignTimeout has passed (its slot's host
// went away, or did not claim it in time) is not rejected at once: it waits
// a moment more, and a slot that comes then gets it.
func TestRequeueGrace(t *testing.T) {
	t.Parallel()
	b := newBridge(t, Config{AssignTimeout: time.Minute})
	c, peer := newClient(t, "default")
	c.AcceptedAt = time.Now().Add(-2 * time.Minute) // long past its AssignTimeout
	b.Requeue(c)
	// Without the grace the bridge would reject it at once: the client
	// would read its end well within this.
	peer.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := peer.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the requeued client read %d bytes, %v; want it still waiting", n, err)
	}
	peer.SetReadDeadline(time.Time{})
	slot := newSlot(t, newHost("h1", 1))
	b.AddIdle("default", slot)
	if got := slot.assigned(t); !sameClient(got, peer) {
		t.Fatalf("assigned %s", clientAddr(got))
	}
}
