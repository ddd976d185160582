package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRelayRestart stops relayd and starts a new one on the same three
// addresses: the agent, left running, must notice, reconnect with backoff
// and fill its idle pool again, and clients must get an echo from it.
// Between the two relays the ports stay claimed (startRelay), so no
// parallel test's socket takes one of them.
func TestRelayRestart(t *testing.T) {
	t.Parallel()
	r1 := startRelay(t, "--relay-id", "e2e-first")
	a := startAgent(t, r1.grpcAddr, "echo")
	c := dial(t, r1.clientAddr)
	roundTrip(t, c, "before restart\n")
	c.Close()

	if err := r1.terminate(t); err != nil {
		t.Fatalf("relayd: SIGTERM: want exit status 0, got %v; stderr:%s", err, r1.tail(20))
	}
	r2 := startRelay(t, "--relay-id", "e2e-second",
		"--grpc-addr", r1.grpcAddr, "--admin-addr", r1.adminAddr, "--client-addr", r1.clientAddr)
	if r2.grpcAddr != r1.grpcAddr || r2.adminAddr != r1.adminAddr || r2.clientAddr != r1.clientAddr {
		t.Fatalf("second relayd listens on %s %s %s, want %s %s %s",
			r2.grpcAddr, r2.adminAddr, r2.clientAddr, r1.grpcAddr, r1.adminAddr, r1.clientAddr)
	}
	a.waitAttached(t) // the second "relay attached" line: the pool is full again

	c = dial(t, r2.clientAddr)
	roundTrip(t, c, "after restart\n")
	c.CloseWrite()
	expectEOF(t, c, "")
	st, err := getStatus(statusClient(t, r2))
	if err != nil {
		t.Fatal(err)
	}
	if st.GetRelayId() != "e2e-second" || st.GetSessionsTotal() != 1 {
		t.Fatalf("second relay: relay_id %q sessions_total %d, want e2e-second and 1", st.GetRelayId(), st.GetSessionsTotal())
	}
}

// TestTwoHostsShareLoad holds 20 sessions open over two agents with the
// default least-loaded scheduler: each host must carry about half. The
// relay's own ListSessions says which host serves which session. Clients
// arrive one by one (each session open before the next client, so the
// scheduler sees every host's real load) and in a burst (the scheduler must
// count sessions it has just assigned, not only those already open).
func TestTwoHostsShareLoad(t *testing.T) {
	t.Parallel()
	const clients = 20
	for _, tt := range []struct {
		name  string
		burst bool
	}{{"one_by_one", false}, {"burst", true}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := startRelay(t)
			startAgent(t, r.grpcAddr, "--host-id", "e2e-a", "echo")
			startAgent(t, r.grpcAddr, "--host-id", "e2e-b", "echo")

			conns := make([]*net.TCPConn, clients)
			for i := range conns {
				conns[i] = dial(t, r.clientAddr)
				if !tt.burst {
					roundTrip(t, conns[i], fmt.Sprintf("client %d\n", i))
				}
			}
			if tt.burst {
				// All 20 are connected; now prove every session is open.
				errs := make(chan error, clients)
				for i, c := range conns {
					go func() {
						msg := fmt.Sprintf("client %d\n", i)
						got := make([]byte, len(msg))
						_, err := io.WriteString(c, msg)
						if err == nil {
							_, err = io.ReadFull(c, got)
						}
						if err == nil && string(got) != msg {
							err = fmt.Errorf("got %q, want %q", got, msg)
						}
						errs <- err
					}()
				}
				for range conns {
					if err := <-errs; err != nil {
						t.Error(err)
					}
				}
				if t.Failed() {
					return
				}
			}
			resp, err := listSessions(statusClient(t, r))
			if err != nil {
				t.Fatal(err)
			}
			perHost := map[string]int{}
			for _, s := range resp.GetSessions() {
				perHost[s.GetHostId()]++
			}
			if len(resp.GetSessions()) != clients {
				t.Fatalf("ListSessions: %d sessions, want %d (per host: %v)", len(resp.GetSessions()), clients, perHost)
			}
			for _, h := range []string{"e2e-a", "e2e-b"} {
				if n := perHost[h]; n < 7 || n > 13 {
					t.Errorf("host %s serves %d of %d sessions, want 7..13 (per host: %v)", h, n, clients, perHost)
				}
			}
			t.Logf("sessions per host: %v", perHost)
			for _, c := range conns {
				c.CloseWrite()
				expectEOF(t, c, "")
			}
		})
	}
}

