package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relayproject/relay/internal/portclaim"
)

// patternBytes is n bytes of the deterministic pattern for seed (n a
// multiple of 8).
func patternBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	fillPattern(b, seed, 0)
	return b
}

// backendResult is what a backend handler saw on its connection.
type backendResult struct {
	got []byte // every byte read before EOF
	err error  // the read error that ended it (nil for a clean EOF)
}

// TestForwardHalfClose checks TCP half-close end to end through
// `hostagent forward`: a FIN from either end travels to the other as a FIN,
// after every byte sent before it, while the opposite direction keeps
// flowing. Payloads span many Data frames.
func TestForwardHalfClose(t *testing.T) {
	t.Parallel()
	request := patternBytes(1, 1<<20)
	reply := patternBytes(2, 512<<10)
	tests := []struct {
		name string
		// backend serves one connection and reports what it read.
		backend func(c *net.TCPConn) backendResult
		// client runs on the client's connection and returns what it expects
		// the backend to have read.
		client func(t *testing.T, c *net.TCPConn) []byte
	}{
		{
			// The request/response pattern: the client's FIN means "that is
			// the whole request"; the backend answers and closes.
			name: "client_half_closes_first",
			backend: func(c *net.TCPConn) backendResult {
				got, err := io.ReadAll(c)
				if err != nil {
					return backendResult{got, err}
				}
				if _, err := c.Write(reply); err != nil {
					return backendResult{got, err}
				}
				return backendResult{got, c.Close()}
			},
			client: func(t *testing.T, c *net.TCPConn) []byte {
				if _, err := c.Write(request); err != nil {
					t.Fatal(err)
				}
				if err := c.CloseWrite(); err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(c)
				if err != nil {
					t.Fatalf("client: read reply: %v after %d bytes", err, len(got))
				}
				if !bytes.Equal(got, reply) {
					t.Fatalf("client: reply of %d bytes differs from the %d sent", len(got), len(reply))
				}
				return request
			},
		},
		{
			// The backend speaks first and is done talking, but still
			// listens: the client reads the greeting and the FIN, and only
			// then sends the second half of its data.
			name: "backend_half_closes_first",
			backend: func(c *net.TCPConn) backendResult {
				if _, err := c.Write(reply); err != nil {
					return backendResult{nil, err}
				}
				if err := c.CloseWrite(); err != nil {
					return backendResult{nil, err}
				}
				got, err := io.ReadAll(c)
				return backendResult{got, err}
			},
			client: func(t *testing.T, c *net.TCPConn) []byte {
				first, second := request[:len(request)/2], request[len(request)/2:]
				if _, err := c.Write(first); err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(c)
				if err != nil {
					t.Fatalf("client: read greeting: %v after %d bytes", err, len(got))
				}
				if !bytes.Equal(got, reply) {
					t.Fatalf("client: greeting of %d bytes differs from the %d sent", len(got), len(reply))
				}
				// Our direction is still open after the backend's FIN.
				if _, err := c.Write(second); err != nil {
					t.Fatalf("client: write after the backend's FIN: %v", err)
				}
				if err := c.CloseWrite(); err != nil {
					t.Fatal(err)
				}
				if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
					t.Fatalf("client: read after both FINs: want EOF, got %d bytes, %v", n, err)
				}
				return request
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			results := make(chan backendResult, 1)
			b := startBackend(t, func(c *net.TCPConn) {
				c.SetDeadline(time.Now().Add(2 * ioTimeout))
				results <- tt.backend(c)
			})
			r := startRelay(t)
			startAgent(t, r.grpcAddr, "forward", b.addr)

			c := dial(t, r.clientAddr)
			want := tt.client(t, c)
			select {
			case res := <-results:
				if res.err != nil {
					t.Fatalf("backend: %v after reading %d bytes", res.err, len(res.got))
				}
				if !bytes.Equal(res.got, want) {
					t.Fatalf("backend read %d bytes that differ from the %d the client sent", len(res.got), len(want))
				}
			case <-time.After(ioTimeout):
				t.Fatal("backend did not finish")
			}
		})
	}
}

