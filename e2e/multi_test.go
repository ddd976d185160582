package e2e

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/internal/portclaim"
)

// listeners parses the "listeners" field of relayd's ready line:
// ADDR=SERVICE,... into service → address.
func (r *relayProc) listeners(tb testing.TB) map[string]string {
	tb.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.lines {
		if l.msg() != "relayd ready" {
			continue
		}
		out := map[string]string{}
		for item := range strings.SplitSeq(l.str("listeners"), ",") {
			addr, svc, ok := strings.Cut(item, "=")
			if !ok {
				tb.Fatalf("bad listeners field in %s", l.raw)
			}
			out[svc] = addr
		}
		return out
	}
	tb.Fatal("no ready line")
	return nil
}

// waitAttachedTo waits for the agent's next "relay attached" line for
// each of addrs, in any order.
func (a *agentProc) waitAttachedTo(tb testing.TB, addrs ...string) {
	tb.Helper()
	left := map[string]bool{}
	for _, addr := range addrs {
		left[addr] = true
	}
	for len(left) > 0 {
		l := a.waitLog(tb, startTimeout, fmt.Sprintf(`"relay attached" for %v`, addrs), func(l logLine) bool {
			return l.msg() == "relay attached" && left[l.str("relay")]
		})
		delete(left, l.str("relay"))
	}
}

// greeter is a backend that writes its name and a newline, then echoes.
func greeter(tb testing.TB, name string) *backend {
	return startBackend(tb, func(c *net.TCPConn) {
		if _, err := io.WriteString(c, name+"\n"); err != nil {
			return
		}
		io.Copy(c, c)
		c.CloseWrite()
	})
}

