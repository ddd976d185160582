package splice

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tcpPair returns the two ends of one loopback TCP connection.
func tcpPair(tb testing.TB) (dialed, accepted *net.TCPConn) {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer lis.Close()
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := lis.Accept()
		ch <- result{c, err}
	}()
	d, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		d.Close()
		tb.Fatal(r.err)
	}
	tb.Cleanup(func() { d.Close(); r.c.Close() })
	return d.(*net.TCPConn), r.c.(*net.TCPConn)
}

// joined is peerA ⇄ a ⇄ Join ⇄ b ⇄ peerB over two loopback connections.
type joined struct {
	peerA, peerB *net.TCPConn
	done         chan struct{}
	res          Result
}

func newJoined(tb testing.TB) *joined {
	tb.Helper()
	peerA, a := tcpPair(tb)
	b, peerB := tcpPair(tb)
	j := &joined{peerA: peerA, peerB: peerB, done: make(chan struct{})}
	go func() {
		defer close(j.done)
		j.res = Join(a, b)
	}()
	tb.Cleanup(func() {
		// Unblock Join if the test failed half-way, then wait for it.
		j.peerA.Close()
		j.peerB.Close()
		<-j.done
	})
	return j
}

func (j *joined) wait() Result {
	<-j.done
	return j.res
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// goWriteClose writes p to c and then half-closes it, on a goroutine the
// test waits for.
func goWriteClose(tb testing.TB, c *net.TCPConn, p []byte) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := c.Write(p)
		if err == nil {
			err = c.CloseWrite()
		}
		ch <- err
		close(ch)
	}()
	tb.Cleanup(func() { c.Close(); <-ch })
	return ch
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET)
}

func TestJoinBothWaysExact(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		aToB, bToA int
	}{
		{"nothing", 0, 0},
		{"one_byte_each", 1, 1},
		{"one_way", 1 << 20, 0},
		{"other_way", 0, 1 << 20},
		{"both_large", 3<<20 + 17, 2<<20 + 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j := newJoined(t)
			wantAB, wantBA := pattern(tc.aToB, 1), pattern(tc.bToA, 2)
			wa := goWriteClose(t, j.peerA, wantAB)
			wb := goWriteClose(t, j.peerB, wantBA)
			var gotAB []byte
			var errAB error
			readDone := make(chan struct{})
			go func() {
				defer close(readDone)
				gotAB, errAB = io.ReadAll(j.peerB)
			}()
			gotBA, err := io.ReadAll(j.peerA)
			<-readDone
			if err != nil || errAB != nil {
				t.Fatalf("ReadAll: %v, %v", err, errAB)
			}
			if !bytes.Equal(gotAB, wantAB) {
				t.Errorf("a→b: got %d bytes, want %d (contents equal: %v)", len(gotAB), len(wantAB), bytes.Equal(gotAB, wantAB))
			}
			if !bytes.Equal(gotBA, wantBA) {
				t.Errorf("b→a: got %d bytes, want %d", len(gotBA), len(wantBA))
			}
			if err := <-wa; err != nil {
				t.Errorf("peerA write: %v", err)
			}
			if err := <-wb; err != nil {
				t.Errorf("peerB write: %v", err)
			}
			res := j.wait()
			if res.Err != nil || res.AToB != int64(tc.aToB) || res.BToA != int64(tc.bToA) {
				t.Errorf("Result = %+v, want %d/%d bytes and no error", res, tc.aToB, tc.bToA)
			}
		})
	}
}

// TestJoinHalfClose: a FIN from one peer reaches the other only after all
// its data, and the other direction keeps flowing until it is closed too.
func TestJoinHalfClose(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		aFirst bool // peerA half-closes first
	}{
		{"a_closes_first", true},
		{"b_closes_first", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j := newJoined(t)
			first, second := j.peerA, j.peerB
			if !tc.aFirst {
				first, second = second, first
			}
			request := pattern(1<<20, 3) // more than the socket buffers hold
			wf := goWriteClose(t, first, request)
			got, err := io.ReadAll(second) // ends at the FIN
			if err != nil || !bytes.Equal(got, request) {
				t.Fatalf("before EOF: read %d bytes (%v), want all %d", len(got), err, len(request))
			}
			if err := <-wf; err != nil {
				t.Fatal(err)
			}
			// The other direction is still open, in both the relay and first.
			for i := range 3 {
				msg := pattern(1000+i, byte(i))
				if _, err := second.Write(msg); err != nil {
					t.Fatalf("write after peer's FIN: %v", err)
				}
				buf := make([]byte, len(msg))
				if _, err := io.ReadFull(first, buf); err != nil || !bytes.Equal(buf, msg) {
					t.Fatalf("read after own FIN: %v", err)
				}
			}
			select {
			case <-j.done:
				t.Fatal("Join returned with one direction still open")
			default:
			}
			if err := second.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if n, err := first.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Fatalf("after both FINs: Read = %d, %v; want EOF", n, err)
			}
			if res := j.wait(); res.Err != nil {
				t.Fatalf("Join: %v", res.Err)
			}
		})
	}
}

