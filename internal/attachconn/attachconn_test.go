package attachconn

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	kindData       = "data"
	kindCloseWrite = "close_write"
	kindClose      = "close"
)

type frame struct {
	kind    string
	payload []byte
	reason  relayv1.CloseReason
	detail  string
}

var errStreamEnded = errors.New("stream ended")

// fakeSender records frames. With gate set, each SendData first announces
// its payload on entered and then waits: for an error (or nil) on release,
// for the stream to end (endStream, which the fixture's OnAbort calls, as
// the real owner does), or for the test to stop.
type fakeSender struct {
	tb      testing.TB
	mu      sync.Mutex
	frames  []frame
	busy    atomic.Int32
	gate    bool
	entered chan []byte
	release chan error
	ended   chan struct{}
	endOnce sync.Once
	stop    chan struct{}
}

func newFakeSender(tb testing.TB, gate bool) *fakeSender {
	return &fakeSender{
		tb:      tb,
		gate:    gate,
		entered: make(chan []byte),
		release: make(chan error),
		ended:   make(chan struct{}),
		stop:    make(chan struct{}),
	}
}

// enter checks the Sender contract: never two calls at once.
func (s *fakeSender) enter() func() {
	if s.busy.Add(1) != 1 {
		s.tb.Error("Sender called from two goroutines at once")
	}
	return func() { s.busy.Add(-1) }
}

func (s *fakeSender) record(f frame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frames = append(s.frames, f)
}

func (s *fakeSender) SendData(p []byte) error {
	defer s.enter()()
	p = slices.Clone(p)
	if s.gate {
		select {
		case s.entered <- p:
		case <-s.ended:
			return errStreamEnded
		case <-s.stop:
			return errStreamEnded
		}
		select {
		case err := <-s.release:
			if err != nil {
				return err
			}
		case <-s.ended:
			return errStreamEnded
		case <-s.stop:
			return errStreamEnded
		}
	}
	s.record(frame{kind: kindData, payload: p})
	return nil
}

func (s *fakeSender) SendCloseWrite() error {
	defer s.enter()()
	s.record(frame{kind: kindCloseWrite})
	return nil
}

func (s *fakeSender) SendClose(reason relayv1.CloseReason, detail string) error {
	defer s.enter()()
	s.record(frame{kind: kindClose, reason: reason, detail: detail})
	return nil
}

func (s *fakeSender) endStream() { s.endOnce.Do(func() { close(s.ended) }) }

func (s *fakeSender) snapshot() []frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.frames)
}

func (s *fakeSender) kinds() []string {
	var out []string
	for _, f := range s.snapshot() {
		out = append(out, f.kind)
	}
	return out
}

type fixture struct {
	c        *Conn
	s        *fakeSender
	onAbort  chan bool // one value per OnAbort call
	stopOnce sync.Once
}

type option func(*Config)

func withMaxData(n int) option { return func(c *Config) { c.MaxData = n } }

// newFixture returns a Conn over a fakeSender, whose OnAbort ends the fake
// stream. Cleanup unblocks every goroutine the test left behind.
func newFixture(tb testing.TB, gate bool, opts ...option) *fixture {
	tb.Helper()
	f := &fixture{s: newFakeSender(tb, gate), onAbort: make(chan bool, 8)}
	cfg := Config{
		Sender:      f.s,
		MaxData:     16,
		LocalAddr:   &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8002},
		RemoteAddr:  &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 40000},
		AbortReason: relayv1.CloseReason_CLOSE_REASON_CLIENT_RESET,
		OnAbort: func(closeSent bool) {
			f.onAbort <- closeSent
			if !closeSent {
				f.c.AbandonClose() // as an owner that ends the stream at once
			}
			f.s.endStream()
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	f.c = New(cfg)
	tb.Cleanup(f.stop)
	return f
}

var errTestDone = errors.New("test done")

func (f *fixture) stop() {
	f.stopOnce.Do(func() {
		close(f.s.stop)
		f.c.Abort(errTestDone)
	})
}

// async is a call running on its own goroutine.
type async struct {
	done chan struct{}
	n    int
	err  error
}

func (a *async) wait(tb testing.TB) (int, error) {
	tb.Helper()
	<-a.done
	return a.n, a.err
}

func (a *async) isDone() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

func (f *fixture) start(tb testing.TB, fn func() (int, error)) *async {
	a := &async{done: make(chan struct{})}
	go func() {
		defer close(a.done)
		a.n, a.err = fn()
	}()
	tb.Cleanup(func() { f.stop(); <-a.done })
	return a
}

func (f *fixture) goDeliver(tb testing.TB, p []byte) *async {
	return f.start(tb, func() (int, error) { return len(p), f.c.Deliver(p) })
}

func (f *fixture) goWrite(tb testing.TB, p []byte) *async {
	return f.start(tb, func() (int, error) { return f.c.Write(p) })
}

func (f *fixture) goRead(tb testing.TB, p []byte) *async {
	return f.start(tb, func() (int, error) { return f.c.Read(p) })
}

func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed)
	}
	return b
}