// TestClientCloseReachesBackend: when the client goes away, the backend
// behind `hostagent forward` must learn it, or its connection leaks. A
// clean close arrives as EOF; a reset must end the backend's read too.
func TestClientCloseReachesBackend(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		close   func(c *net.TCPConn)
		wantEOF bool // else any error but a timeout
	}{
		{name: "close", close: func(c *net.TCPConn) { c.Close() }, wantEOF: true},
		{name: "reset", close: func(c *net.TCPConn) { c.SetLinger(0); c.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const hello = "hi backend\n"
			connected := make(chan struct{}, 1)
			ended := make(chan error, 1)
			b := startBackend(t, func(c *net.TCPConn) {
				c.SetReadDeadline(time.Now().Add(2 * ioTimeout))
				buf := make([]byte, len(hello))
				if _, err := io.ReadFull(c, buf); err != nil {
					ended <- err
					return
				}
				connected <- struct{}{}
				n, err := c.Read(buf)
				if n > 0 {
					err = errors.New("read unexpected bytes")
				}
				ended <- err
			})
			r := startRelay(t)
			startAgent(t, r.grpcAddr, "forward", b.addr)

			c := dial(t, r.clientAddr)
			if _, err := io.WriteString(c, hello); err != nil {
				t.Fatal(err)
			}
			select {
			case <-connected:
			case err := <-ended:
				t.Fatalf("backend: %v", err)
			case <-time.After(ioTimeout):
				t.Fatal("the client's bytes did not reach the backend")
			}
			tt.close(c)
			var err error
			select {
			case err = <-ended:
			case <-time.After(3 * ioTimeout):
				t.Fatal("backend handler did not return")
			}
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				t.Fatalf("backend read still blocked %v after the client closed", 2*ioTimeout)
			case tt.wantEOF && err != io.EOF:
				t.Fatalf("backend read: got %v, want EOF", err)
			case !tt.wantEOF && err == nil:
				t.Fatal("backend read: got bytes, want the connection to end")
			}
			t.Logf("backend read ended with: %v", err)
		})
	}
}

// TestDeadBackendPassedOver: a host whose `forward` backend is down ends
// each session at once (BACKEND_UNAVAILABLE), so it always looks idle, and
// least-loaded gave it most clients. relayd now passes it over while
// another host has an idle slot; a client goes there only as a probe, when
// its backoff window (1 s, doubling) ends. Two agents may share a host id
// (it defaults to the machine's name): then the dead agent's slots are
// passed over for the good one's, within the host.
func TestDeadBackendPassedOver(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, deadID, goodID string
		deadArgs             []string
	}{
		{"two_hosts", "dead", "good", nil},
		{"one_host_id", "shared", "shared", nil},
		// Health is the agent's, over all its connections (Hello.agent_instance).
		{"conns4", "dead", "good", []string{"--conns", "4"}},
		{"conns4_one_host_id", "shared", "shared", []string{"--conns", "4"}},
		// Its one slot ends with each failure: the window outlives it.
		{"max_sessions_1", "dead", "good", []string{"--idle", "1", "--max-sessions", "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testDeadBackendPassedOver(t, tc.deadID, tc.goodID, tc.deadArgs)
		})
	}
}

func testDeadBackendPassedOver(t *testing.T, deadID, goodID string, deadArgs []string) {
	r := startRelay(t)
	good := startBackend(t, func(c *net.TCPConn) {
		io.Copy(c, c)
		c.CloseWrite()
	})
	deadAddr := portclaim.MustAddr(t) // claimed, and nothing listens there
	// The dead agent last: its slots are the newest, which a host's next
	// client takes, and "dead" comes first among tied hosts, so the first
	// client goes there.
	startAgent(t, r.grpcAddr, "--host-id", goodID, "--idle", "4", "forward", good.addr)
	// The agent's own check (--backend-probe-interval) would offer no
	// slots at all: this tests the relay's, for any other host.
	startAgent(t, r.grpcAddr, slices.Concat([]string{"--host-id", deadID, "--idle", "4", "--backend-probe-interval", "0"}, deadArgs, []string{"forward", deadAddr})...)
	const clients = 30
	failed := 0
	start := time.Now()
	for i := range clients {
		// A reset can come before the dialer has seen its connection
		// complete, or before the write: either is a client of the dead host.
		msg := fmt.Sprintf("client %d\n", i)
		got, err := func() ([]byte, error) {
			c, err := net.DialTimeout("tcp", r.clientAddr, ioTimeout)
			if err != nil {
				return nil, err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(ioTimeout))
			if _, err := c.Write([]byte(msg)); err != nil {
				return nil, err
			}
			c.(*net.TCPConn).CloseWrite()
			return io.ReadAll(c)
		}()
		switch {
		case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
			failed++ // reset: it went to the dead host
		case err != nil:
			t.Fatalf("client %d: %v", i, err)
		case string(got) != msg:
			t.Fatalf("client %d read %q, want %q", i, got, msg)
		}
	}
	// Each failure opens a window twice as long as the one before: in
	// `elapsed`, at most 1 + log2(elapsed/1s + 1) probes can fail.
	elapsed := time.Since(start)
	most := 1
	for w := time.Second; w-time.Second <= elapsed; w *= 2 {
		most++
	}
	t.Logf("%d of %d clients reset in %v (at most %d allowed)", failed, clients, elapsed, most)
	if failed > most {
		t.Errorf("%d of %d clients went to the host whose backend is down, want at most %d in %v", failed, clients, most, elapsed)
	}
	r.waitLog(t, ioTimeout, `"host cannot reach its backend"`, func(l logLine) bool {
		return strings.HasPrefix(l.msg(), "host cannot reach its backend") && l.str("host_id") == deadID
	})
	// ListHosts shows it.
	hosts, err := listHosts(statusClient(t, r))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts.GetHosts() {
		if dead := h.GetHostId() == deadID; dead != (h.GetBackendFailures() > 0) {
			t.Errorf("ListHosts: %s has backend_failures %d", h.GetHostId(), h.GetBackendFailures())
		}
	}
}

