package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
)

// Hostile clients against the real relayd: floods, per-address limits,
// silent connections, a client that never reads, half-open and reset
// connections. After each, the relay must still serve a fresh session byte
// for byte, and its status must show the sessions it is expected to hold.

// freshSession proves the relay still serves: a new client sends prefix
// (what the backend needs to pick its echo mode; empty for hostagent echo),
// gets 64 KiB echoed byte for byte, half-closes and reads EOF.
func freshSession(tb testing.TB, r *relayProc, prefix string) {
	tb.Helper()
	c := dial(tb, r.clientAddr)
	defer c.Close()
	if prefix != "" {
		if _, err := io.WriteString(c, prefix); err != nil {
			tb.Fatalf("fresh session: write: %v", err)
		}
	}
	if err := echoTransfer(c, 99, 64<<10); err != nil {
		tb.Fatalf("fresh session: %v", err)
	}
	if err := c.CloseWrite(); err != nil {
		tb.Fatal(err)
	}
	expectEOF(tb, c, "")
}

// waitHeld waits until GetStatus shows exactly active sessions and pending
// clients.
func waitHeld(tb testing.TB, st relayv1.StatusServiceClient, active, pending uint32) *relayv1.GetStatusResponse {
	tb.Helper()
	var last *relayv1.GetStatusResponse
	waitFor(tb, 2*ioTimeout, func() (bool, string) {
		s, err := getStatus(st)
		if err != nil {
			return false, err.Error()
		}
		last = s
		return s.GetActiveSessions() == active && s.GetPendingClients() == pending,
			fmt.Sprintf("GetStatus: active_sessions %d pending_clients %d, want %d %d", s.GetActiveSessions(), s.GetPendingClients(), active, pending)
	})
	return last
}

// waitRejected waits for the relay's next "client rejected" log line with
// the given reason.
func waitRejected(tb testing.TB, r *relayProc, reason string) {
	tb.Helper()
	r.waitLog(tb, 2*ioTimeout, `"client rejected" reason=`+reason, func(l logLine) bool {
		return l.msg() == "client rejected" && l.str("reason") == reason
	})
}

// expectConnReset reads c until an error, which must be a reset with no
// byte before it (a refused or aborted client must not mistake its end for
// a clean one).
func expectConnReset(tb testing.TB, c net.Conn, what string) {
	tb.Helper()
	c.SetReadDeadline(time.Now().Add(2 * ioTimeout))
	b, err := io.ReadAll(c)
	if len(b) > 0 || !errors.Is(err, syscall.ECONNRESET) {
		tb.Fatalf("%s: read %d bytes then %v; want a connection reset", what, len(b), err)
	}
}

// dialRefused dials a client the relay must refuse: it is reset, either
// already while connect returns (the relay accepted and reset it first) or
// on its first read.
func dialRefused(tb testing.TB, addr, what string) {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if errors.Is(err, syscall.ECONNRESET) {
		return
	}
	if err != nil {
		tb.Fatalf("%s: dial: %v", what, err)
	}
	defer c.Close()
	expectConnReset(tb, c, what)
}

// echoTransfer sends size bytes of seed's pattern through an echo on c and
// checks every byte that comes back; it neither half-closes nor closes c.
func echoTransfer(c net.Conn, seed uint64, size int) error {
	const chunk = 64 << 10
	werr := make(chan error, 1)
	go func() {
		buf := make([]byte, chunk)
		for off := 0; off < size; off += chunk {
			fillPattern(buf, seed, int64(off))
			if _, err := c.Write(buf); err != nil {
				werr <- fmt.Errorf("write at %d: %w", off, err)
				return
			}
		}
		werr <- nil
	}()
	got, want := make([]byte, chunk), make([]byte, chunk)
	for off := 0; off < size; off += chunk {
		if _, err := io.ReadFull(c, got); err != nil {
			c.Close() // release the writer
			<-werr
			return fmt.Errorf("read at %d: %w", off, err)
		}
		fillPattern(want, seed, int64(off))
		if !bytes.Equal(got, want) {
			c.Close()
			<-werr
			return fmt.Errorf("wrong bytes in the %d bytes at offset %d", chunk, off)
		}
	}
	return <-werr
}