func TestReadPartialHandOff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		payload int
		buf     int
	}{
		{"one_byte_reads", 100, 1},
		{"uneven_reads", 1000, 7},
		{"exact_fit", 64, 64},
		{"buffer_larger", 10, 4096},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, false)
			want := pattern(tc.payload, 3)
			d := f.goDeliver(t, want)
			var got []byte
			buf := make([]byte, tc.buf)
			for len(got) < len(want) {
				if d.isDone() {
					t.Fatalf("Deliver returned after %d of %d bytes were read", len(got), len(want))
				}
				n, err := f.c.Read(buf)
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
				if n == 0 || n > tc.buf {
					t.Fatalf("Read = %d bytes into a %d-byte buffer", n, tc.buf)
				}
				got = append(got, buf[:n]...)
			}
			if _, err := d.wait(t); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("read %x, want %x", got, want)
			}
			if st := f.c.Stats(); st.BytesRead != int64(len(want)) {
				t.Errorf("BytesRead = %d, want %d", st.BytesRead, len(want))
			}
		})
	}
}

// TestDeliverBlocksUntilConsumed: Deliver is a hand-off, not a queue; the
// caller's receive loop stops until the reader has taken every byte, and
// Delivering says so meanwhile (the agent's stall watch asks it).
func TestDeliverBlocksUntilConsumed(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, false)
		p := pattern(10, 1)
		d := f.goDeliver(t, p)
		synctest.Wait()
		if d.isDone() {
			t.Fatal("Deliver returned before any Read")
		}
		if !f.c.Delivering() {
			t.Error("Delivering() = false while a Deliver waits for the reader")
		}
		buf := make([]byte, 9)
		if n, err := f.c.Read(buf); n != 9 || err != nil {
			t.Fatalf("Read = %d, %v", n, err)
		}
		synctest.Wait()
		if d.isDone() {
			t.Fatal("Deliver returned with one byte unread")
		}
		if n, err := f.c.Read(buf); n != 1 || err != nil || buf[0] != p[9] {
			t.Fatalf("Read = %d, %v (%x)", n, err, buf[:n])
		}
		if _, err := d.wait(t); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		if f.c.Delivering() {
			t.Error("Delivering() = true after Deliver returned")
		}
		// The payload is the caller's again: overwriting it changes nothing.
		clear(p)
		e := f.goDeliver(t, []byte("next"))
		if n, err := f.c.Read(buf); err != nil || string(buf[:n]) != "next" {
			t.Fatalf("Read = %q, %v", buf[:n], err)
		}
		e.wait(t)
	})
}

func TestDeliverEmptyIsNoop(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	if err := f.c.Deliver(nil); err != nil {
		t.Fatalf("Deliver(nil) = %v", err)
	}
	if err := f.c.Deliver([]byte{}); err != nil {
		t.Fatalf("Deliver(empty) = %v", err)
	}
	f.c.DeliverCloseWrite()
	if n, err := f.c.Read(make([]byte, 4)); n != 0 || err != io.EOF {
		t.Fatalf("Read = %d, %v; want 0, EOF", n, err)
	}
}

func TestDeliverCloseWriteEOFAfterData(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	payloads := [][]byte{pattern(20, 1), pattern(5, 2), pattern(33, 3)}
	owner := f.start(t, func() (int, error) {
		for _, p := range payloads {
			if err := f.c.Deliver(p); err != nil {
				return 0, err
			}
		}
		f.c.DeliverCloseWrite()
		f.c.DeliverCloseWrite() // twice is harmless
		return 0, nil
	})
	got, err := io.ReadAll(readerFunc(func(b []byte) (int, error) { return f.c.Read(b[:min(len(b), 6)]) }))
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if want := bytes.Join(payloads, nil); !bytes.Equal(got, want) {
		t.Fatalf("read %x, want %x", got, want)
	}
	if _, err := owner.wait(t); err != nil {
		t.Fatalf("owner: %v", err)
	}
	// EOF is sticky, and reading does not send anything.
	for range 3 {
		if n, err := f.c.Read(make([]byte, 8)); n != 0 || err != io.EOF {
			t.Fatalf("Read after EOF = %d, %v", n, err)
		}
	}
	st := f.c.Stats()
	if !st.ReadClosed || st.WriteClosed || st.BytesRead != 58 {
		t.Errorf("Stats = %+v, want ReadClosed, 58 bytes read", st)
	}
	if k := f.s.kinds(); len(k) != 0 {
		t.Errorf("frames sent: %v, want none", k)
	}
	// Our direction still works after the peer's EOF (half-close).
	if n, err := f.c.Write([]byte("reply")); n != 5 || err != nil {
		t.Fatalf("Write after peer EOF = %d, %v", n, err)
	}
}

type readerFunc func([]byte) (int, error)

func (r readerFunc) Read(b []byte) (int, error) { return r(b) }

