package agent_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/relayproject/relay/clientbridge"
	relayv1 "github.com/relayproject/relay/gen/relay/v1"
	"github.com/relayproject/relay/hostagent/agent"
	"github.com/relayproject/relay/relayd/relay"
)

// fakeDNS answers lookups of one name with a settable address list.
type fakeDNS struct {
	mu    sync.Mutex
	ips   []string
	asked chan struct{} // one token per lookup answered
}

func (f *fakeDNS) set(ips ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ips = ips
}

func (f *fakeDNS) lookup(_ context.Context, host string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if host != "relays.test" {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	select {
	case f.asked <- struct{}{}:
	default:
	}
	return append([]string(nil), f.ips...), nil
}

// twoRelaysOneName starts relays on 127.0.0.1:P and 127.0.0.2:P, the two
// addresses of the fake name relays.test.
func twoRelaysOneName(t *testing.T) (a, b *inProcessRelay, port string) {
	for range 20 { // the port free on 127.0.0.1 may be taken on 127.0.0.2
		la, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = strconv.Itoa(la.Addr().(*net.TCPAddr).Port)
		lb, err := net.Listen("tcp", "127.0.0.2:"+port)
		if err != nil {
			la.Close()
			continue
		}
		return newRelayOn(t, la), newRelayOn(t, lb), port
	}
	t.Skip("no port free on both 127.0.0.1 and 127.0.0.2")
	return nil, nil, ""
}

// TestRelayNameResolvedToEveryAddress: one relay name with two addresses
// gets slots on both; an address that leaves DNS loses its idle slots but
// keeps its session; one that comes back gets slots again.
func TestRelayNameResolvedToEveryAddress(t *testing.T) {
	t.Parallel()
	a, b, port := twoRelaysOneName(t)
	dns := &fakeDNS{asked: make(chan struct{}, 1)}
	dns.set("127.0.0.1", "127.0.0.2")
	l := listen(t, agent.Config{
		Relays: []string{net.JoinHostPort("relays.test", port)}, Idle: 2,
		LookupHost: dns.lookup, ResolveInterval: 20 * time.Millisecond,
		// A pool refilled to Idle while a session is held: its stream
		// does not count as one coming back (TestSequentialSessions).
		StreamPerSession: true,
	})
	idle := func(n uint32) func(*relayv1.GetStatusResponse) bool {
		return func(st *relayv1.GetStatusResponse) bool { return st.GetIdleSlots() == n }
	}
	waitStatus(t, a, "2 idle slots on the first address", idle(2))
	waitStatus(t, b, "2 idle slots on the second address", idle(2))

	// A session on b, then b leaves DNS.
	cb := dialClient(t, b.ClientAddr)
	conn := accept(t, l)
	waitStatus(t, b, "b's pool refilled", idle(2))
	dns.set("127.0.0.1")
	waitStatus(t, b, "no idle slot left on the retired address", idle(0))
	if st, _ := b.Relay.StatusService().GetStatus(context.Background(), &relayv1.GetStatusRequest{}); st.GetActiveSessions() != 1 {
		t.Errorf("the session on the retired address ended: %v", st)
	}
	// The session still works both ways.
	cb.Write([]byte("still here"))
	cb.CloseWrite()
	echo(conn)
	if got, err := io.ReadAll(cb); err != nil || string(got) != "still here" {
		t.Errorf("session on the retired address: %q, %v", got, err)
	}
	// a keeps serving.
	ca := dialClient(t, a.ClientAddr)
	ca.Write([]byte("a"))
	ca.CloseWrite()
	echo(accept(t, l))
	if got, err := io.ReadAll(ca); err != nil || string(got) != "a" {
		t.Errorf("a: %q, %v", got, err)
	}

	// b comes back.
	dns.set("127.0.0.1", "127.0.0.2")
	waitStatus(t, b, "slots again on the returning address", idle(2))
}

// hangingRelay is a HostService whose Attach never answers Hello: a slot on
// it stays connecting until the agent gives it up.
type hangingRelay struct {
	relayv1.UnimplementedHostServiceServer
	entered chan struct{}
}

func (h *hangingRelay) Attach(stream relayv1.HostService_AttachServer) error {
	select {
	case h.entered <- struct{}{}:
	default:
	}
	<-stream.Context().Done()
	return stream.Context().Err()
}

// closeWatchListener reports, on closed, every accepted connection whose
// peer has closed it.
type closeWatchListener struct {
	net.Listener
	closed chan struct{}
}

func (l closeWatchListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return closeWatchConn{Conn: c, closed: l.closed}, nil
}

type closeWatchConn struct {
	net.Conn
	closed chan struct{}
}

func (c closeWatchConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	// EOF, or a reset when the agent closed with bytes unread: either way
	// the agent closed the connection.
	if err != nil {
		select {
		case c.closed <- struct{}{}:
		default:
		}
	}
	return n, err
}

// TestRetiredAddressIsNoFailure: a slot still connecting to an address
// that leaves DNS is given up by the agent; that is no failure of the
// relay: no reconnect is counted and no warning logged.
func TestRetiredAddressIsNoFailure(t *testing.T) {
	t.Parallel()
	var la, lb net.Listener
	var port string
	for range 20 {
		var err error
		if la, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		port = strconv.Itoa(la.Addr().(*net.TCPAddr).Port)
		if lb, err = net.Listen("tcp", "127.0.0.2:"+port); err == nil {
			break
		}
		la.Close()
		la = nil
	}
	if la == nil {
		t.Skip("no port free on both 127.0.0.1 and 127.0.0.2")
	}
	a := newRelayOn(t, la)
	hang := &hangingRelay{entered: make(chan struct{}, 1)}
	srv := grpc.NewServer()
	relayv1.RegisterHostServiceServer(srv, hang)
	closed := make(chan struct{}, 1)
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(closeWatchListener{Listener: lb, closed: closed}) }()
	t.Cleanup(func() { srv.Stop(); <-served })

	dns := &fakeDNS{asked: make(chan struct{}, 1)}
	dns.set("127.0.0.1", "127.0.0.2")
	logs := make(chan string, 256)
	l := listen(t, agent.Config{
		Relays: []string{net.JoinHostPort("relays.test", port)}, Idle: 1,
		LookupHost: dns.lookup, ResolveInterval: 20 * time.Millisecond,
		Logger: slog.New(logHandler{logs}),
	})
	waitStatus(t, a, "an idle slot on the first address", func(st *relayv1.GetStatusResponse) bool { return st.GetIdleSlots() == 1 })
	select {
	case <-hang.entered:
	case <-time.After(hangGuard):
		t.Fatal("no slot opened on the second address")
	}

	dns.set("127.0.0.1")
	// The retired link's connection closes once its slot has ended and
	// the manager has handled that.
	select {
	case <-closed:
	case <-time.After(hangGuard):
		t.Fatal("the retired address's connection was not closed")
	}
	if n := l.Stats().Reconnects; n != 0 {
		t.Errorf("Reconnects = %d after an address left DNS, want 0", n)
	}
	for {
		select {
		case msg := <-logs:
			if msg == "relay refused the slot" || msg == "relay unreachable" {
				t.Errorf("logged %q for a slot the agent gave up itself", msg)
			}
			continue
		default:
		}
		break
	}
}

