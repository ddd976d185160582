package clientbridge

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestAdmission(t *testing.T) {
	a1, a2 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	t0 := time.Unix(1000, 0)

	t.Run("max_clients", func(t *testing.T) {
		a := newAdmission(Limits{MaxClients: 2})
		for i, ip := range []netip.Addr{a1, a2} {
			if r := a.admit(ip, t0); r != "" {
				t.Fatalf("client %d refused: %s", i, r)
			}
		}
		if r := a.admit(a1, t0); r != RejectMaxClients {
			t.Fatalf("third client: %q, want %s", r, RejectMaxClients)
		}
		a.release(a2)
		if r := a.admit(a1, t0); r != "" {
			t.Fatalf("after a release: %q", r)
		}
	})
	t.Run("per_ip", func(t *testing.T) {
		a := newAdmission(Limits{MaxClientsPerIP: 2})
		a.admit(a1, t0)
		a.admit(a1, t0)
		if r := a.admit(a1, t0); r != RejectMaxClientsPerIP {
			t.Fatalf("third from one address: %q", r)
		}
		if r := a.admit(a2, t0); r != "" {
			t.Fatalf("another address: %q", r)
		}
		a.release(a1)
		if r := a.admit(a1, t0); r != "" {
			t.Fatalf("after a release: %q", r)
		}
	})
	t.Run("rate", func(t *testing.T) {
		a := newAdmission(Limits{RatePerIP: 10, BurstPerIP: 3})
		for i := range 3 {
			if r := a.admit(a1, t0); r != "" {
				t.Fatalf("burst %d: %q", i, r)
			}
		}
		if r := a.admit(a1, t0); r != RejectRateLimited {
			t.Fatalf("beyond the burst: %q", r)
		}
		if r := a.admit(a2, t0); r != "" {
			t.Fatalf("another address has its own bucket: %q", r)
		}
		// 10/s: one token every 100ms, whether or not clients were released.
		if r := a.admit(a1, t0.Add(50*time.Millisecond)); r != RejectRateLimited {
			t.Fatalf("after 50ms: %q", r)
		}
		if r := a.admit(a1, t0.Add(100*time.Millisecond)); r != "" {
			t.Fatalf("after 100ms: %q", r)
		}
		// The bucket never holds more than the burst.
		late := t0.Add(time.Hour)
		for i := range 3 {
			if r := a.admit(a1, late); r != "" {
				t.Fatalf("an hour later, %d: %q", i, r)
			}
		}
		if r := a.admit(a1, late); r != RejectRateLimited {
			t.Fatalf("the bucket held more than the burst: %q", r)
		}
	})
	t.Run("default_burst", func(t *testing.T) {
		a := newAdmission(Limits{RatePerIP: 0.5})
		if r := a.admit(a1, t0); r != "" {
			t.Fatalf("first: %q", r)
		}
		if r := a.admit(a1, t0); r != RejectRateLimited {
			t.Fatalf("second at once: %q", r)
		}
	})
	t.Run("forgets_addresses", func(t *testing.T) {
		// A flood from many addresses costs memory only while it lasts.
		a := newAdmission(Limits{RatePerIP: 100, BurstPerIP: 1})
		var held []netip.Addr
		for i := range 5000 {
			ip := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
			if r := a.admit(ip, t0); r != "" {
				t.Fatalf("address %d: %q", i, r)
			}
			if i%100 == 0 {
				held = append(held, ip)
			} else {
				a.release(ip)
			}
		}
		// Buckets refill within 10ms; the sweep runs as the map grows.
		later := t0.Add(time.Second)
		for i := range 3500 { // past the next sweep threshold (8192)
			a.admit(netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)}), later)
		}
		if n := a.tracked(); n > 5000 {
			t.Errorf("%d addresses remembered; the sweep should have dropped the idle ones", n)
		}
		a.mu.Lock()
		for _, ip := range held {
			if st := a.byIP[ip]; st == nil || st.held != 1 {
				t.Errorf("address %v with a client held was forgotten", ip)
			}
		}
		a.mu.Unlock()
	})
}

func TestLimitsRejectWithReset(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	var logMu sync.Mutex
	b := newBridge(t, Config{Limits: Limits{MaxClients: 2}, Logger: slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))})
	addr := serve(t, b, "svc")
	first := dial(t, addr)
	waitFor(t, "first client queued", pendingIs(b, "svc", 1))
	second := dial(t, addr)
	waitFor(t, "second client queued", pendingIs(b, "svc", 2))

	for i := range 3 {
		expectRefused(t, addr, fmt.Sprint("client ", i, " over the limit"))
	}
	if got := b.Rejections()[RejectMaxClients]; got != 3 {
		t.Errorf("Rejections()[%s] = %d, want 3", RejectMaxClients, got)
	}
	if st := stats(b, "svc"); st.Rejected != 3 || st.Pending != 2 {
		t.Errorf("Stats = %+v, want 3 rejected and the 2 waiting untouched", st)
	}
	logMu.Lock()
	if n := bytes.Count(logs.Bytes(), []byte("reason="+RejectMaxClients)); n < 1 || n > 3 {
		t.Errorf("%d log lines for the rejections, want 1 to 3: %s", n, logs.String())
	}
	logMu.Unlock()

	// A client in a session holds its place until the session releases it.
	slot := newSlot(t, newHost("h", 1))
	b.AddIdle("svc", slot)
	c := slot.assigned(t)
	if !sameClient(c, first) {
		t.Fatalf("slot went to %s, want the first client", clientAddr(c))
	}
	expectRefused(t, addr, "with a session and a waiter held")
	c.Conn.Close()
	c.Release()
	c.Release() // idempotent: one place given back
	third := dial(t, addr)
	waitFor(t, "third client queued", pendingIs(b, "svc", 2))
	expectRefused(t, addr, "after a double Release (one place given back)")
	// A waiter that leaves (a reset: a FIN keeps its place) gives its
	// place back too.
	second.SetLinger(0)
	second.Close()
	waitFor(t, "second client left the queue", pendingIs(b, "svc", 1))
	fourth := dial(t, addr)
	waitFor(t, "fourth client queued", pendingIs(b, "svc", 2))
	_, _ = third, fourth
}