func TestDeliverAbort(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	r := f.goRead(t, make([]byte, 8))
	cause := errors.New("relay closed the session")
	f.c.DeliverAbort(relayv1.CloseReason_CLOSE_REASON_HOST_ABORT, cause)

	_, err := r.wait(t)
	var ae *AbortError
	if !errors.As(err, &ae) {
		t.Fatalf("blocked Read = %v, want *AbortError", err)
	}
	if !ae.Remote || ae.Reason != relayv1.CloseReason_CLOSE_REASON_HOST_ABORT || !errors.Is(err, cause) {
		t.Errorf("AbortError = %+v, want remote, HOST_ABORT, wrapping the cause", ae)
	}
	if got := <-f.onAbort; got {
		t.Error("OnAbort(true) after DeliverAbort: no frame may be sent back")
	}
	select {
	case <-f.c.Aborted():
	default:
		t.Error("Aborted() not closed")
	}
	if f.c.AbortCause() != ae {
		t.Errorf("AbortCause() = %v, want the Read's error", f.c.AbortCause())
	}
	// Every later call fails the same way and sends nothing.
	if _, err := f.c.Read(make([]byte, 8)); !errors.As(err, &ae) {
		t.Errorf("Read after abort = %v", err)
	}
	if _, err := f.c.Write([]byte("x")); !errors.As(err, &ae) {
		t.Errorf("Write after abort = %v", err)
	}
	if err := f.c.CloseWrite(); !errors.As(err, &ae) {
		t.Errorf("CloseWrite after abort = %v", err)
	}
	if err := f.c.Deliver([]byte("x")); !errors.As(err, &ae) {
		t.Errorf("Deliver after abort = %v", err)
	}
	f.c.Abort(errors.New("again"))
	f.c.DeliverAbort(relayv1.CloseReason_CLOSE_REASON_TIMEOUT, errors.New("again"))
	if err := f.c.Close(); err != nil {
		t.Errorf("Close after abort = %v", err)
	}
	if k := f.s.kinds(); len(k) != 0 {
		t.Errorf("frames sent: %v, want none", k)
	}
	if len(f.onAbort) != 0 {
		t.Errorf("OnAbort ran %d more times", len(f.onAbort))
	}
}

// TestDeliverAbortReleasesDeliver: a Deliver waiting for a reader returns
// the abort error, and the reader does not see its payload afterwards (the
// caller may reuse the buffer once Deliver returned).
func TestDeliverAbortReleasesDeliver(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		readFirst int // bytes read before the abort
		remote    bool
	}{
		{"unread_remote", 0, true},
		{"unread_local", 0, false},
		{"partly_read_remote", 3, true},
		{"partly_read_local", 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, false)
			p := pattern(10, 5)
			d := f.goDeliver(t, p)
			if tc.readFirst > 0 {
				if n, err := f.c.Read(make([]byte, tc.readFirst)); n != tc.readFirst || err != nil {
					t.Fatalf("Read = %d, %v", n, err)
				}
			}
			if tc.remote {
				f.c.DeliverAbort(relayv1.CloseReason_CLOSE_REASON_CLIENT_RESET, errStreamEnded)
			} else {
				f.c.Abort(errStreamEnded)
			}
			_, err := d.wait(t)
			var ae *AbortError
			if !errors.As(err, &ae) || ae.Remote != tc.remote {
				t.Fatalf("Deliver = %v, want *AbortError (remote %v)", err, tc.remote)
			}
			copy(p, "overwritten") // the caller reuses its buffer
			if n, err := f.c.Read(make([]byte, 32)); n != 0 || !errors.As(err, &ae) {
				t.Fatalf("Read after Deliver returned = %d, %v; want 0, *AbortError", n, err)
			}
		})
	}
}

func TestWriteSplitsAtMaxData(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		maxData int
		size    int
		want    []int // frame sizes
	}{
		{"empty", 10, 0, nil},
		{"under", 10, 9, []int{9}},
		{"exact", 10, 10, []int{10}},
		{"one_over", 10, 11, []int{10, 1}},
		{"many", 10, 35, []int{10, 10, 10, 5}},
		{"max_one", 1, 3, []int{1, 1, 1}},
		{"default_32k", 0, 70000, []int{32768, 32768, 4464}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, false, withMaxData(tc.maxData))
			p := pattern(tc.size, 9)
			n, err := f.c.Write(p)
			if n != tc.size || err != nil {
				t.Fatalf("Write = %d, %v; want %d, nil", n, err, tc.size)
			}
			var sizes []int
			var all []byte
			for _, fr := range f.s.snapshot() {
				if fr.kind != kindData {
					t.Fatalf("unexpected %s frame", fr.kind)
				}
				sizes = append(sizes, len(fr.payload))
				all = append(all, fr.payload...)
			}
			if !slices.Equal(sizes, tc.want) {
				t.Errorf("frame sizes %v, want %v", sizes, tc.want)
			}
			if !bytes.Equal(all, p) {
				t.Error("frames do not carry the written bytes in order")
			}
			if st := f.c.Stats(); st.BytesWritten != int64(tc.size) {
				t.Errorf("BytesWritten = %d, want %d", st.BytesWritten, tc.size)
			}
		})
	}
}