// TestBackendOutageClientsWait: once a session of `hostagent forward`
// finds its backend refusing connections, the agent offers no slots until
// the backend answers again, so that with no other host the clients after
// it wait in the relay's queue and are then served, rather than being
// reset one after another. Twice: the backend down at start, then again.
func TestBackendOutageClientsWait(t *testing.T) {
	t.Parallel()
	r := startRelay(t)
	st := statusClient(t, r)
	addr := portclaim.MustAddr(t) // nothing listens there yet
	a := startAgent(t, r.grpcAddr, "--idle", "2", "--metrics-addr", "127.0.0.1:0", "--backend-probe-interval", "50ms", "forward", addr)
	metrics := a.metricsAddr(t)
	for outage := range 2 {
		// The session that finds the backend down is reset.
		// (The reset may come before the dialer has seen its connection
		// complete, or before the write.)
		err := func() error {
			c, err := net.DialTimeout("tcp", r.clientAddr, ioTimeout)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(ioTimeout))
			if _, err := c.Write([]byte("finds out\n")); err != nil {
				return err
			}
			_, err = io.ReadAll(c)
			return err
		}()
		if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
			t.Fatalf("outage %d: client of the session that found the backend down: %v; want a reset", outage, err)
		}
		a.waitLog(t, ioTimeout, "the outage at Warn", func(l logLine) bool {
			return l.msg() == "backend unreachable: offering no slots until it answers" && l.str("level") == "WARN"
		})
		// The agent withdraws its slots: the line above comes as it starts
		// to, and the relay and the agent count them gone a little later.
		waitFor(t, ioTimeout, func() (bool, string) {
			s, err := getStatus(st)
			if err != nil {
				return false, err.Error()
			}
			m := scrape(t, metrics)
			return s.GetIdleSlots() == 0 && m["hostagent_idle_slots"] == 0 && m["hostagent_backend_up"] == 0,
				fmt.Sprintf("relay: %d idle slots; agent: hostagent_idle_slots %v, hostagent_backend_up %v; want 0, 0, 0", s.GetIdleSlots(), m["hostagent_idle_slots"], m["hostagent_backend_up"])
		})
		// The next client waits.
		c := dial(t, r.clientAddr)
		msg := fmt.Sprintf("waits %d\n", outage)
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		c.CloseWrite()
		waitFor(t, ioTimeout, func() (bool, string) {
			s, err := getStatus(st)
			if err != nil {
				return false, err.Error()
			}
			return s.GetPendingClients() == 1 && s.GetIdleSlots() == 0, fmt.Sprintf("status: %v", s)
		})
		b := startBackendAt(t, addr, func(c *net.TCPConn) {
			io.Copy(c, c)
			c.CloseWrite()
		})
		expectEOF(t, c, msg)
		a.waitLog(t, ioTimeout, "the outage's end", func(l logLine) bool { return l.msg() == "backend answers again: offering slots" })
		if m := scrape(t, metrics); m["hostagent_backend_up"] != 1 {
			t.Errorf("outage %d over: hostagent_backend_up %v, want 1", outage, m["hostagent_backend_up"])
		}
		b.stop()
	}
}