// TestJoinResetPropagates: an RST from one peer aborts the join, and the
// other peer sees a reset too (not a clean EOF), after the data it was
// already sent.
func TestJoinResetPropagates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		resetA    bool // peerA resets (else peerB)
		delivered int  // bytes the resetting peer sent before its RST
	}{
		{"a_resets", true, 0},
		{"b_resets", false, 0},
		{"a_resets_after_data", true, 100_000},
		{"b_resets_after_data", false, 100_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j := newJoined(t)
			resetter, other := j.peerA, j.peerB
			if !tc.resetA {
				resetter, other = other, resetter
			}
			data := pattern(tc.delivered, 9)
			if _, err := resetter.Write(data); err != nil {
				t.Fatal(err)
			}
			// Make sure the relay has forwarded it before the reset.
			buf := make([]byte, len(data))
			if _, err := io.ReadFull(other, buf); err != nil || !bytes.Equal(buf, data) {
				t.Fatalf("forwarded data: %v", err)
			}
			resetter.SetLinger(0)
			resetter.Close() // RST
			n, err := other.Read(make([]byte, 16))
			if n != 0 || !isReset(err) {
				t.Fatalf("other peer: Read = %d, %v; want a connection reset", n, err)
			}
			res := j.wait()
			if res.Err == nil {
				t.Fatal("Join reported a clean end after a reset")
			}
		})
	}
}

// TestJoinResetAfterHalfClose: a reset after this side's FIN still aborts
// the other side, which may be half-way through its reply.
func TestJoinResetAfterHalfClose(t *testing.T) {
	t.Parallel()
	j := newJoined(t)
	if err := j.peerA.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := j.peerB.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("peerB Read = %d, %v; want EOF", n, err)
	}
	j.peerB.SetLinger(0)
	j.peerB.Close()
	if _, err := io.ReadAll(j.peerA); !isReset(err) {
		t.Fatalf("peerA: %v, want a reset", err)
	}
	if res := j.wait(); res.Err == nil {
		t.Fatal("Join reported a clean end after a reset")
	}
}

// recorder is a Reader and Writer that records the buffer sizes it is
// given, and fails the test if io.Copy's shortcuts are used.
type recorder struct {
	tb     testing.TB
	data   []byte // what Read serves
	chunk  int    // at most this many bytes per Read (0: fill p)
	reads  []int
	writes []int
	got    bytes.Buffer
	eofNow bool // return io.EOF with the last bytes
}

func (r *recorder) Read(p []byte) (int, error) {
	r.reads = append(r.reads, len(p))
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := len(p)
	if r.chunk > 0 {
		n = min(n, r.chunk)
	}
	n = copy(p[:n], r.data)
	r.data = r.data[n:]
	if r.eofNow && len(r.data) == 0 {
		return n, io.EOF
	}
	return n, nil
}

func (r *recorder) Write(p []byte) (int, error) {
	r.writes = append(r.writes, len(p))
	return r.got.Write(p)
}

func (r *recorder) WriteTo(io.Writer) (int64, error) {
	r.tb.Error("Copy used WriterTo")
	return 0, errors.New("no WriteTo")
}

func (r *recorder) ReadFrom(io.Reader) (int64, error) {
	r.tb.Error("Copy used ReaderFrom")
	return 0, errors.New("no ReadFrom")
}