// TestConcurrentWritesSerialized: the Sender is never called from two
// goroutines at once (fakeSender checks), and each Write's frames are
// contiguous.
func TestConcurrentWritesSerialized(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false, withMaxData(4))
	const writers, writes = 4, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for range writes {
				if _, err := f.c.Write(bytes.Repeat([]byte{byte('a' + w)}, 10)); err != nil {
					t.Errorf("Write: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	frames := f.s.snapshot()
	if len(frames) != writers*writes*3 {
		t.Fatalf("%d frames, want %d", len(frames), writers*writes*3)
	}
	for i := 0; i < len(frames); i += 3 {
		b := frames[i].payload[0]
		for _, fr := range frames[i : i+3] {
			if !bytes.Equal(fr.payload, bytes.Repeat([]byte{b}, len(fr.payload))) {
				t.Fatalf("frames %d..%d interleave two Writes", i, i+2)
			}
		}
	}
}

func TestWriteAfterCloseWrite(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	if _, err := f.c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := f.c.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	if n, err := f.c.Write([]byte("more")); n != 0 || !errors.Is(err, ErrWriteClosed) {
		t.Fatalf("Write after CloseWrite = %d, %v; want 0, ErrWriteClosed", n, err)
	}
	if got, want := f.s.kinds(), []string{kindData, kindCloseWrite}; !slices.Equal(got, want) {
		t.Fatalf("frames %v, want %v", got, want)
	}
	// The read direction is untouched by our CloseWrite.
	d := f.goDeliver(t, []byte("still reading"))
	buf := make([]byte, 64)
	if n, err := f.c.Read(buf); err != nil || string(buf[:n]) != "still reading" {
		t.Fatalf("Read after CloseWrite = %q, %v", buf[:n], err)
	}
	d.wait(t)
	if st := f.c.Stats(); !st.WriteClosed || st.ReadClosed || st.BytesWritten != 5 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestWriteAfterClose(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	if err := f.c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n, err := f.c.Write([]byte("x")); n != 0 || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close = %d, %v; want net.ErrClosed", n, err)
	}
	if n, err := f.c.Read(make([]byte, 4)); n != 0 || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close = %d, %v; want net.ErrClosed", n, err)
	}
}

func TestCloseWriteSendsOneFrame(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := f.c.CloseWrite(); err != nil {
				t.Errorf("CloseWrite: %v", err)
			}
		})
	}
	wg.Wait()
	if err := f.c.CloseWrite(); err != nil {
		t.Errorf("CloseWrite again: %v", err)
	}
	if err := f.c.Close(); err != nil {
		t.Errorf("Close after CloseWrite: %v", err)
	}
	if got, want := f.s.kinds(), []string{kindCloseWrite}; !slices.Equal(got, want) {
		t.Fatalf("frames %v, want %v", got, want)
	}
}

func TestAbortSendsCloseOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		abort  func(c *Conn, cause error)
		reason relayv1.CloseReason
	}{
		{"configured_reason", (*Conn).Abort, relayv1.CloseReason_CLOSE_REASON_CLIENT_RESET},
		{"explicit_reason", func(c *Conn, err error) { c.AbortWith(relayv1.CloseReason_CLOSE_REASON_ADMIN, err) }, relayv1.CloseReason_CLOSE_REASON_ADMIN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, false)
			r := f.goRead(t, make([]byte, 4))
			cause := errors.New("client reset")
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() { tc.abort(f.c, cause) })
			}
			wg.Wait()
			if got := <-f.onAbort; !got {
				t.Error("OnAbort(false), want true: the Close frame was sent")
			}
			frames := f.s.snapshot()
			if len(frames) != 1 || frames[0].kind != kindClose {
				t.Fatalf("frames %v, want one Close", f.s.kinds())
			}
			if frames[0].reason != tc.reason || frames[0].detail != cause.Error() {
				t.Errorf("Close{%v, %q}, want {%v, %q}", frames[0].reason, frames[0].detail, tc.reason, cause)
			}
			_, err := r.wait(t)
			var ae *AbortError
			if !errors.As(err, &ae) || ae.Remote || ae.Reason != tc.reason || !errors.Is(err, cause) {
				t.Fatalf("Read = %v, want local *AbortError with the cause", err)
			}
			if f.c.Err() == nil {
				t.Error("Err() = nil after Abort")
			}
			if n, err := f.c.Write([]byte("x")); n != 0 || !errors.As(err, &ae) {
				t.Errorf("Write after Abort = %d, %v", n, err)
			}
			f.c.Close()
			f.c.CloseWrite()
			if len(f.s.snapshot()) != 1 {
				t.Errorf("frames %v after Close, want only the Close", f.s.kinds())
			}
			if len(f.onAbort) != 0 {
				t.Error("OnAbort ran twice")
			}
		})
	}
}

// TestAbortDuringStuckWrite: a Write blocked on flow control holds the
// sender; Abort must not wait for it nor send beside it. It reports
// OnAbort(false) so the owner ends the stream, which releases the Write.
func TestAbortDuringStuckWrite(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	w := f.goWrite(t, pattern(40, 1)) // three frames at MaxData 16
	<-f.s.entered                     // the first frame is stuck
	f.c.Abort(errors.New("client reset"))
	if got := <-f.onAbort; got {
		t.Fatal("OnAbort(true) while a Write was stuck")
	}
	n, err := w.wait(t)
	var ae *AbortError
	if n != 0 || !errors.As(err, &ae) {
		t.Fatalf("stuck Write = %d, %v; want 0, *AbortError", n, err)
	}
	if k := f.s.kinds(); len(k) != 0 {
		t.Fatalf("frames %v, want none", k)
	}
}