// TestServicesNeverCross: two listeners feed two services; every client is
// bridged to a host of its listener's service, and a host of a service no
// listener serves is refused.
func TestServicesNeverCross(t *testing.T) {
	t.Parallel()
	// At debug: the refused stream's "finished call" line is Debug.
	r := startRelay(t, "--listen", "127.0.0.1:0=web", "--listen", "127.0.0.1:0=db", "--log-level", "debug")
	ls := r.listeners(t)
	// (The harness gives --client-addr, so "default" is there too.)
	if len(ls) != 3 || ls["web"] == "" || ls["db"] == "" || ls["default"] != r.clientAddr {
		t.Fatalf("listeners = %v, want web, db and default", ls)
	}
	web, db := greeter(t, "web"), greeter(t, "db")
	startAgent(t, r.grpcAddr, "--service", "web", "--host-id", "web-host", "forward", web.addr)
	startAgent(t, r.grpcAddr, "--service", "db", "--host-id", "db-host", "forward", db.addr)

	const perService = 15
	var wg sync.WaitGroup
	errs := make(chan error, 2*perService)
	for _, svc := range []string{"web", "db", "web", "db"} {
		for i := range perService / 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.Dial("tcp", ls[svc])
				if err != nil {
					errs <- err
					return
				}
				defer c.Close()
				buf := make([]byte, len(svc)+1)
				if _, err := io.ReadFull(c, buf); err != nil {
					errs <- fmt.Errorf("%s client %d: %v", svc, i, err)
					return
				}
				if got := string(buf); got != svc+"\n" {
					errs <- fmt.Errorf("a client of %s reached %q", svc, got)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// A host for a service without a listener is refused.
	mail := startAgentNoWait(t, r.grpcAddr, "--service", "mail", "echo")
	mail.waitLog(t, startTimeout, "a PermissionDenied refusal", func(l logLine) bool {
		return strings.Contains(l.str("err"), "PermissionDenied") && strings.Contains(l.str("err"), `"mail"`)
	})
	// relayd says why, at Warn, at most once a second: the agent's ten
	// slots are refused at once, and again at each retry.
	r.waitLog(t, startTimeout, `"attach refused" for service mail`, func(l logLine) bool {
		return l.msg() == "attach refused" && l.str("level") == "WARN" && l.str("service") == "mail"
	})
	// It logs the refused stream's end as go-grpc-middleware's logging
	// interceptor logs every other call (Attach has a lighter logger of its
	// own, see relayd/observe.go), at Debug: the line above said it.
	fin := r.waitLog(t, startTimeout, `"finished call" of the refused Attach`, func(l logLine) bool {
		return l.msg() == "finished call" && l.str("grpc.method") == "Attach" && l.str("grpc.code") == "PermissionDenied"
	})
	for k, want := range map[string]string{"level": "DEBUG", "protocol": "grpc", "grpc.component": "server", "grpc.service": "relay.v1.HostService", "grpc.method_type": "bidi_stream"} {
		if got := fin.str(k); got != want {
			t.Errorf("finished call: %s = %q, want %q (%s)", k, got, want, fin.raw)
		}
	}
	for _, k := range []string{"peer.address", "grpc.start_time", "grpc.time_ms"} {
		if fin.fields[k] == nil {
			t.Errorf("finished call: no %s (%s)", k, fin.raw)
		}
	}
	if !strings.Contains(fin.str("grpc.error"), `"mail"`) {
		t.Errorf("finished call: grpc.error = %q, want the refusal (%s)", fin.str("grpc.error"), fin.raw)
	}
	// Ten slots refused together (the agent's --idle): one line, not ten
	// (the rest come at most once a second, counted).
	waitFor(t, startTimeout, func() (bool, string) {
		n := r.countLog(func(l logLine) bool { return l.msg() == "finished call" && l.str("grpc.code") == "PermissionDenied" })
		return n >= 10, fmt.Sprintf("%d refused streams ended", n)
	})
	// However slow the machine, each Warn line comes a second after the
	// one before (the agent's retries may bring more of them).
	var last time.Time
	for _, l := range r.matchingLines(func(l logLine) bool { return l.msg() == "attach refused" && l.str("level") == "WARN" }) {
		at, err := time.Parse(time.RFC3339Nano, l.str("time"))
		if err != nil {
			t.Fatalf("attach refused: time: %v (%s)", err, l.raw)
		}
		// The line is stamped after the throttle's decision, on the
		// monotonic clock: a goroutine delayed in between under load
		// narrows the gap seen here. Without the throttle, the lines of
		// ten slots refused together are microseconds apart.
		if !last.IsZero() && at.Sub(last) < 500*time.Millisecond {
			t.Errorf("Warn lines of refused slots %v apart, want one a second at most (%s)", at.Sub(last), l.raw)
		}
		last = at
	}

	st, err := getStatus(statusClient(t, r))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.GetServices() {
		if s.GetService() != "web" && s.GetService() != "db" && s.GetService() != "default" {
			t.Errorf("status lists service %q", s.GetService())
		}
	}
}

// TestWeightedHosts: with least-loaded, hosts of weights 1 and 3 hold
// sessions 1:3.
func TestWeightedHosts(t *testing.T) {
	t.Parallel()
	r := startRelay(t)
	startAgent(t, r.grpcAddr, "--host-id", "w1", "--weight", "1", "--idle", "5", "echo")
	startAgent(t, r.grpcAddr, "--host-id", "w3", "--weight", "3", "--idle", "5", "echo")
	const clients = 40
	for i := range clients {
		roundTrip(t, dial(t, r.clientAddr), fmt.Sprintf("client %d\n", i))
	}
	resp, err := listSessions(statusClient(t, r))
	if err != nil {
		t.Fatal(err)
	}
	perHost := map[string]int{}
	for _, s := range resp.GetSessions() {
		perHost[s.GetHostId()]++
	}
	if perHost["w1"] < 8 || perHost["w1"] > 12 || perHost["w1"]+perHost["w3"] != clients {
		t.Errorf("sessions per host %v, want about 10 on w1 and 30 on w3", perHost)
	}
	hosts, err := listHosts(statusClient(t, r))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts.GetHosts() {
		want := map[string]uint32{"w1": 1, "w3": 3}[h.GetHostId()]
		if h.GetWeight() != want {
			t.Errorf("host %s: weight %d in status, want %d", h.GetHostId(), h.GetWeight(), want)
		}
	}
}

// TestThreeRelays: two agents attached to three relays; one relay is killed
// mid-run: its clients' connections end, every other session completes
// intact, new clients on the other relays are served at once; the killed
// relay restarts on the same ports and gets slots again.
// Between the kill and the restart the killed relay's ports stay claimed
// (startRelay), so no parallel test's socket takes one of them.
func TestThreeRelays(t *testing.T) {
	t.Parallel()
	rs := []*relayProc{startRelay(t), startRelay(t), startRelay(t)}
	relays := rs[0].grpcAddr + "," + rs[1].grpcAddr + "," + rs[2].grpcAddr
	var agents []*agentProc
	for _, id := range []string{"agent-a", "agent-b"} {
		a := startAgentNoWait(t, relays, "--host-id", id, "--idle", "4", "echo")
		a.waitAttachedTo(t, rs[0].grpcAddr, rs[1].grpcAddr, rs[2].grpcAddr)
		agents = append(agents, a)
	}

	// Six sessions per relay, held open.
	conns := make([][]*net.TCPConn, len(rs))
	for i, r := range rs {
		for j := range 6 {
			c := dial(t, r.clientAddr)
			roundTrip(t, c, fmt.Sprintf("relay %d session %d\n", i, j))
			conns[i] = append(conns[i], c)
		}
	}

	killed := rs[1]
	killed.kill(t)
	for _, c := range conns[1] {
		if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Errorf("a client of the killed relay read %d bytes, %v; want its connection ended", n, err)
		}
	}
	// New clients on the surviving relays are served at once.
	for _, i := range []int{0, 2} {
		c := dial(t, rs[i].clientAddr)
		roundTrip(t, c, "after the kill\n")
		c.CloseWrite()
		expectEOF(t, c, "")
	}
	// The sessions on the surviving relays are intact.
	for _, i := range []int{0, 2} {
		for j, c := range conns[i] {
			roundTrip(t, c, fmt.Sprintf("relay %d session %d, still\n", i, j))
			c.CloseWrite()
			expectEOF(t, c, "")
		}
	}

	// The relay comes back on the same ports; both agents attach again.
	back := startRelay(t, "--grpc-addr", killed.grpcAddr, "--admin-addr", killed.adminAddr, "--client-addr", killed.clientAddr)
	for _, a := range agents {
		a.waitAttachedTo(t, back.grpcAddr)
	}
	hosts, err := listHosts(statusClient(t, back))
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts.GetHosts()) != 2 {
		t.Errorf("the restarted relay has %d hosts, want both agents", len(hosts.GetHosts()))
	}
	c := dial(t, back.clientAddr)
	roundTrip(t, c, "after the restart\n")
	c.CloseWrite()
	expectEOF(t, c, "")
}