func TestRejectionLogIsRateLimited(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	var logMu sync.Mutex
	b := newBridge(t, Config{MaxPending: -1, Logger: slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))})
	addr := serve(t, b, "svc")
	start := time.Now()
	const n = 50
	for range n {
		expectRefused(t, addr, "a client with no room to wait")
	}
	elapsed := time.Since(start)
	logMu.Lock()
	defer logMu.Unlock()
	lines := bytes.Count(logs.Bytes(), []byte("client rejected"))
	if max := int(elapsed/time.Second) + 1; lines < 1 || lines > max {
		t.Errorf("%d rejections in %v logged %d lines, want 1 to %d", n, elapsed, lines, max)
	}
	if got := b.Rejections()[RejectQueueFull]; got != n {
		t.Errorf("counted %d rejections, want %d", got, n)
	}
}

// expectRefused connects and expects a reset: at once, or on the first
// read (the bridge accepts, then resets).
func expectRefused(tb testing.TB, addr, what string) {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		if !errors.Is(err, syscall.ECONNRESET) {
			tb.Fatalf("%s: dial: %v, want a reset", what, err)
		}
		return
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(watchdog))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		tb.Fatalf("%s: Read error %v, want a reset", what, err)
	}
}

func TestLimitListener(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var reasons []string
	lis := LimitListener(inner, Limits{MaxClients: 3, MaxClientsPerIP: 2}, func(_ net.Addr, reason string) {
		mu.Lock()
		reasons = append(reasons, reason)
		mu.Unlock()
	})
	defer lis.Close()
	accepted := make(chan net.Conn, 8)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	defer func() { lis.Close(); <-done }()
	take := func(what string) net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			t.Cleanup(func() { c.Close() })
			return c
		case <-time.After(watchdog):
			t.Fatalf("%s: not accepted", what)
			return nil
		}
	}
	first := dial(t, lis.Addr().String())
	c1 := take("first")
	dial(t, lis.Addr().String())
	take("second")
	// A third from the same address is over the per-IP limit: reset.
	expectRefused(t, lis.Addr().String(), "a third connection from one address")
	// Another address is still let in, up to the total.
	other, err := net.DialTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, lis.Addr().(*net.TCPAddr))
	if err != nil {
		t.Skipf("no 127.0.0.2 here: %v", err)
	}
	defer other.Close()
	take("from 127.0.0.2")
	// Over the total: reset. The reset may reach the client before its
	// connect returns (a loaded machine), or at its first read.
	other2, err := net.DialTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)}, lis.Addr().(*net.TCPAddr))
	if err == nil {
		defer other2.Close()
		other2.SetReadDeadline(time.Now().Add(watchdog))
		_, err = other2.Read(make([]byte, 1))
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("a connection over the total: %v, want a reset", err)
	}
	// Closing an accepted connection gives its place back.
	c1.Close()
	c1.Close() // once only
	first.Close()
	dial(t, lis.Addr().String())
	take("after a close")
	expectRefused(t, lis.Addr().String(), "one over the total again (a double Close gave back one place)")
	// onReject runs after the reset is sent: the client can see the reset
	// before the refusal is reported. (The earlier two are reported before
	// the next Accept, which the test waits for.)
	waitFor(t, "the last refusal reported", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(reasons) >= 3
	})
	mu.Lock()
	defer mu.Unlock()
	if got := fmt.Sprint(reasons); got != "[max_clients_per_ip max_clients max_clients]" {
		t.Errorf("refusals reported: %s", got)
	}
}

// TestRejectionCountsLoggedAtClose: the rejections the once-a-second lines
// left out are logged at Close, with their count: at a shutdown, every
// queued client is rejected at once, and relayd exited with one line for
// them all.
func TestRejectionCountsLoggedAtClose(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	var logMu sync.Mutex
	b := newBridge(t, Config{MaxPending: -1, Logger: slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))})
	addr := serve(t, b, "svc")
	const n = 5
	for range n {
		expectRefused(t, addr, "a client with no room to wait")
	}
	b.Close()
	logMu.Lock()
	defer logMu.Unlock()
	told := 0 // rejections the lines account for
	for line := range strings.Lines(logs.String()) {
		if !strings.Contains(line, "reason="+RejectQueueFull) {
			continue
		}
		told++ // a "client rejected" line stands for itself
		if strings.Contains(line, "msg=\"clients rejected since the last line\"") {
			told--
		}
		if _, after, ok := strings.Cut(line, "not_logged_since_last_line="); ok {
			k, err := strconv.Atoi(strings.Fields(after)[0])
			if err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			told += k
		}
	}
	if told != n {
		t.Errorf("the log accounts for %d of %d rejections:\n%s", told, n, logs.String())
	}
}