// TestHostileClientFlood: 3,000 clients connect from one address and hold
// on, against --max-sessions 200. Beyond 200 held they are reset, the relay
// says why in its log, a session opened before the flood moves 1 MiB intact
// during and after it, and once the flood lets go new clients are served.
func TestHostileClientFlood(t *testing.T) {
	t.Parallel()
	const (
		flood    = 3000
		limit    = 200
		agentMax = 20 // sessions the agent takes; the other held clients wait in the queue
		workers  = 32
	)
	r := startRelay(t, "--max-sessions", strconv.Itoa(limit), "--client-rate", "0", "--assign-timeout", "5m")
	startAgent(t, r.grpcAddr, "--idle", "4", "--max-sessions", strconv.Itoa(agentMax), "echo")
	st := statusClient(t, r)

	legit := dial(t, r.clientAddr)
	legit.SetDeadline(time.Now().Add(3 * time.Minute))
	roundTrip(t, legit, "opened before the flood\n")

	during := make(chan error, 1)
	go func() { during <- echoTransfer(legit, 1, 1<<20) }()

	var (
		mu    sync.Mutex
		conns []*net.TCPConn
		next  atomic.Int64
		wg    sync.WaitGroup
		derrs []error
		early int // reset while connect returned: accepted and refused at once
	)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= flood {
				c, err := net.DialTimeout("tcp", r.clientAddr, ioTimeout)
				mu.Lock()
				switch {
				case errors.Is(err, syscall.ECONNRESET):
					early++
				case err != nil:
					derrs = append(derrs, err)
				default:
					conns = append(conns, c.(*net.TCPConn))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(derrs) > 0 {
		t.Fatalf("%d of %d flood dials failed; first: %v", len(derrs), flood, derrs[0])
	}
	if err := <-during; err != nil {
		t.Fatalf("legit session during the flood: %v", err)
	}

	// The relay holds exactly the limit: the legit client, agentMax-1 flood
	// clients in session, the rest waiting; every other one was refused.
	wantRejected := uint64(flood - (limit - 1))
	waitFor(t, time.Minute, func() (bool, string) {
		s, err := getStatus(st)
		if err != nil {
			return false, err.Error()
		}
		// The agent may still be opening slots up to its --max-sessions.
		return s.GetClientsRejected() >= wantRejected && s.GetActiveSessions() == agentMax && s.GetPendingClients() == limit-agentMax,
			fmt.Sprintf("clients_rejected %d, active_sessions %d, pending_clients %d; want %d, %d, %d",
				s.GetClientsRejected(), s.GetActiveSessions(), s.GetPendingClients(), wantRejected, agentMax, limit-agentMax)
	})
	s, err := getStatus(st)
	if err != nil {
		t.Fatal(err)
	}
	if s.GetClientsRejected() != wantRejected || s.GetActiveSessions() != agentMax || s.GetPendingClients() != limit-agentMax {
		t.Errorf("GetStatus: clients_rejected %d active_sessions %d pending_clients %d, want %d %d %d",
			s.GetClientsRejected(), s.GetActiveSessions(), s.GetPendingClients(), wantRejected, agentMax, limit-agentMax)
	}
	waitRejected(t, r, "max_clients")
	// The refused ones got a reset (not a FIN: they must not take the
	// refusal for a served session); the others are still connected.
	waitFor(t, time.Minute, func() (bool, string) {
		reset := 0
		for _, c := range conns {
			if tcpState(t, c) == unix.BPF_TCP_CLOSE {
				reset++
			}
		}
		return early+reset == int(wantRejected), fmt.Sprintf("%d flood connections reset at connect and %d after, want %d in all", early, reset, wantRejected)
	})
	t.Logf("%d flood connections refused (%d of them reset before connect returned), %d held", wantRejected, early, limit-1)
	held := 0
	for _, c := range conns {
		if tcpState(t, c) == unix.BPF_TCP_ESTABLISHED {
			held++
		}
	}
	if held != limit-1 {
		t.Errorf("%d flood connections still established, want %d", held, limit-1)
	}

	if err := echoTransfer(legit, 2, 1<<20); err != nil {
		t.Fatalf("legit session after the flood: %v", err)
	}

	// The flood lets go: its places come back, new clients are served.
	for _, c := range conns {
		c.Close()
	}
	waitHeld(t, st, 1, 0)
	freshSession(t, r, "")
	if s, err := getStatus(st); err != nil || s.GetClientsRejected() != wantRejected {
		t.Errorf("GetStatus after the flood: clients_rejected %d (%v), want still %d", s.GetClientsRejected(), err, wantRejected)
	}
	if err := legit.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	expectEOF(t, legit, "")
	waitHeld(t, st, 0, 0)
}

// TestHostileClientLimitsPerIP: one address may hold --max-clients-per-ip
// clients and open --client-burst at once, then --client-rate a second;
// the extra connections are reset, with the reason in the log, and other
// addresses are not affected.
func TestHostileClientLimitsPerIP(t *testing.T) {
	t.Parallel()

	t.Run("max_clients_per_ip", func(t *testing.T) {
		t.Parallel()
		const perIP = 5
		r := startRelay(t, "--max-clients-per-ip", strconv.Itoa(perIP), "--client-rate", "0")
		startAgent(t, r.grpcAddr, "--idle", "10", "echo")
		st := statusClient(t, r)

		var held []*net.TCPConn
		for i := range perIP {
			c := dial(t, r.clientAddr)
			roundTrip(t, c, fmt.Sprintf("held %d\n", i))
			held = append(held, c)
		}
		for i := range perIP {
			dialRefused(t, r.clientAddr, fmt.Sprintf("extra client %d", i))
		}
		waitRejected(t, r, "max_clients_per_ip")

		// Another address is served meanwhile (all of 127/8 is loopback).
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: ioTimeout}
		oc, err := d.Dial("tcp", r.clientAddr)
		if err != nil {
			t.Fatalf("dial from 127.0.0.2: %v", err)
		}
		defer oc.Close()
		oc.SetDeadline(time.Now().Add(2 * ioTimeout))
		roundTrip(t, oc, "from another address\n")

		// One held client leaves: its place is free again.
		held[0].Close()
		waitHeld(t, st, perIP, 0)
		freshSession(t, r, "")
		if s, err := getStatus(st); err != nil || s.GetClientsRejected() != perIP {
			t.Errorf("GetStatus: clients_rejected %d (%v), want %d", s.GetClientsRejected(), err, perIP)
		}
	})

	t.Run("rate_limited", func(t *testing.T) {
		t.Parallel()
		const (
			rate        = 20
			burst       = 5
			clientCount = 60
		)
		r := startRelay(t, "--client-rate", strconv.Itoa(rate), "--client-burst", strconv.Itoa(burst), "--max-clients-per-ip", "0")
		startAgent(t, r.grpcAddr, "--idle", "10", "echo")
		st := statusClient(t, r)

		start := time.Now()
		for range clientCount {
			c, err := net.DialTimeout("tcp", r.clientAddr, ioTimeout)
			if errors.Is(err, syscall.ECONNRESET) {
				continue // refused already
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
		}
		// Every client has been decided once the relay counts each as
		// rejected or held; by then at most burst + rate × elapsed got in.
		var end time.Time
		var s *relayv1.GetStatusResponse
		waitFor(t, 2*ioTimeout, func() (bool, string) {
			var err error
			s, err = getStatus(st)
			if err != nil {
				return false, err.Error()
			}
			end = time.Now()
			n := s.GetClientsRejected() + uint64(s.GetActiveSessions()+s.GetPendingClients())
			return n == clientCount, fmt.Sprintf("rejected %d + active %d + pending %d, want %d in all", s.GetClientsRejected(), s.GetActiveSessions(), s.GetPendingClients(), clientCount)
		})
		admitted := int(s.GetActiveSessions() + s.GetPendingClients())
		bound := burst + int(rate*end.Sub(start).Seconds()) + 1
		t.Logf("%d of %d admitted within %v (bound %d)", admitted, clientCount, end.Sub(start).Round(time.Millisecond), bound)
		if admitted < burst || admitted > bound {
			t.Fatalf("%d of %d clients admitted; want between the burst %d and %d (burst + rate × %v)", admitted, clientCount, burst, bound, end.Sub(start).Round(time.Millisecond))
		}
		if bound < clientCount {
			waitRejected(t, r, "rate_limited")
		}

		// The bucket refills: a new client is served again, byte for byte.
		// Attempts are paced, so they do not keep it empty themselves.
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		served := false
		for i := 0; i < 20*rate && !served; i++ {
			<-tick.C
			c, err := net.DialTimeout("tcp", r.clientAddr, ioTimeout)
			if errors.Is(err, syscall.ECONNRESET) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(ioTimeout))
			err = echoTransfer(c, 99, 64<<10)
			if err == nil {
				c.(*net.TCPConn).CloseWrite()
				expectEOF(t, c, "")
				served = true
			}
			c.Close()
			if err != nil && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
				t.Fatalf("attempt %d: %v", i, err)
			}
		}
		if !served {
			t.Fatal("no client served after the bucket had 20 s to refill")
		}
	})
}