// TestMaxSessionsShareAfterRelayRestart: an agent whose --max-sessions is
// below --idle × relays shares the cap out over its relays. While one is
// down the other holds the whole cap; once it is back on the same ports it
// gets its share again with no client traffic at all: idle slots are
// withdrawn from the other relay (Withdraw) and opened on it, and logged
// at most once a second, not a line per slot.
func TestMaxSessionsShareAfterRelayRestart(t *testing.T) {
	t.Parallel()
	a, b := startRelay(t), startRelay(t)
	agent := startAgentNoWait(t, a.grpcAddr+","+b.grpcAddr, "--max-sessions", "8", "--idle", "6", "echo")
	stA, stB := statusClient(t, a), statusClient(t, b)
	idleSlots := func(st relayv1.StatusServiceClient) uint32 {
		s, err := getStatus(st)
		if err != nil {
			return 1 << 31 // down or restarting: matches no count below
		}
		return s.GetIdleSlots()
	}
	waitFor(t, startTimeout, func() (bool, string) {
		na, nb := idleSlots(stA), idleSlots(stB)
		return na == 4 && nb == 4, fmt.Sprintf("idle slots %d + %d, want 4 + 4", na, nb)
	})

	b.kill(t)
	waitFor(t, ioTimeout, func() (bool, string) {
		na := idleSlots(stA)
		return na == 6, fmt.Sprintf("idle slots on the relay still up: %d, want --idle, 6", na)
	})

	back := startRelay(t, "--grpc-addr", b.grpcAddr, "--admin-addr", b.adminAddr, "--client-addr", b.clientAddr)
	stBack := statusClient(t, back)
	waitFor(t, startTimeout, func() (bool, string) {
		na, nb := idleSlots(stA), idleSlots(stBack)
		return na == 4 && nb == 4, fmt.Sprintf("idle slots %d + %d after the restart, want 4 + 4", na, nb)
	})
	agent.waitLog(t, ioTimeout, `"moving an idle slot"`, func(l logLine) bool {
		return strings.HasPrefix(l.msg(), "moving an idle slot") && l.str("to_relay") == b.grpcAddr
	})
	// Two slots moved; the lines come at least a second apart (with
	// scheduling slack), not one per slot.
	moves := agent.matchingLines(func(l logLine) bool { return strings.HasPrefix(l.msg(), "moving an idle slot") })
	for i := 1; i < len(moves); i++ {
		if gap := moves[i].time().Sub(moves[i-1].time()); gap < 500*time.Millisecond {
			t.Errorf("two \"moving an idle slot\" lines %v apart, want them throttled:\n%s\n%s", gap, moves[i-1].raw, moves[i].raw)
		}
	}
	for _, st := range []relayv1.StatusServiceClient{stA, stBack} {
		if s, err := getStatus(st); err != nil || s.GetSessionsTotal() != 0 {
			t.Errorf("GetStatus = %v, %v; want no session on either relay", s, err)
		}
	}
}