// TestNoSendAfterAbortReturned: the Sender is never called for Data after
// Abort has returned, even by a Write that was between two frames; the
// Close the abort owed goes out once that Write has returned the sender.
func TestNoSendAfterAbortReturned(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true, func(c *Config) { c.OnAbort = nil }) // the owner does not end the stream
	w := f.goWrite(t, pattern(40, 1))
	<-f.s.entered
	f.c.Abort(errors.New("client reset"))
	f.s.release <- nil // the first frame goes out after all
	for !w.isDone() {
		select {
		case p := <-f.s.entered:
			t.Errorf("SendData(%d bytes) called after Abort returned", len(p))
			f.s.release <- errStreamEnded
		case <-w.done:
		}
	}
	n, err := w.wait(t)
	var ae *AbortError
	if n != 16 || !errors.As(err, &ae) {
		t.Fatalf("Write = %d, %v; want 16, *AbortError", n, err)
	}
	if got := f.s.kinds(); !slices.Equal(got, []string{kindData, kindClose}) {
		t.Fatalf("frames %v, want the frame in flight at Abort, then the owed Close", got)
	}
	select {
	case <-f.c.CloseSettled():
	default:
		t.Error("CloseSettled open after the owed Close went out")
	}
}

// TestAbandonClose: an owner that ends the stream gives the owed Close up
// first; the Write stuck at the abort then sends nothing when it returns.
func TestAbandonClose(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true, func(c *Config) { c.OnAbort = nil })
	w := f.goWrite(t, pattern(40, 1))
	<-f.s.entered
	f.c.Abort(errors.New("client reset"))
	select {
	case <-f.c.CloseSettled():
		t.Fatal("CloseSettled closed with the Close still owed")
	default:
	}
	f.c.AbandonClose()
	<-f.c.CloseSettled()
	f.s.release <- errStreamEnded // the stream's end releases the Write
	if _, err := w.wait(t); err == nil {
		t.Fatal("stuck Write returned no error")
	}
	if got := f.s.kinds(); len(got) != 0 {
		t.Fatalf("frames %v, want none", got)
	}
}

func TestWriteSendErrorReturned(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true, func(c *Config) { c.OnAbort = nil })
	w := f.goWrite(t, pattern(20, 1))
	<-f.s.entered
	f.s.release <- nil
	<-f.s.entered
	sendErr := errors.New("transport is closing")
	f.s.release <- sendErr
	if n, err := w.wait(t); n != 16 || !errors.Is(err, sendErr) {
		t.Fatalf("Write = %d, %v; want 16, the send error", n, err)
	}
}

func TestCloseWithUnreadDataAborts(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	d := f.goDeliver(t, pattern(10, 1))
	if n, err := f.c.Read(make([]byte, 4)); n != 4 || err != nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	if err := f.c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err := d.wait(t)
	if !errors.Is(err, ErrDataAfterClose) {
		t.Fatalf("Deliver = %v, want ErrDataAfterClose", err)
	}
	frames := f.s.snapshot()
	if len(frames) != 1 || frames[0].kind != kindClose || frames[0].reason != relayv1.CloseReason_CLOSE_REASON_CLIENT_RESET {
		t.Fatalf("frames %+v, want one Close with the configured reason", frames)
	}
	if !<-f.onAbort {
		t.Error("OnAbort(false), want true")
	}
}

func TestCloseAfterEOFSendsCloseWrite(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		wrote bool
	}{
		{"nothing_written", false},
		{"after_write", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, false)
			owner := f.start(t, func() (int, error) {
				err := f.c.Deliver([]byte("request"))
				f.c.DeliverCloseWrite()
				return 0, err
			})
			if got, err := io.ReadAll(f.c); err != nil || string(got) != "request" {
				t.Fatalf("ReadAll = %q, %v", got, err)
			}
			owner.wait(t)
			want := []string{kindCloseWrite}
			if tc.wrote {
				if _, err := f.c.Write([]byte("response")); err != nil {
					t.Fatal(err)
				}
				want = []string{kindData, kindCloseWrite}
			}
			if err := f.c.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := f.c.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if got := f.s.kinds(); !slices.Equal(got, want) {
				t.Fatalf("frames %v, want %v", got, want)
			}
			if f.c.Err() != nil || len(f.onAbort) != 0 {
				t.Fatalf("session aborted: %v", f.c.Err())
			}
			select {
			case <-f.c.Closed():
			default:
				t.Error("Closed() not closed")
			}
		})
	}
}

// TestCloseRightAfterReadingAll: the reader takes the last byte and closes
// at once, before the receive loop has seen the hand-off complete. That is
// a clean close (CloseWrite), not data after Close.
func TestCloseRightAfterReadingAll(t *testing.T) {
	t.Parallel()
	for i := range 3000 {
		f := newFixture(t, false)
		d := f.goDeliver(t, []byte("request"))
		buf := make([]byte, 16)
		if n, err := f.c.Read(buf); n != 7 || err != nil {
			t.Fatalf("Read = %d, %v", n, err)
		}
		f.c.Close()
		if _, err := d.wait(t); err != nil {
			t.Fatalf("round %d: Deliver = %v after its payload was read", i, err)
		}
		if got := f.s.kinds(); !slices.Equal(got, []string{kindCloseWrite}) {
			t.Fatalf("round %d: frames %v, want [close_write]", i, got)
		}
	}
}