// TestHostileSilentClients: connections that never send. Without a free
// slot they wait --assign-timeout and are closed (a full queue refuses at
// once); with one, --idle-timeout ends their session, while a session that
// keeps talking goes on.
func TestHostileSilentClients(t *testing.T) {
	t.Parallel()

	t.Run("no_free_slot", func(t *testing.T) {
		t.Parallel()
		const (
			queue  = 5
			silent = 8
		)
		r := startRelay(t, "--assign-timeout", "2s", "--max-pending", strconv.Itoa(queue))
		st := statusClient(t, r)
		var conns []*net.TCPConn
		for i := range silent {
			c, err := net.DialTimeout("tcp", r.clientAddr, ioTimeout)
			if err != nil {
				// Refused at once (queue full): the reset can beat connect.
				if i < queue || !errors.Is(err, syscall.ECONNRESET) {
					t.Fatalf("silent client %d: dial: %v", i, err)
				}
				continue
			}
			t.Cleanup(func() { c.Close() })
			conns = append(conns, c.(*net.TCPConn))
		}
		waitRejected(t, r, "queue_full")
		for i, c := range conns {
			// Closed, not left open: at once when the queue is full, after
			// the assign timeout otherwise.
			c.SetReadDeadline(time.Now().Add(2 * ioTimeout))
			b, err := io.ReadAll(c)
			if len(b) > 0 || (err != nil && !errors.Is(err, syscall.ECONNRESET)) {
				t.Fatalf("silent client %d: read %d bytes then %v; want the relay to close it", i, len(b), err)
			}
		}
		waitRejected(t, r, "no_slot_in_time")
		s := waitHeld(t, st, 0, 0)
		if s.GetClientsRejected() != silent {
			t.Errorf("clients_rejected %d, want %d", s.GetClientsRejected(), silent)
		}
		startAgent(t, r.grpcAddr, "echo")
		freshSession(t, r, "")
	})

	t.Run("idle_session", func(t *testing.T) {
		t.Parallel()
		r := startRelay(t, "--idle-timeout", "1s")
		startAgent(t, r.grpcAddr, "echo")
		st := statusClient(t, r)

		silent := dial(t, r.clientAddr)
		chatty := dial(t, r.clientAddr)
		chatty.SetDeadline(time.Now().Add(time.Minute))
		waitHeld(t, st, 2, 0)
		// The chatty client talks every 100ms until the silent one has
		// been reset (its socket state shows it without a read), and a
		// little more. A correct relay ends it no sooner than 1s after the
		// last byte it passed, which was after lastStart: a failure sooner
		// is the relay's; a later one means this test was starved of CPU.
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		after := -1
		lastStart := time.Now()
		for i := 0; i < 200 && after < 5; i++ {
			<-tick.C
			start := time.Now()
			msg := fmt.Sprintf("still talking %d\n", i)
			_, err := io.WriteString(chatty, msg)
			got := make([]byte, len(msg))
			if err == nil {
				_, err = io.ReadFull(chatty, got)
			}
			if err == nil && string(got) != msg {
				t.Fatalf("chatty client: got %q, want %q", got, msg)
			}
			if err != nil {
				if gap := time.Since(lastStart); gap >= time.Second {
					t.Skipf("inconclusive: the chatty client failed (%v) %v after its previous exchange began: the test was starved of CPU", err, gap)
				}
				t.Fatalf("chatty client: %v; its session was ended though it talked less than 1s before", err)
			}
			lastStart = start
			if after >= 0 {
				after++
			} else if tcpState(t, silent) == unix.BPF_TCP_CLOSE {
				after = 0
			}
		}
		if after < 0 {
			t.Fatal("the silent session was not ended in 20 s with --idle-timeout 1s")
		}
		expectConnReset(t, silent, "silent client in session")
		r.waitLog(t, ioTimeout, `"limit hit" limit=idle_timeout`, func(l logLine) bool {
			return l.msg() == "limit hit" && l.str("limit") == "idle_timeout"
		})
		waitHeld(t, st, 1, 0)
		chatty.CloseWrite()
		expectEOF(t, chatty, "")
		waitHeld(t, st, 0, 0)
		freshSession(t, r, "")
	})
}