// TestReadyLineWithoutDefaultListener: with only --listen ports and none for
// "default", the ready line names no client_addr (it named the first
// --listen port, of another service) and lists every port.
func TestReadyLineWithoutDefaultListener(t *testing.T) {
	t.Parallel()
	p := startProc(t, "relayd", "--grpc-addr", portclaim.MustAddr(t), "--admin-addr", portclaim.MustAddr(t),
		"--log-format", "json", "--drain-timeout", drainTimeout, "--listen", "127.0.0.1:0=web")
	ready := p.waitLog(t, startTimeout, `"relayd ready"`, func(l logLine) bool { return l.msg() == "relayd ready" })
	if _, ok := ready.fields["client_addr"]; ok {
		t.Errorf("ready line has client_addr %q, want none (no listener serves default): %s", ready.str("client_addr"), ready.raw)
	}
	r := &relayProc{proc: p}
	if ls := r.listeners(t); len(ls) != 1 || !strings.HasPrefix(ls["web"], "127.0.0.1:") {
		t.Errorf("listeners = %v, want one for web", ls)
	}
}

// TestMaxSessionsBelowRelaysWarned: an agent whose --max-sessions is below
// the number of its relays cannot keep an idle slot on each (an idle slot
// counts towards the cap), so some relay's clients find none of its slots:
// it says so when it starts.
func TestMaxSessionsBelowRelaysWarned(t *testing.T) {
	t.Parallel()
	a, b := startRelay(t), startRelay(t)
	agent := startAgentNoWait(t, a.grpcAddr+","+b.grpcAddr, "--max-sessions", "1", "echo")
	line := agent.waitLog(t, startTimeout, "the warning about --max-sessions", func(l logLine) bool {
		return strings.HasPrefix(l.msg(), "--max-sessions is below the number of relay addresses")
	})
	if line.str("level") != "WARN" || line.str("relays") != "2" {
		t.Errorf("warning %v, want WARN with relays=2", line)
	}
}

