package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testLog writes a proxy's log lines to the test's log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// lockedBuffer is a bytes.Buffer safe for a proxy's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proxyTo starts a proxy in front of a bare listener and returns both; the
// proxy is closed at cleanup.
func proxyTo(t *testing.T, log io.Writer) (*proxyServer, net.Listener) {
	t.Helper()
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backend.Close() })
	p, err := newProxyServer("127.0.0.1:0", backend.Addr().String(), log)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- p.Serve() }()
	t.Cleanup(func() {
		p.Close()
		if err := <-errc; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return p, backend
}

// connectThrough dials p and returns the client's end and the backend's end
// of one session, with some bytes already through it.
func connectThrough(t *testing.T, p *proxyServer, backend net.Listener) (client, server *net.TCPConn) {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write([]byte("partial")); err != nil {
		t.Fatal(err)
	}
	s, err := backend.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	got := make([]byte, len("partial"))
	if _, err := io.ReadFull(s, got); err != nil || !bytes.Equal(got, []byte("partial")) {
		t.Fatalf("backend read %q, %v", got, err)
	}
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// wantReset reads c until it ends and fails the test unless it ended with a
// reset.
func wantReset(t *testing.T, who string, c *net.TCPConn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err := io.Copy(io.Discard, c)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("%s read to the end: %v, want a reset", who, err)
	}
}

// startChain starts an echo server and two chained proxies in front of it,
// as `relayload run` does for the floor, and returns the first's address.
func startChain(t *testing.T) string {
	t.Helper()
	echo, err := newEchoServer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	second, err := newProxyServer("127.0.0.1:0", echo.Addr(), testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	first, err := newProxyServer("127.0.0.1:0", second.Addr(), testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	for _, serve := range []func() error{echo.Serve, second.Serve, first.Serve} {
		errc := make(chan error, 1)
		go func() { errc <- serve() }()
		t.Cleanup(func() {
			if err := <-errc; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(echo.Close)
	t.Cleanup(second.Close)
	t.Cleanup(first.Close) // cleanups run last first: the first hop closes first
	return first.Addr()
}

// TestProxyChain: the floor passes every byte both ways and a half-close
// after them, through the workloads the runner measures it with.
func TestProxyChain(t *testing.T) {
	addr := startChain(t)
	ctx := context.Background()
	if _, err := runBulk(ctx, addr, 2, 8<<20, time.Minute); err != nil {
		t.Fatalf("bulk: %v", err)
	}
	if _, err := runRTT(ctx, addr, 100, 10, 64, time.Minute); err != nil {
		t.Fatalf("rtt: %v", err)
	}
	if _, err := runRate(ctx, addr, 2, 200, time.Minute); err != nil {
		t.Fatalf("rate: %v", err)
	}
	h, err := runHold(ctx, addr, 50, 4, time.Minute)
	if err != nil {
		t.Fatalf("hold: %v", err)
	}
	h.Close()
}

// TestProxyPassesReset: a client's reset reaches the next hop as a reset,
// not as a clean end that would make cut-short bytes look whole.
func TestProxyPassesReset(t *testing.T) {
	p, backend := proxyTo(t, testLog{t})
	client, server := connectThrough(t, p, backend)
	client.SetLinger(0)
	client.Close()
	wantReset(t, "backend", server)
}

// TestProxyCloseResets: a proxy that stops cuts its open sessions with a
// reset at both ends, so that neither end takes a cut-short session for a
// finished one.
func TestProxyCloseResets(t *testing.T) {
	p, backend := proxyTo(t, testLog{t})
	client, server := connectThrough(t, p, backend)
	p.Close()
	wantReset(t, "client", client)
	wantReset(t, "backend", server)
}

// TestProxyLogsFailedDial: a target that refuses is reported on the log
// and the client is reset.
func TestProxyLogsFailedDial(t *testing.T) {
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := refused.Addr().String()
	refused.Close()
	var log lockedBuffer
	p, err := newProxyServer("127.0.0.1:0", target, &log)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- p.Serve() }()
	defer func() {
		p.Close()
		if err := <-errc; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	// The reset may come so soon that the dial itself reports it.
	c, err := net.Dial("tcp", p.Addr())
	switch {
	case errors.Is(err, syscall.ECONNRESET):
	case err != nil:
		t.Fatal(err)
	default:
		defer c.Close()
		wantReset(t, "client", c.(*net.TCPConn))
	}
	p.Close() // waits for the session, and so for its log line
	if !strings.Contains(log.String(), `"msg":"proxy dial failed"`) || !strings.Contains(log.String(), target) {
		t.Errorf("log after a refused dial: %q", log.String())
	}
}

func TestProxyRefusesNonLoopback(t *testing.T) {
	if _, err := newProxyServer("127.0.0.1:0", "192.0.2.1:80", testLog{t}); err == nil {
		t.Fatal("a proxy to a non-loopback target started")
	}
}

// TestHAProxyChain: the runner's haproxy columns start two chained haproxy
// processes, with and without TLS between them, that pass bytes and a
// half-close, and stop them cleanly. It
// needs haproxy (`apt-get install haproxy`), which CI does not install.
func TestHAProxyChain(t *testing.T) {
	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Skip("no haproxy on PATH")
	}
	echo, err := newEchoServer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- echo.Serve() }()
	defer func() {
		echo.Close()
		if err := <-errc; err != nil {
			t.Errorf("echo: %v", err)
		}
	}()
	r := &runner{dir: t.TempDir(), log: io.Discard, started: time.Now(), echoAddr: echo.Addr()}
	t.Cleanup(r.stopAll) // whatever a failed start left running
	if r.tls, err = makeTLSFiles(r.dir); err != nil {
		t.Fatal(err)
	}
	for name, start := range map[string]func(context.Context, string) (*proc, *proc, string, error){
		"plain": r.startHAProxyChain, "tls": r.startHAProxyTLSChain,
	} {
		first, second, addr, err := start(context.Background(), name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := runBulk(context.Background(), addr, 2, 4<<20, time.Minute); err != nil {
			t.Errorf("%s: bulk through haproxy: %v", name, err)
		}
		for _, p := range []*proc{first, second} {
			if err := p.stop(); err != nil {
				t.Errorf("%s: stop: %v", name, err)
			}
		}
	}
}

// TestWaitEchoesSeesExit: a haproxy that dies at start (a bad config, a
// port it cannot use) is reported with its log, not as a failed echo and
// not after the ready limit. The dying child holds the only copy of the
// listening socket, as haproxy does, so its death resets or refuses the
// probe's connection before the exit is seen.
func TestWaitEchoesSeesExit(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	f, err := lis.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := startProcFiles(context.Background(), "dies", t.TempDir(), "", time.Minute, []*os.File{f},
		"sh", "-c", "echo '[ALERT] config: bad line' >&2; exit 1")
	lis.Close()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	err = waitEchoes(context.Background(), addr, 10*time.Minute, p)
	if err == nil || !strings.Contains(err.Error(), "dies exited before it passed a byte") ||
		!strings.Contains(err.Error(), "bad line") {
		t.Fatalf("waitEchoes with a dead proxy: %v", err)
	}
}