// modalBackend is the server behind `hostagent forward` for tests that
// need several kinds of session at once: the client's first byte picks
// what its connection does.
const (
	modeEcho  = 'E' // echo until EOF, then half-close
	modeFlood = 'F' // write floodSize bytes of pattern floodSeed as fast as possible, then half-close
	modeSend  = 'S' // write sendSize bytes of pattern sendSeed, half-close, read to EOF
)

const (
	floodSize = 64 << 20
	floodSeed = 7
	sendSize  = 32 << 20
	sendSeed  = 8
)

// floodReport is how a modeFlood connection ended.
type floodReport struct {
	written int64
	err     error
}

type modalBackend struct {
	*backend
	flooded atomic.Int64     // bytes written by flood connections so far
	floods  chan floodReport // one per flood connection that ended
}

func startModalBackend(tb testing.TB) *modalBackend {
	tb.Helper()
	m := &modalBackend{floods: make(chan floodReport, 16)}
	m.backend = startBackend(tb, func(c *net.TCPConn) {
		c.SetDeadline(time.Now().Add(3 * time.Minute)) // cleanup closes it sooner
		mode := make([]byte, 1)
		if _, err := io.ReadFull(c, mode); err != nil {
			return
		}
		switch mode[0] {
		case modeEcho:
			io.Copy(c, c)
			c.CloseWrite()
		case modeSend:
			buf := make([]byte, 64<<10)
			for off := 0; off < sendSize; off += len(buf) {
				fillPattern(buf, sendSeed, int64(off))
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
			c.CloseWrite()
			io.Copy(io.Discard, c)
		case modeFlood:
			buf := make([]byte, 64<<10)
			var n int64
			var err error
			for n < floodSize {
				fillPattern(buf, floodSeed, n)
				var k int
				k, err = c.Write(buf)
				n += int64(k)
				m.flooded.Add(int64(k))
				if err != nil {
					break
				}
			}
			if err == nil {
				c.CloseWrite()
			}
			select {
			case m.floods <- floodReport{n, err}:
			default:
			}
		}
	})
	return m
}

// vmRSS is the resident set size of process pid, in bytes.
func vmRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS line %q: %v", sc.Text(), err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

func mustRSS(tb testing.TB, pid int) int64 {
	tb.Helper()
	n, err := vmRSS(pid)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// TestHostileNeverReadingClient: a client that never reads while its host
// writes 64 MiB as fast as it can. Flow control must hold the bytes back
// along the path: the relay's memory stays bounded, and a second session on
// the same agent connection moves 32 MiB intact meanwhile.
func TestHostileNeverReadingClient(t *testing.T) {
	t.Parallel()
	const maxGrowth = 32 << 20
	b := startModalBackend(t)
	r := startRelay(t)
	startAgent(t, r.grpcAddr, "--idle", "4", "forward", b.addr)
	st := statusClient(t, r)
	pid := r.cmd.Process.Pid

	freshSession(t, r, string(modeEcho)) // warm: buffers and connections in place
	before := mustRSS(t, pid)

	stuck := dial(t, r.clientAddr)
	if _, err := stuck.Write([]byte{modeFlood}); err != nil {
		t.Fatal(err)
	}
	// The flood is under way before the second session starts.
	waitFor(t, 2*ioTimeout, func() (bool, string) {
		n := b.flooded.Load()
		return n >= 1<<20, fmt.Sprintf("backend wrote %d bytes of its flood, want 1 MiB", n)
	})

	var peak atomic.Int64
	peak.Store(before)
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() { // samples the relay's RSS while the second session runs
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if n, err := vmRSS(pid); err == nil && n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-tick.C:
			case <-stopSampling:
				return
			}
		}
	}()
	second := dial(t, r.clientAddr)
	second.SetDeadline(time.Now().Add(3 * time.Minute))
	if _, err := second.Write([]byte{modeSend}); err != nil {
		t.Fatal(err)
	}
	got, want := make([]byte, 64<<10), make([]byte, 64<<10)
	for off := 0; off < sendSize; off += len(got) {
		if _, err := io.ReadFull(second, got); err != nil {
			close(stopSampling)
			<-sampled
			t.Fatalf("second session: read at %d of %d: %v", off, sendSize, err)
		}
		fillPattern(want, sendSeed, int64(off))
		if !bytes.Equal(got, want) {
			close(stopSampling)
			<-sampled
			t.Fatalf("second session: wrong bytes in the 64 KiB at offset %d", off)
		}
	}
	if n, err := second.Read(got[:1]); n != 0 || err != io.EOF {
		t.Errorf("second session: after %d bytes: %d more, %v; want EOF", sendSize, n, err)
	}
	second.CloseWrite()
	close(stopSampling)
	<-sampled
	if n := mustRSS(t, pid); n > peak.Load() {
		peak.Store(n)
	}
	growth := peak.Load() - before
	t.Logf("relayd VmRSS %d KiB before, peak %d KiB (+%d KiB); the backend flooded %d KiB into a client that reads nothing",
		before>>10, peak.Load()>>10, growth>>10, b.flooded.Load()>>10)
	if growth > maxGrowth {
		t.Errorf("relayd VmRSS grew by %d MiB while a client did not read, want at most %d MiB", growth>>20, maxGrowth>>20)
	}
	if n := b.flooded.Load(); n >= floodSize {
		t.Errorf("the backend wrote all %d MiB to a client that reads nothing: something on the path buffers without bound", n>>20)
	}

	// The stuck client leaves; the flood stops at the backend.
	stuck.Close()
	select {
	case rep := <-b.floods:
		if rep.err == nil || errors.Is(rep.err, os.ErrDeadlineExceeded) {
			t.Errorf("flood connection ended with %v after %d bytes; want its end passed on from the client", rep.err, rep.written)
		}
	case <-time.After(2 * ioTimeout):
		t.Fatal("the backend's flood connection did not end after the client closed")
	}
	waitHeld(t, st, 0, 0)
	freshSession(t, r, string(modeEcho))
}