// TestMaxSessionsBelowRelayAddresses: MaxSessions below the number of
// relay addresses is warned of, counting the addresses a name resolves to
// (one --relay entry may be several relays), and again as they grow.
func TestMaxSessionsBelowRelayAddresses(t *testing.T) {
	t.Parallel()
	dns := &fakeDNS{asked: make(chan struct{}, 1)}
	dns.set("127.0.0.1")
	records := make(chan slog.Record, 4096)
	listen(t, agent.Config{
		Relays: []string{net.JoinHostPort("relays.test", "1")}, Idle: 1, MaxSessions: 1, // nothing listens: the warning needs no relay
		LookupHost: dns.lookup, ResolveInterval: 5 * time.Millisecond,
		Logger: slog.New(levelHandler{records}),
	})
	dns.set("127.0.0.1", "127.0.0.2")
	// The first warning: one at start, with one address, would fail here.
	rec := nextMsg(t, records, "--max-sessions is below the number of relay addresses: while every allowed slot is on other relays, a relay has no idle slot of this host, and its clients wait for another host (or are reset after relayd's --assign-timeout); give each relay at least one")
	if got := recordAttr(rec, "relays"); got != "2" || rec.Level != slog.LevelWarn {
		t.Errorf("warning %v with relays=%s, want WARN with relays=2", rec.Level, got)
	}
}