// TestRelayMetricsPerAddress: with two relays, hostagent's metrics say
// which one is down (hostagent_relay_up and the others, labelled by
// relay address) and which serves; the summed gauges could not tell an
// outage from load (QA).
func TestRelayMetricsPerAddress(t *testing.T) {
	t.Parallel()
	up, down := startRelay(t), startRelay(t)
	a := startAgentNoWait(t, up.grpcAddr+","+down.grpcAddr, "--idle", "2", "--metrics-addr", "127.0.0.1:0", "echo")
	a.waitAttachedTo(t, up.grpcAddr, down.grpcAddr)
	metrics := a.metricsAddr(t)
	series := func(name, relay string) string { return fmt.Sprintf("%s{relay=%q}", name, relay) }
	waitFor(t, ioTimeout, func() (bool, string) {
		m := scrape(t, metrics)
		ok := m[series("hostagent_relay_up", up.grpcAddr)] == 1 && m[series("hostagent_relay_up", down.grpcAddr)] == 1 &&
			m[series("hostagent_relay_idle_slots", up.grpcAddr)] == 2 && m[series("hostagent_relay_idle_slots", down.grpcAddr)] == 2
		return ok, fmt.Sprintf("both attached: %v", m)
	})
	c := dial(t, up.clientAddr)
	roundTrip(t, c, "held\n")
	down.kill(t)
	waitFor(t, ioTimeout, func() (bool, string) {
		m := scrape(t, metrics)
		ok := m[series("hostagent_relay_up", up.grpcAddr)] == 1 && m[series("hostagent_relay_up", down.grpcAddr)] == 0 &&
			m[series("hostagent_relay_failures", down.grpcAddr)] > 0 && m[series("hostagent_relay_failures", up.grpcAddr)] == 0 &&
			m[series("hostagent_relay_active_sessions", up.grpcAddr)] == 1 && m[series("hostagent_relay_idle_slots", down.grpcAddr)] == 0
		return ok, fmt.Sprintf("after %s was killed: up %v/%v, failures %v/%v, sessions %v, idle %v",
			down.grpcAddr, m[series("hostagent_relay_up", up.grpcAddr)], m[series("hostagent_relay_up", down.grpcAddr)],
			m[series("hostagent_relay_failures", up.grpcAddr)], m[series("hostagent_relay_failures", down.grpcAddr)],
			m[series("hostagent_relay_active_sessions", up.grpcAddr)], m[series("hostagent_relay_idle_slots", down.grpcAddr)])
	})
	roundTrip(t, c, "still served\n")
}

// TestRelayUpAfterRestartAtMaxSessions: a relay that comes back while the
// agent's --max-sessions is reached elsewhere gets no slot to try, yet
// hostagent_relay_up says it is up once a connection to it is: it said 0
// until a session ended, hours maybe (a review).
func TestRelayUpAfterRestartAtMaxSessions(t *testing.T) {
	t.Parallel()
	a, b := startRelay(t), startRelay(t)
	agent := startAgentNoWait(t, a.grpcAddr+","+b.grpcAddr, "--max-sessions", "2", "--idle", "2", "--metrics-addr", "127.0.0.1:0", "echo")
	agent.waitAttachedTo(t, a.grpcAddr, b.grpcAddr)
	metrics := agent.metricsAddr(t)
	up := func(r *relayProc) float64 {
		return scrape(t, metrics)[fmt.Sprintf("hostagent_relay_up{relay=%q}", r.grpcAddr)]
	}
	held := []*net.TCPConn{dial(t, a.clientAddr)}
	roundTrip(t, held[0], "on a\n")
	b.kill(t)
	waitFor(t, ioTimeout, func() (bool, string) { return up(b) == 0, fmt.Sprintf("b killed: up %v, want 0", up(b)) })
	c := dial(t, a.clientAddr) // the second session: --max-sessions reached, all on a
	roundTrip(t, c, "on a too\n")
	back := startRelay(t, "--grpc-addr", b.grpcAddr, "--admin-addr", b.adminAddr, "--client-addr", b.clientAddr)
	waitFor(t, startTimeout, func() (bool, string) {
		return up(back) == 1 && up(a) == 1, fmt.Sprintf("b back: up a %v, b %v; want 1, 1", up(a), up(back))
	})
	roundTrip(t, c, "still on a\n")
}