// TestHostileHalfOpen: a client that half-closes at once still gets every
// byte the backend sends, then EOF; a client reset in the middle of a
// transfer ends the backend's connection, and no other session notices.
func TestHostileHalfOpen(t *testing.T) {
	t.Parallel()

	t.Run("close_write_then_read", func(t *testing.T) {
		t.Parallel()
		reply := patternBytes(9, 1<<20)
		results := make(chan backendResult, 1)
		b := startBackend(t, func(c *net.TCPConn) {
			c.SetDeadline(time.Now().Add(2 * ioTimeout))
			if _, err := c.Write(reply); err != nil {
				results <- backendResult{nil, err}
				return
			}
			got, err := io.ReadAll(c)
			results <- backendResult{got, err}
		})
		r := startRelay(t)
		startAgent(t, r.grpcAddr, "forward", b.addr)
		st := statusClient(t, r)

		c := dial(t, r.clientAddr)
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(c)
		if err != nil || !bytes.Equal(got, reply) {
			t.Fatalf("client: read %d bytes then %v; want the backend's %d bytes then EOF", len(got), err, len(reply))
		}
		select {
		case res := <-results:
			if res.err != nil || len(res.got) != 0 {
				t.Fatalf("backend: read %d bytes then %v; want the client's FIN (EOF) at once", len(res.got), res.err)
			}
		case <-time.After(2 * ioTimeout):
			t.Fatal("backend did not finish")
		}
		waitHeld(t, st, 0, 0)
	})

	t.Run("reset_mid_transfer", func(t *testing.T) {
		t.Parallel()
		b := startModalBackend(t)
		r := startRelay(t)
		startAgent(t, r.grpcAddr, "--idle", "4", "forward", b.addr)
		st := statusClient(t, r)

		other := dial(t, r.clientAddr)
		io.WriteString(other, string(modeEcho))
		roundTrip(t, other, "before the reset\n")

		c := dial(t, r.clientAddr)
		if _, err := c.Write([]byte{modeFlood}); err != nil {
			t.Fatal(err)
		}
		got, want := make([]byte, 256<<10), patternBytes(floodSeed, 256<<10)
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("client: first 256 KiB of the transfer: %v (intact: %v)", err, bytes.Equal(got, want))
		}
		c.SetLinger(0)
		c.Close()
		select {
		case rep := <-b.floods:
			if rep.err == nil || errors.Is(rep.err, os.ErrDeadlineExceeded) {
				t.Fatalf("backend's connection ended with %v after %d bytes; want it ended by the client's reset", rep.err, rep.written)
			}
			t.Logf("backend's write failed after %d bytes: %v", rep.written, rep.err)
		case <-time.After(2 * ioTimeout):
			t.Fatal("the backend's connection did not end after the client's reset")
		}

		roundTrip(t, other, "after the reset\n")
		if err := echoTransfer(other, 10, 1<<20); err != nil {
			t.Fatalf("other session after the reset: %v", err)
		}
		waitHeld(t, st, 1, 0)
		other.CloseWrite()
		expectEOF(t, other, "")
		waitHeld(t, st, 0, 0)
		freshSession(t, r, string(modeEcho))
	})
}