func TestCopyBufferSize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		size   int
		chunk  int
		eofNow bool
	}{
		{"empty", 0, 0, false},
		{"one_buffer", BufferSize, 0, false},
		{"several", 5*BufferSize + 123, 0, false},
		{"short_reads", 100_000, 1000, false},
		{"eof_with_data", 3*BufferSize + 1, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want := pattern(tc.size, 5)
			src := &recorder{tb: t, data: want, chunk: tc.chunk, eofNow: tc.eofNow}
			dst := &recorder{tb: t}
			n, err := Copy(dst, src)
			if err != nil || n != int64(tc.size) {
				t.Fatalf("Copy = %d, %v; want %d, nil", n, err, tc.size)
			}
			if !bytes.Equal(dst.got.Bytes(), want) {
				t.Fatal("copied bytes differ")
			}
			for i, l := range src.reads {
				if l != BufferSize {
					t.Fatalf("read %d got a %d-byte buffer, want BufferSize (%d)", i, l, BufferSize)
				}
			}
			for i, l := range dst.writes {
				if l == 0 || l > BufferSize {
					t.Fatalf("write %d of %d bytes, want 1..BufferSize", i, l)
				}
			}
			if len(dst.writes) != len(src.reads)-boolInt(!tc.eofNow) {
				t.Errorf("%d reads became %d writes, want one write per read with data", len(src.reads), len(dst.writes))
			}
		})
	}
	if BufferSize+256 > 32<<10 {
		t.Errorf("BufferSize %d leaves under 256 bytes of a 32 KiB frame for the envelope", BufferSize)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

type errWriter struct {
	n   int // accepted per call
	err error
}

func (w errWriter) Write(p []byte) (int, error) { return min(w.n, len(p)), w.err }

func TestCopyErrors(t *testing.T) {
	t.Parallel()
	readErr := errors.New("read failed")
	writeErr := errors.New("write failed")
	for _, tc := range []struct {
		name    string
		src     io.Reader
		dst     io.Writer
		wantN   int64
		wantErr error
	}{
		{"read_error_after_data", io.MultiReader(bytes.NewReader(make([]byte, 10)), &failReader{readErr}), io.Discard, 10, readErr},
		{"write_error", bytes.NewReader(make([]byte, 10)), errWriter{4, writeErr}, 4, writeErr},
		{"short_write", bytes.NewReader(make([]byte, 10)), errWriter{4, nil}, 4, io.ErrShortWrite},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n, err := Copy(tc.dst, tc.src)
			if n != tc.wantN || !errors.Is(err, tc.wantErr) {
				t.Fatalf("Copy = %d, %v; want %d, %v", n, err, tc.wantN, tc.wantErr)
			}
		})
	}
}

type failReader struct{ err error }

func (r *failReader) Read([]byte) (int, error) { return 0, r.err }

// fakeConn is one end of an in-memory stream that implements Aborter.
type fakeConn struct {
	r       *io.PipeReader
	w       *io.PipeWriter
	mu      sync.Mutex
	aborted []error
	closed  bool
}

func (c *fakeConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *fakeConn) Write(p []byte) (int, error) { return c.w.Write(p) }
func (c *fakeConn) CloseWrite() error           { return c.w.Close() }
func (c *fakeConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.r.Close()
	return c.w.Close()
}

func (c *fakeConn) Abort(cause error) {
	c.mu.Lock()
	c.aborted = append(c.aborted, cause)
	c.mu.Unlock()
	c.r.CloseWithError(cause)
	c.w.CloseWithError(cause)
}

// fakePair returns the Join side of an in-memory stream, and the remote
// end: what the test writes to toConn the conn reads; what the conn writes
// the test reads from fromConn.
func fakePair() (c *fakeConn, toConn *io.PipeWriter, fromConn *io.PipeReader) {
	r1, w1 := io.Pipe()
	r2, w2 := io.Pipe()
	return &fakeConn{r: r1, w: w2}, w1, r2
}

