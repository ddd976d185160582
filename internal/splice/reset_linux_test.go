package splice

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Reset's promise (the peer gets every byte written, then the reset) rests
// on waitUnacked, which only Linux implements.

// TestResetDeliversWrittenBytes: bytes written before Reset reach the peer
// in full, and only then does the peer see the reset.
func TestResetDeliversWrittenBytes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		n          int
		readerLive bool // the peer reads while Reset waits (else only after)
	}{
		{"small_peer_reads_later", 1000, false},
		{"buffer_sized_peer_reads_later", 64 << 10, false},
		{"large_peer_reads_during", 8 << 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, peer := tcpPair(t)
			want := pattern(tc.n, 4)
			type readResult struct {
				got []byte
				err error
			}
			readDone := make(chan readResult, 1)
			read := func() {
				got, err := io.ReadAll(peer)
				readDone <- readResult{got, err}
			}
			if tc.readerLive {
				go read()
			}
			if _, err := c.Write(want); err != nil {
				t.Fatal(err)
			}
			Reset(c, ResetDrainTimeout)
			if !tc.readerLive {
				go read()
			}
			r := <-readDone
			if !bytes.Equal(r.got, want) {
				t.Errorf("peer read %d bytes before %v, want all %d", len(r.got), r.err, len(want))
			}
			if !isReset(r.err) {
				t.Errorf("peer's read ended with %v, want a connection reset", r.err)
			}
		})
	}
}

// TestResetWaitsForASlowReader: a peer that keeps taking the bytes, if
// more slowly than maxWait would allow for all of them, gets every one
// before its reset: maxWait counts from its last progress (QA: a client
// on a slow link lost the tail of a response its host had aborted after).
func TestResetWaitsForASlowReader(t *testing.T) {
	t.Parallel()
	c, peer := tcpPair(t)
	peer.SetReadBuffer(16 << 10) // the bytes wait in c's queue, not in the peer's
	// maxWait is well above the reader's 50 ms between reads, so that a
	// loaded machine's late wake-up is not taken for a stalled peer (at
	// 300 ms it was, 34 runs in 182 under load), and n well above what
	// maxWait would let through without the progress rule.
	const n, maxWait = 1 << 20, 1500 * time.Millisecond
	want := pattern(n, 9)
	readDone := make(chan error, 1)
	var got []byte
	go func() { // 16 KiB per 50 ms, about 320 KB/s: n takes some 3.2 s
		buf := make([]byte, 16<<10)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for range tick.C {
			k, err := peer.Read(buf)
			got = append(got, buf[:k]...)
			if err != nil {
				readDone <- err
				return
			}
		}
	}()
	if _, err := c.Write(want); err != nil {
		t.Fatal(err)
	}
	Reset(c, maxWait)
	err := <-readDone
	if !bytes.Equal(got, want) {
		t.Errorf("slow peer read %d bytes before %v, want all %d", len(got), err, n)
	}
	if !isReset(err) {
		t.Errorf("slow peer's read ended with %v, want a connection reset", err)
	}
}

// TestResetAfterPeerResetReturns: once the peer has reset the connection,
// nothing written can be acknowledged any more, so Reset must not wait for
// it (a Join would otherwise hold the other side's abort for the whole
// drain time). The bound here is a watchdog, not a measurement.
func TestResetAfterPeerResetReturns(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(tb testing.TB, c, peer *net.TCPConn)
	}{
		{"unacked_data", func(tb testing.TB, c, peer *net.TCPConn) {
			// c's data fills the peer's buffers and stays queued in c's.
			wrote := make(chan struct{})
			go func() {
				defer close(wrote)
				c.Write(make([]byte, 16<<20))
			}()
			tb.Cleanup(func() { <-wrote })
			for {
				var n int
				raw, _ := peer.SyscallConn()
				raw.Control(func(fd uintptr) { n, _ = unixInq(fd) })
				if n > 0 {
					break // the data is arriving; the RST will leave some unacked
				}
				runtime.Gosched()
			}
		}},
		{"after_close_write", func(tb testing.TB, c, peer *net.TCPConn) {
			c.CloseWrite()
			if _, err := peer.Read(make([]byte, 1)); err != io.EOF {
				tb.Fatalf("peer Read = %v, want EOF", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, peer := tcpPair(t)
			tc.setup(t, c, peer)
			peer.SetLinger(0)
			peer.Close()
			// The peer sends no FIN, so the read ends when the RST has come:
			// with ECONNRESET, or with EOF when the Write saw the error first.
			if _, err := io.ReadAll(c); err != nil && !isReset(err) {
				t.Fatalf("Read after the peer's RST = %v", err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				Reset(c, time.Hour)
			}()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("Reset still waiting for acknowledgements from a peer that reset")
			}
		})
	}
}

// unixInq returns the bytes waiting in a socket's receive queue.
func unixInq(fd uintptr) (int, error) { return unix.IoctlGetInt(int(fd), unix.SIOCINQ) }

// TestJoinResetAfterOwnFIN: a peer half-closes, then resets while the other
// direction is still open and silent. Nothing reads or writes its socket any
// more, yet the reset must abort the join and reach the other peer.
func TestJoinResetAfterOwnFIN(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		resetA bool
	}{
		{"a_fin_then_rst", true},
		{"b_fin_then_rst", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j := newJoined(t)
			resetter, other := j.peerA, j.peerB
			if !tc.resetA {
				resetter, other = other, resetter
			}
			resetter.Write([]byte("request"))
			resetter.CloseWrite()
			if got, err := io.ReadAll(other); string(got) != "request" || err != nil {
				t.Fatalf("other peer read %q, %v; want the request, then EOF", got, err)
			}
			resetter.SetLinger(0)
			resetter.Close()
			// Nobody reads or writes through the join now: only the watch
			// can end it.
			select {
			case <-j.done:
			case <-time.After(20 * time.Second): // watchdog
				t.Fatal("Join did not notice the reset")
			}
			if res := j.wait(); !isReset(res.Err) {
				t.Fatalf("Join: %v, want the reset", res.Err)
			}
			// other has read EOF, after which recv never reports a reset:
			// its socket's pending error does.
			other.SetReadDeadline(time.Now().Add(20 * time.Second)) // watchdog
			if err := waitReset(other); !isReset(err) {
				t.Fatalf("other peer's socket: %v, want a connection reset", err)
			}
		})
	}
}

// TestHurriedResetWaitsNoLonger: once HurryResets was called (a process
// past its drain), a reset waits at most its maxWait from its start, even
// for a peer that keeps taking bytes. Not parallel: hurry is the
// process's, and is put back.
func TestHurriedResetWaitsNoLonger(t *testing.T) {
	HurryResets()
	defer hurry.Store(false)
	c, peer := tcpPair(t)
	peer.SetReadBuffer(16 << 10)
	const n, maxWait = 512 << 10, 300 * time.Millisecond
	readDone := make(chan int, 1)
	go func() { // as TestResetWaitsForASlowReader's peer: about 1.6 s for all
		buf := make([]byte, 16<<10)
		total := 0
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for range tick.C {
			k, err := peer.Read(buf)
			total += k
			if err != nil {
				readDone <- total
				return
			}
		}
	}()
	if _, err := c.Write(pattern(n, 9)); err != nil {
		t.Fatal(err)
	}
	Reset(c, maxWait)
	if got := <-readDone; got >= n {
		t.Errorf("hurried: the slow peer read all %d bytes, want the reset after %v with some unsent", got, maxWait)
	}
}