// TestSameRelayTwiceWarned: two --relay entries that reach one relay (its
// Welcome.relay_id tells) are warned of, once: the agent keeps idle slots
// through each, twice --idle on that relay. Two relays are not.
func TestSameRelayTwiceWarned(t *testing.T) {
	t.Parallel()
	var liss []net.Listener
	for range 2 {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		liss = append(liss, lis)
	}
	one, err := startRelayOn(liss, clientbridge.Config{}, relay.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(one.stop)
	other := newRelay(t)
	records := make(chan slog.Record, 4096)
	listen(t, agent.Config{
		Relays: []string{liss[0].Addr().String(), other.GRPCAddr, liss[1].Addr().String()}, Idle: 2,
		Logger: slog.New(levelHandler{records}),
	})
	const warning = "two relay addresses reach the same relay: this agent keeps idle slots on it through each, so it holds twice --idle of them and gets a double share of --max-sessions; give one address of it in --relay (or, if these are two relays, give them distinct relayd --relay-id)"
	// "relay attached" comes once every slot of a relay is welcomed: after
	// the last of them, the warning cannot come again.
	var warnings []slog.Record
	timer := time.NewTimer(hangGuard)
	defer timer.Stop()
	for attached := 0; attached < 3; {
		select {
		case r := <-records:
			switch r.Message {
			case warning:
				warnings = append(warnings, r)
			case "relay attached":
				attached++
			}
		case <-timer.C:
			t.Fatalf("the agent did not attach to its three relay addresses")
		}
	}
	if len(warnings) != 1 {
		t.Fatalf("warned %d times, want once", len(warnings))
	}
	rec := warnings[0]
	got := []string{recordAttr(rec, "relay"), recordAttr(rec, "also_as")}
	slices.Sort(got)
	want := []string{liss[0].Addr().String(), liss[1].Addr().String()}
	slices.Sort(want)
	if rec.Level != slog.LevelWarn || !slices.Equal(got, want) || recordAttr(rec, "relay_id") == "" {
		t.Errorf("warning %v naming %v (relay_id %q), want WARN naming %v", rec.Level, got, recordAttr(rec, "relay_id"), want)
	}
}

// TestMovedRelayNotWarned: a relay with a fixed --relay-id that moves from
// address A to address B, both in --relay for the migration, is not two
// addresses of one relay: A had stopped when B welcomed the agent.
func TestMovedRelayNotWarned(t *testing.T) {
	t.Parallel()
	lisA, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	old, err := startRelayConfig(lisA, clientbridge.Config{}, relay.Config{RelayID: "relay-a"})
	if err != nil {
		t.Fatal(err)
	}
	addrB, listenB := reservePort(t)
	records := make(chan slog.Record, 4096)
	listen(t, agent.Config{Relays: []string{lisA.Addr().String(), addrB}, Idle: 2,
		BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		Logger: slog.New(levelHandler{records})})
	nextRecord(t, records, "relay attached")
	old.stop() // relay-a leaves address A
	timer := time.NewTimer(hangGuard)
	defer timer.Stop()
	for gone := false; !gone; {
		select {
		case r := <-records:
			gone = r.Message == "relay unreachable" && recordAttr(r, "relay") == lisA.Addr().String()
		case <-timer.C:
			t.Fatal("the agent did not see the relay leave address A")
		}
	}
	lisB, err := listenB()
	if err != nil {
		t.Fatal(err)
	}
	moved, err := startRelayConfig(lisB, clientbridge.Config{}, relay.Config{RelayID: "relay-a"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(moved.stop)
	// Its id reaches the agent's manager before the slot that brings it.
	for {
		select {
		case r := <-records:
			if strings.Contains(r.Message, "reach the same relay") {
				t.Fatalf("warned of a relay that moved: %s (relay=%s also_as=%s)", r.Message, recordAttr(r, "relay"), recordAttr(r, "also_as"))
			}
			if r.Message == "relay attached" && recordAttr(r, "relay") == addrB {
				return
			}
		case <-timer.C:
			t.Fatal("the agent did not attach to the relay at its new address")
		}
	}
}

// TestRelaysListsAnAddressOnce: a --relay name that resolves to an address
// also given as it is makes two links to one address; Relays lists it
// once, summed, so that the metrics labelled by address have one series
// each (two failed the whole scrape, a review).
func TestRelaysListsAnAddressOnce(t *testing.T) {
	t.Parallel()
	r := newRelay(t)
	_, port, _ := net.SplitHostPort(r.GRPCAddr)
	dns := &fakeDNS{asked: make(chan struct{}, 1)}
	dns.set("127.0.0.1")
	l := listen(t, agent.Config{
		Relays: []string{net.JoinHostPort("relays.test", port), r.GRPCAddr}, Idle: 2,
		LookupHost: dns.lookup, ResolveInterval: time.Hour,
	})
	waitStatus(t, r, "both links' slots", func(st *relayv1.GetStatusResponse) bool { return st.GetIdleSlots() == 4 })
	deadline := time.Now().Add(hangGuard)
	for {
		rs := l.Relays()
		if len(rs) == 1 && rs[0].Addr == r.GRPCAddr && rs[0].IdleSlots == 4 && rs[0].Up {
			return
		}
		if len(rs) > 1 || time.Now().After(deadline) {
			t.Fatalf("Relays = %+v, want %s once, up, with 4 idle slots", rs, r.GRPCAddr)
		}
		runtime.Gosched()
	}
}

// TestRelaysUpNeedsEvidence: a relay address the agent has no slot on
// (MaxSessions shared out, one slot for two relays) is up only if a
// connection to it is: a dead one showed up, as nothing had failed there
// (a review); a relay whose slot cap refuses more is up, capped, and its
// refusals are no failures.
func TestRelaysUpNeedsEvidence(t *testing.T) {
	t.Parallel()
	good, other := newRelay(t), newRelay(t)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	capped := newRelayConfig(t, relay.Config{MaxSlotsPerHost: 1})
	for _, tc := range []struct {
		relays      []string
		maxSessions int
		check       func(map[string]agent.RelayStats) bool
	}{
		{[]string{good.GRPCAddr, deadAddr}, 1, func(m map[string]agent.RelayStats) bool {
			return m[good.GRPCAddr].Up && m[good.GRPCAddr].IdleSlots == 1 && !m[deadAddr].Up
		}},
		{[]string{good.GRPCAddr, other.GRPCAddr}, 1, func(m map[string]agent.RelayStats) bool {
			return m[good.GRPCAddr].Up && m[other.GRPCAddr].Up // one of them with no slot, reachable
		}},
		{[]string{capped.GRPCAddr}, 0, func(m map[string]agent.RelayStats) bool {
			r := m[capped.GRPCAddr]
			return r.Up && r.Capped && r.Failures == 0 && r.IdleSlots == 1
		}},
	} {
		l := listen(t, agent.Config{Relays: tc.relays, Idle: 3, MaxSessions: tc.maxSessions,
			BackoffBase: 10 * time.Millisecond, BackoffMax: 40 * time.Millisecond})
		deadline := time.Now().Add(hangGuard)
		for {
			m := map[string]agent.RelayStats{}
			for _, r := range l.Relays() {
				m[r.Addr] = r
			}
			if tc.check(m) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("relays %v: Relays = %+v", tc.relays, m)
			}
			runtime.Gosched()
		}
		if len(tc.relays) == 2 && tc.relays[1] == deadAddr {
			// Still down after the good relay is served: not an
			// answer that only came too soon.
			for _, r := range l.Relays() {
				if r.Addr == deadAddr && r.Up {
					t.Errorf("the dead address %s is up: %+v", deadAddr, r)
				}
			}
		}
		l.Close()
	}
}

// TestRelaysUpAfterCredentialsFixed: a relay that refused the agent's
// credentials is up again once it welcomes a slot: the refusal's mark
// stayed, and the relay showed down for good while it served (a review).
func TestRelaysUpAfterCredentialsFixed(t *testing.T) {
	t.Parallel()
	var accept atomic.Bool
	r := newRelayConfig(t, relay.Config{Authorize: func(context.Context, string, string) error {
		if !accept.Load() {
			return status.Error(codes.Unauthenticated, "token not yet")
		}
		return nil
	}})
	l := listen(t, agent.Config{Relays: []string{r.GRPCAddr}, Idle: 1, AuthBackoff: 20 * time.Millisecond,
		BackoffBase: 10 * time.Millisecond, BackoffMax: 40 * time.Millisecond})
	wait := func(what string, cond func(agent.RelayStats) bool) {
		t.Helper()
		deadline := time.Now().Add(hangGuard)
		for {
			rs := l.Relays()
			if len(rs) == 1 && cond(rs[0]) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: Relays = %+v", what, rs)
			}
			runtime.Gosched()
		}
	}
	wait("refused: down", func(r agent.RelayStats) bool { return !r.Up && r.Failures > 0 })
	accept.Store(true)
	wait("welcomed: up", func(r agent.RelayStats) bool { return r.Up && r.IdleSlots == 1 && r.Failures == 0 })
}