// TestJoinAborter: the non-TCP side of a join is ended with Abort on an
// error, and its clean end becomes a CloseWrite.
func TestJoinAborter(t *testing.T) {
	t.Parallel()
	t.Run("tcp_reset_aborts_fake", func(t *testing.T) {
		t.Parallel()
		peer, a := tcpPair(t)
		b, toB, fromB := fakePair()
		done := make(chan Result, 1)
		go func() { done <- Join(a, b) }()
		go io.Copy(io.Discard, fromB)
		peer.SetLinger(0)
		peer.Close()
		res := <-done
		toB.Close()
		if !isReset(res.Err) {
			t.Errorf("Result.Err = %v, want the reset", res.Err)
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		if len(b.aborted) != 1 || !isReset(b.aborted[0]) {
			t.Errorf("Abort calls %v, want one with the reset", b.aborted)
		}
	})
	t.Run("fake_error_resets_tcp", func(t *testing.T) {
		t.Parallel()
		peer, a := tcpPair(t)
		b, toB, fromB := fakePair()
		done := make(chan Result, 1)
		go func() { done <- Join(a, b) }()
		go io.Copy(io.Discard, fromB)
		toB.Write([]byte("partial"))
		broken := errors.New("stream broke")
		toB.CloseWithError(broken)
		got, err := io.ReadAll(peer)
		if string(got) != "partial" || !isReset(err) {
			t.Errorf("peer read %q, %v; want the data, then a reset", got, err)
		}
		if res := <-done; !errors.Is(res.Err, broken) {
			t.Errorf("Result.Err = %v, want %v", res.Err, broken)
		}
	})
	t.Run("clean_end_is_close_write", func(t *testing.T) {
		t.Parallel()
		peer, a := tcpPair(t)
		b, toB, fromB := fakePair()
		done := make(chan Result, 1)
		go func() { done <- Join(a, b) }()
		peer.Write([]byte("hello"))
		peer.CloseWrite()
		got, err := io.ReadAll(fromB) // ends when Join closes b's write side
		if string(got) != "hello" || err != nil {
			t.Fatalf("fake read %q, %v", got, err)
		}
		toB.Write([]byte("bye"))
		toB.Close()
		got, err = io.ReadAll(peer)
		if string(got) != "bye" || err != nil {
			t.Fatalf("peer read %q, %v", got, err)
		}
		res := <-done
		if res.Err != nil || res.AToB != 5 || res.BToA != 3 {
			t.Fatalf("Result = %+v", res)
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		if len(b.aborted) != 0 || !b.closed {
			t.Errorf("aborted %v, closed %v; want a plain Close", b.aborted, b.closed)
		}
	})
}

// notifyingConn is a fakeConn that announces its abort, as attachconn does.
type notifyingConn struct {
	*fakeConn
	aborted chan struct{}
	err     error
}

func (c *notifyingConn) Aborted() <-chan struct{} { return c.aborted }
func (c *notifyingConn) Err() error               { return c.err }

var _ AbortNotifier = (*notifyingConn)(nil)

// TestJoinWatchesAbortNotifier: once b's data has ended cleanly, nothing
// reads b; its abort must still reach a's peer as a reset.
func TestJoinWatchesAbortNotifier(t *testing.T) {
	t.Parallel()
	peer, a := tcpPair(t)
	fc, toB, fromB := fakePair()
	broken := errors.New("host aborted")
	b := &notifyingConn{fakeConn: fc, aborted: make(chan struct{}), err: broken}
	var res Result
	done := make(chan struct{})
	go func() { defer close(done); res = Join(a, b) }()
	defer func() { peer.Close(); toB.Close(); fromB.Close(); <-done }()
	toB.Write([]byte("reply"))
	toB.Close() // b's data ends cleanly: a FIN to peer
	if got, err := io.ReadAll(peer); string(got) != "reply" || err != nil {
		t.Fatalf("peer read %q, %v", got, err)
	}
	close(b.aborted)
	<-done
	if !errors.Is(res.Err, broken) {
		t.Fatalf("Join: %v, want %v", res.Err, broken)
	}
	if _, err := peer.Write([]byte("x")); err == nil {
		// The first write after an RST may still succeed; the next fails.
		_, err = peer.Write([]byte("x"))
		if !isReset(err) && !errors.Is(err, syscall.EPIPE) {
			t.Fatalf("peer write after the abort: %v, want a reset", err)
		}
	}
}

func TestIsClosed(t *testing.T) {
	t.Parallel()
	c, _ := tcpPair(t)
	c.Close()
	_, err := c.Read(make([]byte, 1))
	if !IsClosed(err) {
		t.Errorf("IsClosed(%v) = false", err)
	}
	if IsClosed(io.EOF) || IsClosed(syscall.ECONNRESET) {
		t.Error("IsClosed true for EOF or a reset")
	}
}

// BenchmarkJoinTCP measures one joined session's throughput, one way, over
// loopback (compare with BenchmarkDirectTCP on the same machine).
func BenchmarkJoinTCP(b *testing.B) {
	j := newJoined(b)
	benchStream(b, j.peerA, j.peerB)
	j.peerA.CloseWrite()
	j.peerB.CloseWrite()
	if res := j.wait(); res.Err != nil {
		b.Fatal(res.Err)
	}
}

// BenchmarkDirectTCP is the baseline: the same stream with no relay.
func BenchmarkDirectTCP(b *testing.B) {
	w, r := tcpPair(b)
	benchStream(b, w, r)
}

func benchStream(b *testing.B, w, r *net.TCPConn) {
	const chunk = 64 << 10
	p := pattern(chunk, 1)
	drained := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(io.Discard, r)
		drained <- n
	}()
	b.SetBytes(chunk)
	b.ReportAllocs()
	runtime.GC()
	var sent int64
	for b.Loop() {
		if _, err := w.Write(p); err != nil {
			b.Fatal(err)
		}
		sent += chunk
	}
	w.CloseWrite()
	if n := <-drained; n != sent {
		b.Fatalf("received %d of %d bytes", n, sent)
	}
}

// TestReadErrorWording: a socket's pending EPIPE (Linux's error for a reset
// after the peer's FIN) is said as a reset; other errors as they are.
func TestReadErrorWording(t *testing.T) {
	if got := readError(syscall.EPIPE).Error(); got != "reset after FIN: read: connection reset by peer" {
		t.Errorf("EPIPE: %q", got)
	}
	if err := readError(syscall.EPIPE); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("EPIPE: %v is not ECONNRESET", err)
	}
	if got := readError(syscall.ETIMEDOUT).Error(); got != "read: connection timed out" {
		t.Errorf("ETIMEDOUT: %q", got)
	}
}