func TestDeliverAfterCloseAborts(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	if err := f.c.Close(); err != nil {
		t.Fatal(err)
	}
	err := f.c.Deliver([]byte("late"))
	var ae *AbortError
	if !errors.As(err, &ae) || ae.Remote || !errors.Is(err, ErrDataAfterClose) {
		t.Fatalf("Deliver after Close = %v, want local *AbortError wrapping ErrDataAfterClose", err)
	}
	frames := f.s.snapshot()
	if got := f.s.kinds(); !slices.Equal(got, []string{kindCloseWrite, kindClose}) {
		t.Fatalf("frames %v, want CloseWrite then Close", got)
	}
	if frames[1].reason != relayv1.CloseReason_CLOSE_REASON_CLIENT_RESET || frames[1].detail != ErrDataAfterClose.Error() {
		t.Errorf("Close{%v, %q}", frames[1].reason, frames[1].detail)
	}
}

// TestCloseDuringStuckWrite: Close does not wait for a Write stuck on flow
// control; it aborts, and the owner's OnAbort ends the stream.
func TestCloseDuringStuckWrite(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	w := f.goWrite(t, []byte("stuck"))
	<-f.s.entered
	if err := f.c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if <-f.onAbort {
		t.Error("OnAbort(true) while a Write was stuck")
	}
	if _, err := w.wait(t); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write = %v, want an abort wrapping net.ErrClosed", err)
	}
}

func TestCloseReleasesBlockedRead(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	r := f.goRead(t, make([]byte, 4))
	f.c.Close()
	if _, err := r.wait(t); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read = %v, want net.ErrClosed", err)
	}
}

func TestReadDeadline(t *testing.T) {
	t.Parallel()
	t.Run("past", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, false)
		f.c.SetReadDeadline(time.Now().Add(-time.Second))
		for range 2 {
			if n, err := f.c.Read(make([]byte, 4)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Read = %d, %v; want os.ErrDeadlineExceeded", n, err)
			}
		}
		var ne net.Error
		_, err := f.c.Read(make([]byte, 4))
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("%v is not a net.Error timeout", err)
		}
	})
	t.Run("interrupts_blocked_read", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			f := newFixture(t, false)
			start := time.Now()
			f.c.SetReadDeadline(start.Add(5 * time.Second))
			if _, err := f.c.Read(make([]byte, 4)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Read = %v, want os.ErrDeadlineExceeded", err)
			}
			if d := time.Since(start); d != 5*time.Second {
				t.Errorf("Read returned after %v, want 5s", d)
			}
		})
	})
	t.Run("set_while_blocked", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			f := newFixture(t, false)
			r := f.goRead(t, make([]byte, 4))
			synctest.Wait()
			f.c.SetReadDeadline(time.Now().Add(time.Second)) // armed while blocked
			if _, err := r.wait(t); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Read = %v", err)
			}
			r = f.goRead(t, make([]byte, 4))
			synctest.Wait()
			f.c.SetReadDeadline(time.Now()) // now: wakes it at once
			if _, err := r.wait(t); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Read = %v", err)
			}
		})
	})
	t.Run("extended_and_cleared", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			f := newFixture(t, false)
			f.c.SetReadDeadline(time.Now().Add(-time.Second))
			if _, err := f.c.Read(make([]byte, 4)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Read = %v", err)
			}
			// Moved to the future: Read waits again until then.
			start := time.Now()
			f.c.SetReadDeadline(start.Add(3 * time.Second))
			r := f.goRead(t, make([]byte, 4))
			time.Sleep(2 * time.Second) // fake clock: the deadline is 1s away
			f.c.SetReadDeadline(start.Add(10 * time.Second))
			if _, err := r.wait(t); !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) != 10*time.Second {
				t.Fatalf("Read = %v after %v, want a timeout after 10s", err, time.Since(start))
			}
			// Cleared: Read waits for data, however long.
			f.c.SetReadDeadline(time.Time{})
			r = f.goRead(t, make([]byte, 4))
			time.Sleep(time.Hour)
			synctest.Wait()
			if r.isDone() {
				t.Fatal("Read returned with the deadline cleared")
			}
			d := f.goDeliver(t, []byte("ok"))
			if n, err := r.wait(t); n != 2 || err != nil {
				t.Fatalf("Read = %d, %v", n, err)
			}
			d.wait(t)
		})
	})
	t.Run("data_keeps_flowing_after_timeout", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, false)
		f.c.SetReadDeadline(time.Now())
		if _, err := f.c.Read(make([]byte, 4)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read = %v", err)
		}
		if f.c.Err() != nil {
			t.Fatalf("a read timeout aborted the session: %v", f.c.Err())
		}
		f.c.SetDeadline(time.Time{})
		d := f.goDeliver(t, []byte("late"))
		buf := make([]byte, 8)
		if n, err := f.c.Read(buf); err != nil || string(buf[:n]) != "late" {
			t.Fatalf("Read = %q, %v", buf[:n], err)
		}
		d.wait(t)
	})
}