// TestStatus checks what an operator sees for one held session, through the
// Go client and through the real grpcurl. The session runs in forward mode
// against a backend that keeps its side open, so the session stays listed
// after the client half-closes.
func TestStatus(t *testing.T) {
	t.Parallel()
	const (
		idle   = 3
		hostID = "e2e-status-host"
		msg    = "ping\n"
	)
	clientEOF := make(chan struct{})
	release := make(chan struct{})
	b := startBackend(t, func(c *net.TCPConn) {
		// Echo until the client's FIN, then hold our side open until the
		// test has looked at the session.
		io.Copy(c, c)
		close(clientEOF)
		select {
		case <-release:
		case <-time.After(3 * ioTimeout):
		}
		c.CloseWrite()
	})
	r := startRelay(t, "--relay-id", "e2e-status")
	startAgent(t, r.grpcAddr, "--idle", fmt.Sprint(idle), "--host-id", hostID,
		"--label", "zone=loopback", "--label", "team=e2e", "forward", b.addr)
	// On failure, let the backend go before the agent is stopped, so the
	// session can end and cleanup stays quick.
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce)
	st := statusClient(t, r)

	c := dial(t, r.clientAddr)
	roundTrip(t, c, msg)

	// The session's stream comes back when it ends (sequential sessions),
	// so the agent counts it for one of its idle slots and keeps idle-1
	// idle; only the relay's status shows when they are idle there.
	waitFor(t, ioTimeout, func() (bool, string) {
		s, err := getStatus(st)
		if err != nil {
			return false, err.Error()
		}
		ok := s.GetRelayId() == "e2e-status" && s.GetHosts() == 1 && s.GetActiveSessions() == 1 &&
			s.GetSessionsTotal() >= 1 && s.GetIdleSlots() == idle-1
		return ok, fmt.Sprintf("GetStatus = {relay_id %q hosts %d active_sessions %d sessions_total %d idle_slots %d}, want {e2e-status 1 1 >=1 %d}",
			s.GetRelayId(), s.GetHosts(), s.GetActiveSessions(), s.GetSessionsTotal(), s.GetIdleSlots(), idle-1)
	})

	hosts, err := listHosts(st)
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts.GetHosts()) != 1 {
		t.Fatalf("ListHosts: %d hosts, want 1: %v", len(hosts.GetHosts()), hosts)
	}
	h := hosts.GetHosts()[0]
	wantLabels := map[string]string{"zone": "loopback", "team": "e2e"}
	if h.GetHostId() != hostID || !maps.Equal(h.GetLabels(), wantLabels) || h.GetActiveSessions() != 1 {
		t.Errorf("ListHosts: host_id %q labels %v active_sessions %d, want %q %v 1", h.GetHostId(), h.GetLabels(), h.GetActiveSessions(), hostID, wantLabels)
	}
	if host, port, err := net.SplitHostPort(h.GetPeerAddr()); err != nil || host != "127.0.0.1" || port == "0" {
		t.Errorf("ListHosts: peer_addr %q, want the agent's 127.0.0.1:PORT", h.GetPeerAddr())
	}

	sess := func() (bool, string) {
		resp, err := listSessions(st)
		if err != nil {
			return false, err.Error()
		}
		if len(resp.GetSessions()) != 1 {
			return false, fmt.Sprintf("ListSessions: %d sessions, want 1", len(resp.GetSessions()))
		}
		s := resp.GetSessions()[0]
		if s.GetClientAddr() != c.LocalAddr().String() || s.GetHostId() != hostID ||
			s.GetBytesToHost() != uint64(len(msg)) || s.GetBytesFromHost() != uint64(len(msg)) {
			return false, fmt.Sprintf("ListSessions: client_addr %q host_id %q bytes_to_host %d bytes_from_host %d, want %q %q %d %d",
				s.GetClientAddr(), s.GetHostId(), s.GetBytesToHost(), s.GetBytesFromHost(), c.LocalAddr(), hostID, len(msg), len(msg))
		}
		return true, ""
	}
	// The relay counts a byte from the host once its write to the client
	// has returned, which can be after the client has read it.
	waitFor(t, ioTimeout, sess)

	// The client half-closes; the backend reading EOF proves the FIN went
	// through the relay, which must now show it.
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-clientEOF:
	case <-time.After(ioTimeout):
		t.Fatal("the client's FIN did not reach the backend")
	}
	waitFor(t, ioTimeout, func() (bool, string) {
		if ok, why := sess(); !ok {
			return false, why
		}
		resp, _ := listSessions(st)
		s := resp.GetSessions()[0]
		return s.GetClientWriteClosed() && !s.GetHostWriteClosed(), fmt.Sprintf("ListSessions: client_write_closed %v host_write_closed %v, want true false",
			s.GetClientWriteClosed(), s.GetHostWriteClosed())
	})

	t.Run("grpcurl", func(t *testing.T) {
		root, err := repoRoot()
		if err != nil {
			t.Fatal(err)
		}
		grpcurl := func(args ...string) string {
			// The first use builds grpcurl from tools/go.mod: allow for it.
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, goBinary(), append([]string{"tool", "-modfile=" + root + "/tools/go.mod", "grpcurl", "-plaintext"}, args...)...)
			cmd.Dir = root
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("grpcurl %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			return string(out)
		}
		list := grpcurl(r.adminAddr, "list")
		for _, svc := range []string{"relay.v1.StatusService", "grpc.health.v1.Health"} {
			if !strings.Contains(list, svc+"\n") {
				t.Errorf("grpcurl list: no %s in:\n%s", svc, list)
			}
		}
		status := grpcurl(r.adminAddr, "relay.v1.StatusService/GetStatus")
		if !strings.Contains(status, `"relayId": "e2e-status"`) {
			t.Errorf("grpcurl GetStatus: no relayId e2e-status in:\n%s", status)
		}
	})

	// The client's deadline was set when it dialed, and building grpcurl
	// with a cold cache can take longer than that: a fresh one for the
	// last exchange.
	c.SetDeadline(time.Now().Add(ioTimeout))
	releaseOnce()
	expectEOF(t, c, "")
}