func TestWriteDeadline(t *testing.T) {
	t.Parallel()
	t.Run("past", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, false)
		f.c.SetWriteDeadline(time.Now().Add(-time.Second))
		if n, err := f.c.Write([]byte("x")); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Write = %d, %v", n, err)
		}
		if f.c.Err() != nil || len(f.s.kinds()) != 0 {
			t.Fatalf("a Write past its deadline aborted or sent: %v %v", f.c.Err(), f.s.kinds())
		}
		f.c.SetWriteDeadline(time.Time{})
		if n, err := f.c.Write([]byte("x")); n != 1 || err != nil {
			t.Fatalf("Write after clearing = %d, %v", n, err)
		}
	})
	t.Run("stuck_write_aborts", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			f := newFixture(t, true)
			f.c.SetDeadline(time.Now().Add(time.Second))
			w := f.goWrite(t, []byte("stuck"))
			<-f.s.entered
			_, err := w.wait(t)
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Write = %v, want an abort wrapping os.ErrDeadlineExceeded", err)
			}
			if <-f.onAbort {
				t.Error("OnAbort(true) while the Write was stuck")
			}
		})
	})
	t.Run("timely_write_no_abort", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			f := newFixture(t, false)
			f.c.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := f.c.Write([]byte("fast")); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Second) // fake clock: the old deadline passes
			if f.c.Err() != nil {
				t.Fatalf("session aborted by the deadline of a finished Write: %v", f.c.Err())
			}
		})
	})
}

func TestAddrsAndStats(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	if f.c.LocalAddr().String() != "127.0.0.1:8002" || f.c.RemoteAddr().String() != "192.0.2.7:40000" {
		t.Errorf("addrs %v %v", f.c.LocalAddr(), f.c.RemoteAddr())
	}
	var _ net.Conn = f.c
	if st := f.c.Stats(); st != (Stats{}) {
		t.Errorf("fresh Stats = %+v", st)
	}
	owner := f.start(t, func() (int, error) {
		f.c.Deliver(pattern(100, 1))
		f.c.DeliverCloseWrite()
		return 0, nil
	})
	io.Copy(io.Discard, io.LimitReader(f.c, 60))
	if st := f.c.Stats(); st.BytesRead != 60 || st.ReadClosed {
		t.Errorf("Stats = %+v, want 60 bytes read, not closed", st)
	}
	io.Copy(io.Discard, f.c)
	owner.wait(t)
	f.c.Write(pattern(50, 2))
	f.c.CloseWrite()
	want := Stats{BytesRead: 100, BytesWritten: 50, ReadClosed: true, WriteClosed: true}
	if st := f.c.Stats(); st != want {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
}

func TestAbortErrorText(t *testing.T) {
	t.Parallel()
	cause := errors.New("boom")
	for _, tc := range []struct {
		err  *AbortError
		want string
	}{
		{&AbortError{Cause: cause}, "session aborted locally: boom"},
		{&AbortError{Remote: true, Cause: cause}, "session aborted by peer: boom"},
	} {
		if tc.err.Error() != tc.want {
			t.Errorf("Error() = %q, want %q", tc.err.Error(), tc.want)
		}
		if !errors.Is(tc.err, cause) {
			t.Error("AbortError does not unwrap to its cause")
		}
	}
}

// pushEnd records PushTo's end call; a second call fails the test.
type pushEnd struct {
	tb   testing.TB
	done chan struct{}
	n    int64
	err  error
}

func newPushEnd(tb testing.TB) *pushEnd { return &pushEnd{tb: tb, done: make(chan struct{})} }

func (e *pushEnd) end(n int64, err error) {
	select {
	case <-e.done:
		e.tb.Errorf("end called twice (second: %d, %v)", n, err)
		return
	default:
	}
	e.n, e.err = n, err
	close(e.done)
}

// A Deliver waiting for a reader is released by PushTo, and writes its
// payload itself; the peer's CloseWrite ends the push cleanly.
func TestPushToReleasesWaitingDeliver(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	d := f.goDeliver(t, []byte("early"))
	var got bytes.Buffer
	e := newPushEnd(t)
	f.c.PushTo(&got, e.end)
	if _, err := d.wait(t); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if err := f.c.Deliver([]byte(" late")); err != nil {
		t.Fatalf("Deliver after PushTo: %v", err)
	}
	f.c.DeliverCloseWrite()
	<-e.done
	if got.String() != "early late" || e.n != 10 || e.err != nil {
		t.Fatalf("pushed %q, end(%d, %v); want %q, end(10, nil)", got.String(), e.n, e.err, "early late")
	}
}

// An end that came before PushTo is reported by PushTo itself.
func TestPushToAfterEnd(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		end     func(c *Conn)
		wantErr bool
	}{
		{"close_write", func(c *Conn) { c.DeliverCloseWrite() }, false},
		{"abort", func(c *Conn) { c.DeliverAbort(relayv1.CloseReason_CLOSE_REASON_HOST_ABORT, errors.New("gone")) }, true},
		{"close", func(c *Conn) { c.Close() }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, false)
			tc.end(f.c)
			e := newPushEnd(t)
			f.c.PushTo(io.Discard, e.end)
			select {
			case <-e.done:
			default:
				t.Fatal("PushTo did not report the end that came before it")
			}
			if (e.err != nil) != tc.wantErr {
				t.Fatalf("end error = %v, want error: %v", e.err, tc.wantErr)
			}
		})
	}
}