// TestRelaydBadCommandLine: a usage error exits 2 with a message naming the
// problem; a port in use exits 1 with a hint at the likely cause.
func TestRelaydBadCommandLine(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	free := []string{"--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--client-addr", "127.0.0.1:0"}

	tests := []struct {
		name     string
		binary   string
		args     []string
		wantCode int
		wantMsg  string
	}{
		{name: "unknown_flag", binary: "relayd", args: []string{"--no-such-flag"}, wantCode: 2, wantMsg: "flag provided but not defined: --no-such-flag (see -h for the flags)"},
		{name: "bad_scheduler", binary: "relayd", args: []string{"--scheduler", "fastest"}, wantCode: 2, wantMsg: "--scheduler"},
		{name: "bad_address", binary: "relayd", args: []string{"--client-addr", "8002"}, wantCode: 2, wantMsg: `--client-addr "8002"`},
		{name: "bad_duration", binary: "relayd", args: []string{"--assign-timeout", "soon"}, wantCode: 2, wantMsg: "invalid value \"soon\" for --assign-timeout: want a duration with a unit"},
		{name: "agent_bad_number", binary: "hostagent", args: []string{"--idle", "ten", "echo"}, wantCode: 2, wantMsg: "invalid value \"ten\" for --idle: want a whole number"},
		{name: "zero_timeout", binary: "relayd", args: []string{"--assign-timeout", "0s"}, wantCode: 2, wantMsg: "--assign-timeout must be positive"},
		{name: "keepalive_too_short", binary: "relayd", args: []string{"--agent-keepalive", "500ms"}, wantCode: 2, wantMsg: "--agent-keepalive must be at least 1s"},
		{name: "empty_relay_id", binary: "relayd", args: []string{"--relay-id", ""}, wantCode: 2, wantMsg: `invalid value "" for --relay-id: must not be empty`},
		{name: "agent_empty_host_id", binary: "hostagent", args: []string{"--host-id", "", "echo"}, wantCode: 2, wantMsg: `invalid value "" for --host-id: must not be empty`},
		{name: "frame_too_small", binary: "relayd", args: []string{"--max-data-bytes", "10"}, wantCode: 2, wantMsg: "--max-data-bytes must be between 1024 and 4194304, got 10"},
		{name: "bad_log_format", binary: "relayd", args: slices.Concat(free, []string{"--log-format", "xml"}), wantCode: 2, wantMsg: `--log-format "xml"`},
		{name: "argument", binary: "relayd", args: []string{"serve"}, wantCode: 2, wantMsg: `unexpected argument "serve"`},
		{name: "agent_no_mode", binary: "hostagent", args: []string{"--relay", "127.0.0.1:1"}, wantCode: 2, wantMsg: "missing mode"},
		{name: "agent_bad_idle", binary: "hostagent", args: []string{"--idle", "0", "echo"}, wantCode: 2, wantMsg: "--idle must be at least 1"},
		{name: "bad_watch_buffer", binary: "relayd", args: []string{"--watch-buffer", "0"}, wantCode: 2, wantMsg: "--watch-buffer must be at least 1"},
		{name: "agent_bad_metrics_addr", binary: "hostagent", args: []string{"--metrics-addr", "9091", "echo"}, wantCode: 2, wantMsg: `--metrics-addr "9091"`},
		// A port net.Listen would refuse is a bad command line, found
		// before anything listens; it once surfaced as a failed listen,
		// exit status 1.
		{name: "grpc_port_out_of_range", binary: "relayd", args: slices.Concat(free, []string{"--grpc-addr", "127.0.0.1:99999"}), wantCode: 2, wantMsg: `--grpc-addr "127.0.0.1:99999": port "99999" is not a number from 0 to 65535`},
		{name: "grpc_port_not_a_number", binary: "relayd", args: slices.Concat(free, []string{"--grpc-addr", "127.0.0.1:abc"}), wantCode: 2, wantMsg: `--grpc-addr "127.0.0.1:abc": port "abc" is not a number`},
		{name: "client_port_negative", binary: "relayd", args: slices.Concat(free, []string{"--client-addr", "127.0.0.1:-1"}), wantCode: 2, wantMsg: `--client-addr "127.0.0.1:-1": port "-1" is not a number`},
		{name: "listen_port_out_of_range", binary: "relayd", args: slices.Concat(free, []string{"--listen", "127.0.0.1:70000=web"}), wantCode: 2, wantMsg: `--listen: ADDR "127.0.0.1:70000": port "70000" is not a number`},
		{name: "metrics_port_out_of_range", binary: "relayd", args: slices.Concat(free, []string{"--metrics-addr", "127.0.0.1:99999"}), wantCode: 2, wantMsg: `--metrics-addr "127.0.0.1:99999": port "99999" is not a number`},
		{name: "pprof_addr_no_port", binary: "relayd", args: slices.Concat(free, []string{"--pprof-addr", "foo"}), wantCode: 2, wantMsg: `--pprof-addr "foo": address foo: missing port in address`},
		{name: "agent_metrics_port_out_of_range", binary: "hostagent", args: []string{"--relay", "127.0.0.1:1", "--metrics-addr", "127.0.0.1:99999", "echo"}, wantCode: 2, wantMsg: `--metrics-addr "127.0.0.1:99999": port "99999" is not a number`},
		{name: "agent_pprof_addr_no_port", binary: "hostagent", args: []string{"--relay", "127.0.0.1:1", "--pprof-addr", "foo", "echo"}, wantCode: 2, wantMsg: `--pprof-addr "foo": address foo: missing port in address`},
		{
			name: "metrics_port_in_use", binary: "relayd",
			args:     slices.Concat(free, []string{"--metrics-addr", busy.Addr().String()}),
			wantCode: 1,
			wantMsg:  "address already in use (see --metrics-addr)",
		},
		{
			name: "pprof_port_in_use", binary: "relayd",
			args:     slices.Concat(free, []string{"--pprof-addr", busy.Addr().String()}),
			wantCode: 1,
			wantMsg:  "relayd: pprof: listen " + busy.Addr().String() + ": bind: address already in use (see --pprof-addr)",
		},
		{
			name: "agent_pprof_port_in_use", binary: "hostagent",
			args:     []string{"--relay", "127.0.0.1:1", "--pprof-addr", busy.Addr().String(), "echo"},
			wantCode: 1,
			wantMsg:  "hostagent: pprof: listen " + busy.Addr().String() + ": bind: address already in use (see --pprof-addr)",
		},
		{
			name: "port_in_use", binary: "relayd",
			args:     slices.Concat(free, []string{"--grpc-addr", busy.Addr().String()}),
			wantCode: 1,
			wantMsg:  "address already in use (is another relayd running? see --grpc-addr)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, binDir+"/"+tt.binary, tt.args...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("%s %v: want exit status %d, got %v\n%s", tt.binary, tt.args, tt.wantCode, err, out)
			}
			if code := ee.ExitCode(); code != tt.wantCode {
				t.Errorf("%s %v: exit status %d, want %d\n%s", tt.binary, tt.args, code, tt.wantCode, out)
			}
			if !strings.Contains(string(out), tt.wantMsg) {
				t.Errorf("%s %v: output lacks %q:\n%s", tt.binary, tt.args, tt.wantMsg, out)
			}
			// Readable: the message is a line for a person, not a stack
			// trace or a JSON log record.
			if strings.Contains(string(out), "goroutine ") || strings.HasPrefix(string(out), "{") {
				t.Errorf("%s %v: output is not a readable message:\n%s", tt.binary, tt.args, out)
			}
			// Not buried: a mistake on the command line gets its line,
			// not the whole usage after it (-h shows that).
			if tt.wantCode == 2 && strings.Contains(string(out), "Usage:") {
				t.Errorf("%s %v: the message comes with the whole usage:\n%s", tt.binary, tt.args, out)
			}
		})
	}
}