// A failed write to the push destination ends the push with that error
// and fails Deliver; an abort afterwards runs AfterAbort's hooks once.
func TestPushWriteErrorAndAfterAbort(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	e := newPushEnd(t)
	werr := errors.New("destination gone")
	f.c.PushTo(errWriter{werr}, e.end)
	var hooks atomic.Int32
	f.c.AfterAbort(func() { hooks.Add(1) })
	stop := f.c.AfterAbort(func() { t.Error("stopped hook ran") })
	stop()
	if err := f.c.Deliver([]byte("x")); !errors.Is(err, werr) {
		t.Fatalf("Deliver = %v, want %v", err, werr)
	}
	<-e.done
	if !errors.Is(e.err, werr) {
		t.Fatalf("end error = %v, want %v", e.err, werr)
	}
	f.c.Abort(werr)
	f.c.Abort(werr)
	if n := hooks.Load(); n != 1 {
		t.Fatalf("AfterAbort hook ran %d times, want 1", n)
	}
	ran := false
	f.c.AfterAbort(func() { ran = true })
	if !ran {
		t.Fatal("AfterAbort on an aborted conn did not run at once")
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

// What a Read left of a payload is pushed first, before later payloads:
// a host that reads a prefix, then hands the session to a push copy (the
// conformance echo does), loses and reorders nothing.
func TestPushToAfterPartialRead(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	d := f.goDeliver(t, []byte("0123456789abcdef"))
	buf := make([]byte, 6)
	if n, err := f.c.Read(buf); err != nil || string(buf[:n]) != "012345" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	var got bytes.Buffer
	e := newPushEnd(t)
	f.c.PushTo(&got, e.end)
	if _, err := d.wait(t); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if err := f.c.Deliver([]byte("-next")); err != nil {
		t.Fatalf("Deliver after PushTo: %v", err)
	}
	f.c.DeliverCloseWrite()
	<-e.done
	if got.String() != "6789abcdef-next" || e.n != 21 || e.err != nil {
		t.Fatalf("pushed %q, end(%d, %v); want %q, end(21, nil)", got.String(), e.n, e.err, "6789abcdef-next")
	}
}

// TestLostReason: a send that fails is the peer's abort with LostReason
// when one is set (no Close frame goes out on the broken stream), and
// otherwise the send's own error, for the caller to abort on.
func TestLostReason(t *testing.T) {
	t.Parallel()
	for _, lost := range []relayv1.CloseReason{relayv1.CloseReason_CLOSE_REASON_UNSPECIFIED, relayv1.CloseReason_CLOSE_REASON_HOST_LOST} {
		t.Run(lost.String(), func(t *testing.T) {
			s := newFakeSender(t, true)
			t.Cleanup(func() { close(s.stop) })
			c := New(Config{Sender: s, MaxData: 16, AbortReason: relayv1.CloseReason_CLOSE_REASON_CLIENT_RESET, LostReason: lost})
			written := make(chan error, 1)
			go func() { _, err := c.Write([]byte("abc")); written <- err }()
			<-s.entered
			s.release <- errStreamEnded
			err := <-written
			var ae *AbortError
			switch {
			case lost == relayv1.CloseReason_CLOSE_REASON_UNSPECIFIED:
				if err != errStreamEnded || c.Err() != nil {
					t.Errorf("Write = %v, Err = %v; want the send's error, and no abort", err, c.Err())
				}
			case !errors.As(err, &ae) || !ae.Remote || ae.Reason != lost || !errors.Is(err, errStreamEnded):
				t.Errorf("Write = %#v, want the peer's abort with %v, wrapping the send's error", err, lost)
			case c.Err() == nil:
				t.Error("the conn is not aborted")
			}
			for _, f := range s.snapshot() {
				if f.kind == kindClose {
					t.Errorf("a Close frame (%v) was sent on the broken stream", f.reason)
				}
			}
		})
	}
}

// closeGate is a Sender whose SendClose waits for release.
type closeGate struct {
	*fakeSender
	entered chan struct{}
	release chan struct{}
}

func (g closeGate) SendClose(reason relayv1.CloseReason, detail string) error {
	g.entered <- struct{}{}
	<-g.release
	return g.fakeSender.SendClose(reason, detail)
}

// TestAsyncClose: with AsyncClose, Abort returns while the Close frame's
// Send is blocked (on flow control, say); the Close is owed until it goes
// out, and then CloseSettled is closed.
func TestAsyncClose(t *testing.T) {
	t.Parallel()
	g := closeGate{fakeSender: newFakeSender(t, false), entered: make(chan struct{}), release: make(chan struct{})}
	c := New(Config{Sender: g, MaxData: 16, AbortReason: relayv1.CloseReason_CLOSE_REASON_ADMIN, AsyncClose: true})
	aborted := make(chan struct{})
	go func() { c.Abort(errors.New("closed by an operator")); close(aborted) }()
	// The Close's Send blocks on entered until the test takes it, so an Abort
	// that waited for the Send could not return. (Selecting on both channels
	// was flaky: the Send's goroutine could be waiting on entered as Abort
	// returned, and select picks at random.) The deadline only fails the test.
	select {
	case <-aborted:
	case <-time.After(30 * time.Second):
		t.Fatal("Abort waited for the Close frame's Send")
	}
	<-g.entered // the Close, being sent
	if !c.CloseOwed() {
		t.Error("CloseOwed = false while the Close is being sent")
	}
	select {
	case <-c.CloseSettled():
		t.Fatal("CloseSettled closed before the Close went out")
	default:
	}
	close(g.release)
	<-c.CloseSettled()
	if got := g.kinds(); !slices.Equal(got, []string{kindClose}) {
		t.Fatalf("frames %v, want the Close", got)
	}
	if n, err := c.Write([]byte("x")); n != 0 || err == nil {
		t.Errorf("Write after the abort = %d, %v", n, err)
	}
}
